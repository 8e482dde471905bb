"""Non-finite inputs and wrong states are refused with a clear error (issue 22, row 14, in part)."""

from __future__ import annotations

import math

import pytest
import torch

from contrastkit.functional import info_nce, nt_xent
from contrastkit.memory.queue import Queue


@pytest.mark.parametrize("beta", [math.inf, math.nan])
def test_beta_must_be_finite(beta):
    q, k = torch.randn(4, 8), torch.randn(4, 8)
    with pytest.raises(ValueError, match="beta"):
        info_nce(q, k, beta=beta)
    with pytest.raises(ValueError, match="beta"):
        nt_xent(q, k, beta=beta)


def test_the_queue_refuses_non_finite_keys_and_keeps_its_state():
    queue = Queue(8, 4)
    before = {k: v.clone() for k, v in queue.state_dict().items()}
    keys = torch.randn(3, 4)
    keys[1, 2] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        queue.enqueue(keys)
    assert all(torch.equal(v, queue.state_dict()[k]) for k, v in before.items())


def test_a_queue_state_of_the_wrong_size_is_refused_before_anything_loads():
    queue = Queue(8, 4)
    before = {k: v.clone() for k, v in queue.state_dict().items()}
    other = Queue(16, 4)
    other.enqueue(torch.randn(5, 4))
    with pytest.raises((ValueError, RuntimeError), match="16"):
        queue.load_state_dict(other.state_dict())
    assert all(torch.equal(v, queue.state_dict()[k]) for k, v in before.items())  # nothing half-loaded
