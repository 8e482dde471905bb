"""Objectives of the video methods on embeddings (pure functions of tensors).

- ``intra_loss``: SeCo's intra-video loss, one of VCLR's four terms
  (Kuang et al., ICCV-W 2021; ``docs/video.md``);
- ``stationary_loss``, ``nonstationary_loss``: the long/short-view decomposition
  (Behrmann et al., ICCV 2021); ``temporal_loss``: our temporal-negative term for it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit.functional.contrastive import info_nce

__all__ = ["intra_loss", "nonstationary_loss", "stationary_loss", "temporal_loss"]


def intra_loss(w: Tensor, b_1: Tensor, b_others: Tensor, temperature: float = 0.1) -> Tensor:
    """SeCo's intra-video loss: for every other segment ``j``, two logits
    ``[w.b_1, w.b_j] / tau`` with target 0, averaged over the ``B (S - 1)`` rows.

    Args:
        w: ``[B, D]`` the anchor's intra embedding (normalised here).
        b_1: ``[B, D]`` the momentum embedding of the anchor's frame re-augmented.
        b_others: ``[B, S - 1, D]`` the momentum embeddings of the other segments' frames.
    """
    w, b_1, b_others = F.normalize(w, dim=-1), F.normalize(b_1, dim=-1), F.normalize(b_others, dim=-1)
    positive = (w * b_1).sum(-1)[:, None].expand(b_others.shape[:2])
    negative = (w[:, None] * b_others).sum(-1)
    logits = torch.stack([positive, negative], dim=2).flatten(0, 1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


def stationary_loss(short: Tensor, long: Tensor, temperature: float = 0.1, symmetric: bool = True) -> Tensor:
    """``L_stat``: short views ``[B, K, d]`` against their long view ``[B, d]``, the other videos'
    long views as negatives, averaged over ``K`` (and the symmetric term, averaged with it)."""
    k = short.shape[1]
    loss = torch.stack([info_nce(short[:, j], long, temperature=temperature) for j in range(k)]).mean()
    if symmetric:
        back = torch.stack([info_nce(long, short[:, j], temperature=temperature) for j in range(k)]).mean()
        loss = 0.5 * (loss + back)
    return loss


def nonstationary_loss(
    long: Tensor,
    short: Tensor,
    aggregate: Callable[[Tensor], Tensor],
    order: Tensor | None = None,
    temperature: float = 0.1,
    symmetric: bool = False,
) -> Tensor:
    """``L_nons``: the long view's ``z^n`` ``[B, d]`` against the aggregate of its short views
    ``[B, K, d]``; negatives: the other videos' aggregates and, with ``order`` ``[B, K]``, the
    aggregate of the same short views in that order (the hard negative)."""
    a = aggregate(short)
    if order is not None:
        shuffled = short.gather(1, order[..., None].expand_as(short))
        loss = info_nce(long, a, aggregate(shuffled)[:, None], in_batch=True, temperature=temperature)
    else:
        loss = info_nce(long, a, temperature=temperature)
    if symmetric:
        loss = 0.5 * (loss + info_nce(a, long, temperature=temperature))
    return loss


def temporal_loss(short: Tensor, predicted: Tensor, temperature: float = 0.1) -> Tensor:
    """``L_temp``: each short view's code ``[B, K, d]`` against the code predicted for its
    position from its long view ``[B, K, d]``; the other ``B K - 1`` predictions of the batch
    (the same video's other positions among them) are the negatives."""
    return info_nce(short.flatten(0, 1), predicted.flatten(0, 1), temperature=temperature)
