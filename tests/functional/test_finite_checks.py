"""Non-finite inputs and wrong states are refused with a clear error (issue 22, row 14)."""

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


def _nan_rows(x: torch.Tensor, rows: list[int]) -> torch.Tensor:
    x = x.clone()
    x[rows, 0] = float("nan")
    return x


def test_objectives_name_the_non_finite_input_when_asked():
    from contrastkit.functional import contrastive_regularization, crossclr, mochi_info_nce

    q, k, queue = torch.randn(4, 8), torch.randn(4, 8), torch.randn(32, 8)
    with pytest.raises(ValueError, match=r"query has non-finite values \(NaN or inf\) in 2 of 4 row"):
        info_nce(_nan_rows(q, [0, 3]), k, queue, check_finite=True)
    with pytest.raises(ValueError, match=r"negatives has non-finite"):
        info_nce(q, k, _nan_rows(queue, [5]), check_finite=True)
    with pytest.raises(ValueError, match=r"z2 has non-finite"):
        nt_xent(q, _nan_rows(k, [1]), check_finite=True)
    with pytest.raises(ValueError, match=r"queue has non-finite"):
        mochi_info_nce(q, k, _nan_rows(queue, [2]), num_hard=8, num_pair_mix=2, num_query_mix=2, check_finite=True)
    with pytest.raises(ValueError, match=r"text_inputs has non-finite"):
        crossclr(q, k, q, _nan_rows(k, [0]), check_finite=True)
    images = torch.rand(3, 2, 3, 8, 8)
    hazy = images[2].clone()
    hazy[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"hazy has non-finite values \(NaN or inf\) in 1 of 2"):
        contrastive_regularization(images[0], images[1], hazy, lambda x: [x], [1.0], check_finite=True)


def test_checks_are_off_by_default_and_follow_the_global_switch():
    from contrastkit.functional import set_finite_checks

    q, k = _nan_rows(torch.randn(4, 8), [1]), torch.randn(4, 8)
    assert torch.isnan(info_nce(q, k))  # the functional API stays fast: no check, NaN out
    previous = set_finite_checks(True)
    try:
        with pytest.raises(ValueError, match="query has non-finite"):
            info_nce(q, k)
        assert torch.isnan(info_nce(q, k, check_finite=False))  # an explicit False wins
    finally:
        set_finite_checks(previous)


def test_a_diverging_cli_run_stops_with_one_line_naming_the_tensor(tmp_path, capsys):
    from contrastkit.cli import main

    args = ["train", "simclr-digits", "--smoke", "--runs-dir", str(tmp_path), "--no-progress"]
    assert main([*args, "--set", "optim.lr=1e30", "--set", "optim.epochs=3"]) == 2
    ours = [line for line in capsys.readouterr().err.splitlines() if line.startswith("contrastkit:")]
    assert len(ours) == 1 and "has non-finite values (NaN or inf)" in ours[0]  # the rest is Lightning's log
