"""Each method trains, keys come from the momentum encoder, and the card's equivalences hold."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch

from contrastkit.data import load_digits
from contrastkit.methods import DenseCL, MoCHi, MoCo, OptimizerSettings, SimCLR, match_locations
from contrastkit.nn import ConvNetSmall
from contrastkit.views import build_augmentation

DIGITS = load_digits(16)
IMAGES, INDICES = DIGITS.train_images[:64], torch.arange(64)
BATCH = {"input": IMAGES, "index": INDICES}


def _build(cls, seed=0, **kwargs):
    L.seed_everything(seed, verbose=False)
    backbone = ConvNetSmall(1, 8)
    aug = build_augmentation("digits", 16, DIGITS.mean, DIGITS.std)
    defaults = dict(proj_hidden=64, proj_dim=32)
    if cls is not SimCLR:
        defaults.update(queue_size=128, temperature=0.2)
    if cls is MoCHi:
        defaults.update(num_hard=32, num_pair_mix=16, num_query_mix=8)
    return cls(backbone, aug, optimizer=OptimizerSettings("sgd", lr=0.05), **(defaults | kwargs))


def _queues(model):
    return [m for m in model.modules() if m.__class__.__name__ == "Queue"]


@pytest.mark.parametrize(
    "cls,kwargs",
    [
        (SimCLR, {}),
        (SimCLR, dict(beta=1.0, tau_plus=0.1)),
        (MoCo, {}),
        (MoCo, dict(beta=1.0, tau_plus=0.1)),
        (MoCHi, dict(num_hard=32, num_pair_mix=16, num_query_mix=8)),
        (DenseCL, dict(dense_dim=16)),
    ],
)
def test_loss_falls_on_a_fixed_batch(cls, kwargs):
    """Same views every step (the step generator depends on the global step, 0 here) and the
    queues reset before each step: only the weights change, so the loss must fall."""
    model = _build(cls, **kwargs)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    queues = [copy.deepcopy(q.state_dict()) for q in _queues(model)]
    losses = []
    for _ in range(12):
        for q, state in zip(_queues(model), queues):
            q.load_state_dict(state)
        model.on_train_batch_start(None, 0)
        loss = model.step(BATCH).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.9 * first, losses


@pytest.mark.parametrize("cls", [MoCo, MoCHi, DenseCL])
def test_keys_carry_no_gradient(cls):
    model = _build(cls)
    model.step(BATCH).loss.backward()
    momentum = [p for name, p in model.named_parameters() if name.startswith("momentum_")]
    assert momentum and all(p.grad is None and not p.requires_grad for p in momentum)
    assert all(not q.keys.requires_grad for q in _queues(model))
    assert model.backbone.body[0].weight.grad is not None


def test_densecl_with_lambda_zero_is_moco():
    moco = _build(MoCo)
    dense = _build(DenseCL, dense_weight=0.0, dense_dim=16)
    for a, b in zip(moco.backbone.parameters(), dense.backbone.parameters()):
        assert torch.equal(a, b)
    torch.testing.assert_close(dense.criterion.queue.keys, moco.criterion.queue.keys)
    loss_moco = moco.step(BATCH).loss
    loss_dense = dense.step(BATCH).loss
    torch.testing.assert_close(loss_dense, loss_moco)
    loss_dense.backward()
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in dense.dense_head.parameters())


def test_mochi_without_synthetic_negatives_is_moco():
    moco = _build(MoCo)
    mochi = _build(MoCHi, num_hard=32, num_pair_mix=0, num_query_mix=0)
    for _ in range(3):
        torch.testing.assert_close(mochi.step(BATCH).loss, moco.step(BATCH).loss)


def test_mochi_before_its_start_epoch_is_moco():
    moco = _build(MoCo)
    mochi = _build(MoCHi, num_hard=32, num_pair_mix=16, num_query_mix=8, mix_start_epoch=5)
    torch.testing.assert_close(mochi.step(BATCH).loss, moco.step(BATCH).loss)


def test_densecl_matching_uses_backbone_maps_and_is_identity_for_identical_views():
    fmap = torch.randn(2, 8, 3, 3)
    assert torch.equal(match_locations(fmap, fmap), torch.arange(9).expand(2, 9))
    perm = torch.randperm(9)
    shuffled = fmap.flatten(2)[:, :, perm].view_as(fmap)
    assert torch.equal(perm[match_locations(fmap, shuffled)], torch.arange(9).expand(2, 9))


def test_densecl_queues_advance_independently_and_hold_pooled_dense_keys():
    model = _build(DenseCL, dense_dim=16, dense_queue_size=96)
    model.step(BATCH)
    assert int(model.criterion.queue.ptr) == 64 and int(model.dense_criterion.queue.ptr) == 64
    assert model.dense_criterion.queue.keys.shape == (96, 16)
    torch.testing.assert_close(model.dense_criterion.queue.keys[:64].norm(dim=1), torch.ones(64))


def test_moco_split_bn_is_installed():
    model = _build(MoCo, split_bn=4)
    names = {type(m).__name__ for m in model.backbone.modules()}
    assert "SplitBatchNorm2d" in names and "BatchNorm2d" not in names
