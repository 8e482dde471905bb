"""SimCLR / HCL (hcl.md): trains on a fixed batch; HCL's options change the loss."""

from __future__ import annotations

import pytest
import torch

from contrastkit.methods import SimCLR, SimCLRParams
from tests.methods.helpers import BATCH, assert_falls, build, losses_on_a_fixed_batch


@pytest.mark.parametrize("kwargs", [{}, dict(beta=1.0, tau_plus=0.1)], ids=["simclr", "hcl"])
def test_loss_falls_on_a_fixed_batch(kwargs):
    assert_falls(losses_on_a_fixed_batch(build(SimCLR, **kwargs)))


def test_hcl_weighting_changes_the_loss_and_zero_is_simclr():
    plain, hcl, zero = build(SimCLR), build(SimCLR, beta=1.0, tau_plus=0.1), build(SimCLR, beta=0.0, tau_plus=0.0)
    torch.testing.assert_close(zero.step(BATCH).loss, plain.step(BATCH).loss)
    assert not torch.allclose(hcl.step(BATCH).loss, plain.step(BATCH).loss)


def test_params_reject_bad_values():
    with pytest.raises(ValueError, match="tau_plus"):
        SimCLRParams(tau_plus=1.0)
