"""MoCHi (mochi.md): trains; with no synthetic negatives, or before its start epoch, it is MoCo."""

from __future__ import annotations

import torch

from contrastkit.methods import MoCHi, MoCHiParams, MoCo
from tests.methods.helpers import BATCH, assert_falls, build, losses_on_a_fixed_batch


def test_loss_falls_on_a_fixed_batch():
    assert_falls(losses_on_a_fixed_batch(build(MoCHi, num_hard=32, num_pair_mix=16, num_query_mix=8)))


def test_without_synthetic_negatives_it_is_moco():
    moco = build(MoCo)
    mochi = build(MoCHi, num_hard=32, num_pair_mix=0, num_query_mix=0)
    for _ in range(3):
        torch.testing.assert_close(mochi.step(BATCH).loss, moco.step(BATCH).loss)


def test_before_its_start_epoch_it_is_moco():
    moco = build(MoCo)
    mochi = build(MoCHi, num_hard=32, num_pair_mix=16, num_query_mix=8, mix_start_epoch=5)
    torch.testing.assert_close(mochi.step(BATCH).loss, moco.step(BATCH).loss)


def test_synthetic_negatives_raise_the_loss():
    moco = build(MoCo)
    mochi = build(MoCHi, num_hard=32, num_pair_mix=64, num_query_mix=32)
    assert float(mochi.step(BATCH).loss) > float(moco.step(BATCH).loss)


def test_params_check_num_hard_against_the_queue_and_smoke_shrinks_both():
    import pytest

    with pytest.raises(ValueError, match="num_hard"):
        MoCHiParams(queue_size=64, num_hard=128)
    method = {"name": "mochi", "queue_size": 16384, "num_hard": 1024, "mix_start_epoch": 10}
    MoCHiParams.smoke(method)
    assert method["queue_size"] == 256 and method["num_hard"] == 64 and method["mix_start_epoch"] == 1
