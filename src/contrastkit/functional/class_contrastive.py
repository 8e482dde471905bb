"""CCL's objectives (Chen et al., CVPR 2021; ``docs/methods/ccl.md``): the class-aware contrastive loss and
the symmetric KL divergence between two predictions.

``class_contrastive(f1, f2, labels, tau)`` (the official ``NCE``): with ``c_ij = cos(f1_i, f2_j)``
and ``p_ij = softmax_j(c_ij / tau)`` over the whole batch, positives ``P(i) = {j: y_j = y_i}``
(``i`` included) and negatives ``N(i) = {j: y_j != y_i}``,

    NCE = mean_i [ mean_{j in P(i)} -log p_ij  +  mean_{j in N(i)} -log(1 - p_ij) ].

``-log p`` is taken in log space (``log_softmax``); ``-log(1 - p)`` as ``-log1p(-p)``; the official
code adds 1e-10 inside both logs instead. A row without negatives contributes its positive
term only (the official code divides by ``|N(i)| = 0``; ``docs/methods/ccl.md``). Rows can be masked out
(CCL's videos without audio).

``symmetric_class_contrastive`` is ``NCE(f1, f2) + NCE(f2, f1)`` (the code's ``SNCE``).
``symmetric_kl(o1, o2) = 0.5 mean_i [KL(p||q) + KL(q||p)]`` with ``p, q`` the softmaxes of two
logit tensors; the official code calls it "JSD", but it is not the Jensen-Shannon divergence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit.functional.contrastive import reduce_rows

__all__ = ["class_contrastive", "symmetric_class_contrastive", "symmetric_kl"]


def class_contrastive(
    f1: Tensor,
    f2: Tensor,
    labels: Tensor,
    temperature: float = 0.1,
    *,
    mask: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """CCL's class-aware contrastive loss of ``f1`` ``[B, D]`` against ``f2`` ``[B, D]``.

    Args:
        f1, f2: features (normalised here); row ``i`` of both belongs to sample ``i``.
        labels: ``[B]`` class ids: same-class columns are positives, the others negatives.
        temperature: ``tau`` (0.5 for audio, 0.1 for images in the official code).
        mask: ``[B]`` bool, False drops sample ``i`` both as a row and as a column (missing audio).
        reduction: ``"mean"`` over kept rows, or ``"none"`` (``[B]``, 0 for dropped rows).

    Examples:
        >>> f = torch.eye(4)
        >>> float(class_contrastive(f, f, torch.arange(4), 0.01)) < 1e-6
        True
    """
    if f1.shape != f2.shape or f1.dim() != 2 or labels.shape != (f1.shape[0],):
        raise ValueError(
            f"need f1, f2 [B, D] and labels [B]; got {tuple(f1.shape)}, {tuple(f2.shape)}, {tuple(labels.shape)}"
        )
    compute = torch.promote_types(f1.dtype, torch.float32)
    a, b = F.normalize(f1.to(compute), dim=1), F.normalize(f2.to(compute), dim=1)
    logits = a @ b.t() / temperature
    keep = torch.ones(len(labels), dtype=torch.bool, device=f1.device) if mask is None else mask.to(f1.device)
    logits = logits.masked_fill(~keep[None, :], float("-inf"))  # a dropped sample is no column either
    log_p = torch.log_softmax(logits, dim=1)
    same = labels[:, None] == labels[None, :]
    positive = same & keep[None, :]
    negative = ~same & keep[None, :]
    zero = torch.zeros((), dtype=compute, device=f1.device)
    pos_term = torch.where(positive, -log_p, zero).sum(1) / positive.sum(1).clamp_min(1)
    neg_loss = -torch.log1p(-log_p.exp().clamp(max=1 - 1e-7))
    neg_term = torch.where(negative, neg_loss, zero).sum(1) / negative.sum(1).clamp_min(1)
    rows = torch.where(keep, pos_term + neg_term, zero)
    return reduce_rows(rows, mask=keep, reduction=reduction)


def symmetric_class_contrastive(
    f1: Tensor, f2: Tensor, labels: Tensor, temperature: float = 0.1, *, mask: Tensor | None = None
) -> Tensor:
    """``NCE(f1, f2) + NCE(f2, f1)`` (the official ``SNCE``; symmetric in its arguments)."""
    return class_contrastive(f1, f2, labels, temperature, mask=mask) + class_contrastive(
        f2, f1, labels, temperature, mask=mask
    )


def symmetric_kl(logits1: Tensor, logits2: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """``0.5 mean_i [KL(p_i || q_i) + KL(q_i || p_i)]`` of ``softmax(logits1)``, ``softmax(logits2)``
    ``[B, C]``; gradients reach both sides; 0 for identical inputs, symmetric, non-negative."""
    if logits1.shape != logits2.shape:
        raise ValueError(f"logits must have the same shape, got {tuple(logits1.shape)} and {tuple(logits2.shape)}")
    compute = torch.promote_types(logits1.dtype, torch.float32)
    log_p, log_q = torch.log_softmax(logits1.to(compute), 1), torch.log_softmax(logits2.to(compute), 1)
    rows = 0.5 * ((log_p.exp() * (log_p - log_q)).sum(1) + (log_q.exp() * (log_q - log_p)).sum(1))
    return reduce_rows(rows, mask=mask)
