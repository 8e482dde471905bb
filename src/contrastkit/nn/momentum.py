"""Momentum (EMA) copies of encoders, as MoCo, DenseCL, MoCHi and VideoMoCo use for keys."""

from __future__ import annotations

import copy
from typing import Generic, TypeVar

import torch
from torch import nn

__all__ = ["MomentumEncoder", "ema_update"]

M = TypeVar("M", bound=nn.Module)


@torch.no_grad()
def ema_update(online: nn.Module, momentum: nn.Module, m: float) -> None:
    """``theta_k <- m * theta_k + (1 - m) * theta_q`` over parameters only.

    BatchNorm running statistics are not averaged: they evolve through the momentum
    encoder's own forward passes, as in the official MoCo code (``docs/methods/moco.md``).
    """
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"momentum m must lie in [0, 1], got {m}")
    online_params: list[torch.Tensor] = list(online.parameters())
    momentum_params: list[torch.Tensor] = list(momentum.parameters())
    if len(online_params) != len(momentum_params):
        raise ValueError(
            f"online and momentum encoders differ: {len(online_params)} vs {len(momentum_params)} parameters"
        )
    torch._foreach_mul_(momentum_params, m)
    torch._foreach_add_(momentum_params, online_params, alpha=1.0 - m)


class MomentumEncoder(nn.Module, Generic[M]):
    """A frozen copy of ``online`` that follows it by EMA.

    At construction the copy equals ``online`` exactly and has ``requires_grad=False``.

    Args:
        online: the encoder to follow (not modified).

    Methods pair it with its online encoder in ``momentum_pairs()``; the base then applies
    ``ema_update`` before each step.

    Examples:
        >>> net = nn.Linear(3, 2)
        >>> ema = MomentumEncoder(net)
        >>> ema_update(net, ema.module, 0.99)
        >>> torch.equal(ema.module.weight, net.weight)
        True
    """

    def __init__(self, online: M) -> None:
        super().__init__()
        self.module: M = copy.deepcopy(online)
        for p in self.module.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.module(x)
        return out
