"""MoCo v2 (moco.md): trains, keys come from the momentum encoder, split BN is installed."""

from __future__ import annotations

import pytest
import torch

from contrastkit.methods import DenseCL, MoCHi, MoCo
from tests.methods.helpers import (
    BATCH,
    assert_falls,
    build,
    keys_after_a_step,
    losses_on_a_fixed_batch,
    perturb,
    queues,
)


@pytest.mark.parametrize("kwargs", [{}, dict(beta=1.0, tau_plus=0.1)], ids=["moco", "moco-hcl"])
def test_loss_falls_on_a_fixed_batch(kwargs):
    assert_falls(losses_on_a_fixed_batch(build(MoCo, **kwargs)))


@pytest.mark.parametrize("cls", [MoCo, MoCHi, DenseCL])
def test_keys_carry_no_gradient(cls):
    model = build(cls)
    model.step(BATCH).loss.backward()
    momentum = [p for name, p in model.named_parameters() if name.startswith("momentum_")]
    assert momentum and all(p.grad is None and not p.requires_grad for p in momentum)
    assert all(not q.keys.requires_grad for q in queues(model))
    assert model.backbone.body[0].weight.grad is not None


@pytest.mark.parametrize("cls", [MoCo, MoCHi, DenseCL])
def test_keys_come_from_the_momentum_encoder(cls):
    """With m = 1 the EMA leaves the momentum encoder as it is: perturbing the online encoder
    must leave every enqueued key unchanged, perturbing the momentum encoder must change them."""
    model = build(cls, ema_momentum=1.0, **({"dense_dim": 16} if cls is DenseCL else {}))
    before = keys_after_a_step(model)
    perturb(model.backbone)
    perturb(model.projection)
    for got, want in zip(keys_after_a_step(model), before):
        torch.testing.assert_close(got, want)
    perturb(model.momentum_backbone)
    for got, want in zip(keys_after_a_step(model), before):
        assert not torch.allclose(got, want)


def test_split_bn_is_installed():
    model = build(MoCo, split_bn=4)
    names = {type(m).__name__ for m in model.backbone.modules()}
    assert "SplitBatchNorm2d" in names and "BatchNorm2d" not in names


def test_smoke_shrinks_the_queue_only():
    from contrastkit.methods import MoCoParams

    method = {"name": "moco", "queue_size": 65536, "temperature": 0.2}
    MoCoParams.smoke(method)
    assert method == {"name": "moco", "queue_size": 256, "temperature": 0.2}


@pytest.mark.parametrize("cls", [MoCo, MoCHi])
def test_symmetric_moco_never_meets_a_key_of_its_own_batch_among_its_negatives(cls):
    """Both directions' losses read the queue as it was before the step; both directions' keys
    enter it afterwards, in one enqueue (the official symmetric MoCo)."""
    model = build(cls, symmetric=True, queue_size=256)
    queue = model.criterion.queue
    seen = []
    model.criterion.register_forward_pre_hook(lambda module, args: seen.append(queue.keys.clone()))
    before = queue.keys.clone()
    model.step(BATCH)
    assert len(seen) == 2 and all(torch.equal(keys, before) for keys in seen)
    assert int(queue.step) == 1 and int(queue.ptr) == 2 * len(BATCH["index"])
    assert torch.equal(queue.sample_ids[: 2 * len(BATCH["index"])], torch.cat([BATCH["index"], BATCH["index"]]))


def test_the_queue_takes_the_keys_after_the_loss_in_the_method():
    model = build(MoCo, queue_size=256)
    with torch.no_grad():
        (k,) = model.keys(model.views(BATCH["input"])[1])
    model.step(BATCH)
    torch.testing.assert_close(model.criterion.queue.keys[: len(k)], torch.nn.functional.normalize(k, dim=1))
