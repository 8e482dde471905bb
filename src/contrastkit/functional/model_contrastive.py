"""MOON's model-contrastive term (Li, He, Song, CVPR 2021; ``docs/methods/moon.md``).

    l_con = -log( e^{sim(z, z_glob)/t} / (e^{sim(z, z_glob)/t} + sum_m e^{sim(z, z_prev_m)/t}) )

with cosine similarity. It is InfoNCE with the global model's representation as the positive
and each previous local model's as a per-sample negative. The problem is tiny (``B x (1 + M)``
logits, one per model), so it is computed directly, as the official code does, with one
``cross_entropy``: there ``info_nce``'s general machinery (validation of every group, a custom
autograd pass) costs more than the arithmetic, about 0.6 ms of a 4 ms local step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit.functional._validation import (
    check_embeddings,
    check_hyperparameters,
    check_reduction,
    check_same_shape,
)
from contrastkit.functional.contrastive import unit_rows

__all__ = ["model_contrastive"]


def model_contrastive(
    z: Tensor, z_global: Tensor, z_prev: Tensor | None, *, temperature: float = 0.5, reduction: str = "mean"
) -> Tensor:
    """MOON's term, averaged over the batch.

    Args:
        z: ``[B, D]`` representations of the model being trained (gradient flows).
        z_global: ``[B, D]`` of the frozen global model (the positive).
        z_prev: ``[B, D]`` (one previous model), ``[M, B, D]`` (a pool of ``M``) or ``None``:
            with no previous model the logits have one column and the term is exactly 0
            (the official code's round 0).
        temperature: ``tau`` (0.5 in the paper).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        The term in float32 (float64 for float64 inputs): a scalar, or ``[B]`` with
        ``reduction="none"``.

    Examples:
        >>> import torch
        >>> z, zg, zp = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 8)
        >>> bool(model_contrastive(z, zg, zp) > 0)
        True
    """
    check_embeddings("z", z)
    check_embeddings("z_global", z_global)
    check_same_shape("z", z, "z_global", z_global)
    check_hyperparameters(temperature, 0.0, 0.0)
    check_reduction(reduction)
    if z_prev is None:
        zero = (z * 0.0).sum(dim=1)
        return zero if reduction == "none" else zero.sum() if reduction == "sum" else zero.mean()
    prev = z_prev.unsqueeze(0) if z_prev.dim() == 2 else z_prev
    if prev.dim() != 3 or prev.shape[1:] != z.shape:
        raise ValueError(f"z_prev must be [B, D] or [M, B, D] matching z {tuple(z.shape)}, got {tuple(z_prev.shape)}")
    anchor = unit_rows(z)
    others = torch.cat([unit_rows(z_global).unsqueeze(0), unit_rows(prev)])  # [1 + M, B, D], positive first
    logits = torch.einsum("bd,mbd->bm", anchor, others.to(anchor.dtype)) / temperature
    target = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, target, reduction=reduction)
