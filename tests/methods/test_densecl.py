"""DenseCL (densecl.md): trains; lambda = 0 is MoCo; matching on backbone maps; two queues."""

from __future__ import annotations

import torch

from contrastkit.methods import DenseCL, MoCo, match_locations
from tests.methods.helpers import BATCH, assert_falls, build, losses_on_a_fixed_batch


def test_loss_falls_on_a_fixed_batch():
    assert_falls(losses_on_a_fixed_batch(build(DenseCL, dense_dim=16)))


def test_with_lambda_zero_it_is_moco():
    moco = build(MoCo)
    dense = build(DenseCL, dense_weight=0.0, dense_dim=16)
    for a, b in zip(moco.backbone.parameters(), dense.backbone.parameters()):
        assert torch.equal(a, b)
    torch.testing.assert_close(dense.criterion.queue.keys, moco.criterion.queue.keys)
    loss_moco = moco.step(BATCH).loss
    loss_dense = dense.step(BATCH).loss
    torch.testing.assert_close(loss_dense, loss_moco)
    loss_dense.backward()
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in dense.dense_head.parameters())


def test_matching_uses_backbone_maps_and_is_identity_for_identical_views():
    fmap = torch.randn(2, 8, 3, 3)
    assert torch.equal(match_locations(fmap, fmap), torch.arange(9).expand(2, 9))
    perm = torch.randperm(9)
    shuffled = fmap.flatten(2)[:, :, perm].view_as(fmap)
    assert torch.equal(perm[match_locations(fmap, shuffled)], torch.arange(9).expand(2, 9))


def test_queues_advance_independently_and_hold_pooled_dense_keys():
    model = build(DenseCL, dense_dim=16, dense_queue_size=96)
    model.step(BATCH)
    assert int(model.criterion.queue.ptr) == 64 and int(model.dense_criterion.queue.ptr) == 64
    assert model.dense_criterion.queue.keys.shape == (96, 16)
    torch.testing.assert_close(model.dense_criterion.queue.keys[:64].norm(dim=1), torch.ones(64))
