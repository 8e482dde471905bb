"""Shared fixtures of the per-method tests: a digits batch, a small builder, the fixed-batch
training check."""

from __future__ import annotations

import copy

import lightning as L
import torch

from contrastkit.data import load_digits
from contrastkit.methods import MoCHi, OptimizerSettings, SimCLR
from contrastkit.nn import ConvNetSmall
from contrastkit.views import build_augmentation

DIGITS = load_digits(16)
IMAGES, INDICES = DIGITS.train_images[:64], torch.arange(64)
BATCH = {"input": IMAGES, "index": INDICES}


def build(cls, seed=0, **kwargs):
    L.seed_everything(seed, verbose=False)
    backbone = ConvNetSmall(1, 8)
    aug = build_augmentation("digits", 16, DIGITS.mean, DIGITS.std)
    defaults = dict(proj_hidden=64, proj_dim=32)
    if cls is not SimCLR:
        defaults.update(queue_size=128, temperature=0.2)
    if cls is MoCHi:
        defaults.update(num_hard=32, num_pair_mix=16, num_query_mix=8)
    return cls(backbone, aug, optimizer=OptimizerSettings("sgd", lr=0.05), **(defaults | kwargs))


def queues(model):
    return [m for m in model.modules() if m.__class__.__name__ == "Queue"]


def losses_on_a_fixed_batch(model, steps: int = 12) -> list[float]:
    """Same views every step (the step generator depends on the global step, 0 here) and the
    queues reset before each step: only the weights change, so the loss must fall."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    states = [copy.deepcopy(q.state_dict()) for q in queues(model)]
    losses = []
    for _ in range(steps):
        for q, state in zip(queues(model), states):
            q.load_state_dict(state)
        model.on_train_batch_start(None, 0)
        loss = model.step(BATCH).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def assert_falls(losses: list[float]) -> None:
    assert all(torch.isfinite(torch.tensor(losses)))
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.9 * first, losses


def keys_after_a_step(model) -> list[torch.Tensor]:
    """The keys each queue receives from one step on ``BATCH`` (queues reset first)."""
    out = []
    states = [copy.deepcopy(q.state_dict()) for q in queues(model)]
    model.on_train_batch_start(None, 0)
    with torch.no_grad():
        model.step(BATCH)
    for q, state in zip(queues(model), states):
        out.append(q.keys[: int(q.ptr) or q.size].clone())
        q.load_state_dict(state)
    return out


def perturb(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.5)
