"""One party's local training for FedAvg, FedProx and MOON (``docs/methods/moon.md``).

A fresh SGD optimiser every round; ``E`` epochs over the party's data, batch 64. FedProx adds
``(mu / 2) * ||w - w_global||^2``; MOON adds ``mu * model_contrastive(z, z_global, z_prev)``
with the global and previous models frozen and in eval mode, so that ``mu = 0`` gives exactly
FedAvg's update (no extra RNG use, no BatchNorm statistics touched). The frozen models run
stacked as one network where they can (``federated/frozen.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrastkit.federated.frozen import FrozenRepresentations
from contrastkit.federated.model import FederatedModel
from contrastkit.functional.model_contrastive import model_contrastive
from contrastkit.nn.backbones import channels_last

__all__ = ["LocalSettings", "evaluate", "local_train", "pad_crop_flip"]


@dataclass(frozen=True)
class LocalSettings:
    algorithm: str = "fedavg"  # fedavg | fedprox | moon
    epochs: int = 1
    batch_size: int = 64
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-5
    mu: float = 0.0
    temperature: float = 0.5

    def __post_init__(self) -> None:
        if self.algorithm not in ("fedavg", "fedprox", "moon"):
            raise ValueError(f"algorithm must be fedavg, fedprox or moon, got {self.algorithm!r}")


def pad_crop_flip(x: Tensor, pad: int, generator: torch.Generator) -> Tensor:
    """MOON's CIFAR augmentation on a batch: reflect-pad, random crop back, horizontal flip."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(b, x.shape[1], h, padded.shape[-1])
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(b, x.shape[1], h, w)
    out = out.gather(3, cols)
    flip = torch.rand(b, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


def local_train(
    model: FederatedModel,
    images: Tensor,
    labels: Tensor,
    settings: LocalSettings,
    *,
    preprocess: Callable[[Tensor], Tensor],
    augment: bool,
    generator: torch.Generator,
    global_model: FederatedModel | None = None,
    previous_models: list[FederatedModel] | None = None,
) -> dict[str, float]:
    """Train ``model`` in place on ``(images uint8, labels)``; returns mean losses."""
    model.train()
    opt = torch.optim.SGD(
        model.parameters(), lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
    )
    frozen = [m for m in [global_model, *(previous_models or [])] if m is not None]
    for m in frozen:
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
    global_params = (  # only FedProx's term reads them
        [p.detach().clone() for p in global_model.parameters()]
        if settings.algorithm == "fedprox" and global_model is not None
        else []
    )
    frozen_reps = FrozenRepresentations(frozen) if settings.algorithm == "moon" and global_model is not None else None
    totals = {"loss": 0.0, "ce": 0.0, "extra": 0.0}
    steps = 0
    for _ in range(settings.epochs):
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(order), settings.batch_size):
            rows = order[start : start + settings.batch_size]
            x = preprocess(images[rows])
            if augment:
                x = pad_crop_flip(x, 4, generator)
            x = channels_last(x)
            _, z, logits = model(x)
            ce = F.cross_entropy(logits, labels[rows])
            extra = _extra_term(model, x, z, settings, global_params, frozen_reps)
            loss = ce + extra
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            totals["loss"] += float(loss.detach())
            totals["ce"] += float(ce.detach())
            totals["extra"] += float(extra.detach())
            steps += 1
    return {k: v / max(steps, 1) for k, v in totals.items()}


def _extra_term(
    model: nn.Module,
    x: Tensor,
    z: Tensor,
    s: LocalSettings,
    global_params: list[Tensor],
    frozen_reps: FrozenRepresentations | None,
) -> Tensor:
    if s.algorithm == "fedprox" and global_params:
        return (s.mu / 2) * sum(((p - g) ** 2).sum() for p, g in zip(model.parameters(), global_params))  # type: ignore[return-value]
    if frozen_reps is not None:
        reps = frozen_reps(x)  # [1 + M, B, D]: the global model's, then each previous model's
        z_prev = reps[1:] if len(reps) > 1 else None
        return s.mu * model_contrastive(z, reps[0], z_prev, temperature=s.temperature)
    return z.new_zeros(())


@torch.no_grad()
def evaluate(
    model: FederatedModel, images: Tensor, labels: Tensor, preprocess: Callable[[Tensor], Tensor]
) -> dict[str, float]:
    """Top-1 accuracy (percent) and mean cross-entropy of ``model`` in eval mode."""
    model.eval()
    correct, loss = 0, 0.0
    for start in range(0, len(labels), 1024):
        logits = model(channels_last(preprocess(images[start : start + 1024])))[2]
        y = labels[start : start + 1024]
        correct += int((logits.argmax(1) == y).sum())
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
    return {"accuracy": 100.0 * correct / len(labels), "loss": loss / len(labels)}
