"""InfoNCE, NT-Xent and their hard-negative (HCL) forms.

References:
    van den Oord et al., "Representation Learning with Contrastive Predictive Coding", 2018.
    He et al., "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020.
    Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020.
    Robinson et al., "Contrastive Learning with Hard Negative Samples", ICLR 2021 (``beta``,
    ``tau_plus``; the form of the official code, see ``shared/methods/hcl.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit.functional._kernel import FusedContrastiveLoss, ObjectiveConfig, row_estimator
from contrastkit.functional._validation import (
    as_negative_list,
    check_embeddings,
    check_hyperparameters,
    check_reduction,
    check_same_shape,
)

__all__ = ["info_nce", "nt_xent", "estimator_loss", "unit_rows"]


def unit_rows(x: Tensor) -> Tensor:
    """L2-normalise the last dimension in (at least) float32, safely for float16 inputs."""
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    return x * torch.rsqrt(x.square().sum(dim=-1, keepdim=True).clamp_min(1e-24))


def _frozen(neg: Tensor) -> bool:
    """True if no gradient will be asked of ``neg`` (a queue, detached keys, MoCHi mixes)."""
    return not (neg.requires_grad and torch.is_grad_enabled())


def estimator_loss(
    query: Tensor,
    pos_logits: Tensor,
    negatives: Sequence[Tensor],
    excludes: Sequence[tuple[Tensor, ...]],
    cfg: ObjectiveConfig,
    *,
    normalize: bool,
    reduction: str,
) -> Tensor:
    """HCL/InfoNCE estimator over prepared inputs (building block of the public losses).

    Args:
        query: ``[B, D]`` anchors, already unit-norm if ``normalize``.
        pos_logits: ``[B]`` positive logits ``q.k / t``.
        negatives: groups of ``[K, D]`` (shared) or ``[B, K, D]`` (per anchor) vectors.
            Groups that need no gradient may be raw: with ``normalize`` they are
            normalised inside, without copies. Groups that need one must arrive normalised.
            A group may be ``query`` itself (self-similarity, as in NT-Xent).
        excludes: per group, ``[B]`` column indices to drop from each row (a row's own
            positive when the negatives are the batch). Indices within a row must differ.
        cfg: temperature, beta, tau_plus.
        normalize: whether groups that need no gradient must be normalised.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or ``[B]`` with ``reduction="none"``.
    """
    if reduction != "none" and not query.is_cuda:
        return FusedContrastiveLoss.apply(query, pos_logits, cfg, reduction, normalize, tuple(excludes), *negatives)
    logits, num_neg = _negative_logits(query, negatives, excludes, cfg, normalize)
    pos = pos_logits.to(logits.dtype)
    if cfg.beta == 0 and cfg.tau_plus == 0:  # plain InfoNCE: one fused cross-entropy kernel on GPUs
        target = torch.zeros(len(pos), dtype=torch.long, device=pos.device)
        return F.cross_entropy(torch.cat([pos[:, None], logits], dim=1), target, reduction=reduction)
    lse = tuple(torch.logsumexp(logits * s, dim=1) for s in cfg.scales)
    loss, _, _ = row_estimator(pos, lse, num_neg, cfg)
    return loss if reduction == "none" else loss.sum() if reduction == "sum" else loss.mean()


def _negative_logits(
    query: Tensor,
    negatives: Sequence[Tensor],
    excludes: Sequence[tuple[Tensor, ...]],
    cfg: ObjectiveConfig,
    normalize: bool,
) -> tuple[Tensor, Tensor]:
    """All negative logits ``[B, K_total]`` (excluded columns ``-inf``) and counts ``[B]``.

    The straightforward path, used for ``reduction="none"`` (double backward works) and on
    GPUs, where a handful of large kernels beats the CPU-oriented streaming of ``_kernel``.
    """
    compute = torch.promote_types(query.dtype, torch.float32)
    q = query.to(compute)
    blocks = []
    num_neg = torch.zeros(q.shape[0], dtype=compute, device=q.device)
    for neg, exclude in zip(negatives, excludes):
        vectors = unit_rows(neg) if normalize and _frozen(neg) else neg.to(compute)
        logits = q @ vectors.t() if vectors.dim() == 2 else torch.einsum("bd,bkd->bk", q, vectors)
        if exclude:
            mask = torch.zeros_like(logits, dtype=torch.bool)
            rows = torch.arange(q.shape[0], device=q.device)
            for cols in exclude:
                mask[rows, cols] = True
            logits = logits.masked_fill(mask, float("-inf"))
        blocks.append(logits / cfg.temperature)
        num_neg += vectors.shape[-2] - len(exclude)
    return torch.cat(blocks, dim=1), num_neg


def info_nce(
    query: Tensor,
    positive: Tensor,
    negatives: Tensor | Sequence[Tensor] | None = None,
    *,
    temperature: float = 0.1,
    beta: float = 0.0,
    tau_plus: float = 0.0,
    normalize: bool = True,
    reduction: str = "mean",
) -> Tensor:
    """InfoNCE with optional HCL hard-negative weighting and debiasing.

    For anchor ``b``: ``-log(e^{q.k/t} / (e^{q.k/t} + Ng))`` where ``Ng`` is the sum of
    ``e^{q.n/t}`` over the negatives (``beta = tau_plus = 0``), or HCL's reweighted and
    debiased estimate of it (``hcl.md`` §1; clamped at ``N e^{-1/t}`` when ``tau_plus > 0``).

    Args:
        query: ``[B, D]`` anchors (gradient flows).
        positive: ``[B, D]`` one positive per anchor (e.g. a momentum key).
        negatives: ``[K, D]`` shared by all anchors (a queue), ``[B, K, D]`` per anchor,
            a sequence of those (concatenated along K, e.g. ``(queue, mixed)`` for MoCHi),
            or ``None``: in-batch, the other rows' positives (``K = B - 1``).
        temperature: ``t`` > 0; divides every logit.
        beta: HCL concentration >= 0 (0 = uniform weights).
        tau_plus: HCL class prior in ``[0, 1)`` (0 = no debiasing).
        normalize: L2-normalise every input first.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (``[B]``).

    Returns:
        The loss, float32 (float64 for float64 inputs) whatever the input dtype, computed
        in log space; finite for float16/bfloat16/float32 inputs at ``t`` in [0.01, 1].

    Note:
        On CPU with ``reduction`` "mean"/"sum" the gradient is computed during the forward
        pass (see ``_kernel``) and is first-order only; use ``reduction="none"`` and reduce
        yourself if you need double backward. On GPUs the logits are built in one piece and
        reduced with ``cross_entropy`` (plain) or ``logsumexp`` (HCL). On CPU, HCL (``beta > 0``)
        keeps its ``B x K`` temporaries (a queue's exponentials, the in-batch weight matrix) in
        per-thread workspaces reused across calls (each at most 256 MiB; larger problems stream
        or allocate afresh).

    Example:
        >>> q, k, queue = torch.randn(8, 16), torch.randn(8, 16), torch.randn(64, 16)
        >>> loss = info_nce(q, k, queue, temperature=0.2)
        >>> float(loss) > 0
        True
    """
    cfg, q, k, pos_logits = prepare_pairs(query, positive, temperature, beta, tau_plus, normalize, reduction)
    if negatives is None:
        if query.shape[0] < 2:
            raise ValueError(f"in-batch negatives need at least 2 rows, got query of shape {tuple(query.shape)}")
        rows = torch.arange(query.shape[0], device=query.device)
        return estimator_loss(q, pos_logits, [k], [(rows,)], cfg, normalize=normalize, reduction=reduction)
    groups = as_negative_list(negatives, query)
    prepared = [n if _frozen(n) or not normalize else unit_rows(n) for n in groups]
    return estimator_loss(q, pos_logits, prepared, [()] * len(prepared), cfg, normalize=normalize, reduction=reduction)


def prepare_pairs(
    query: Tensor,
    positive: Tensor,
    temperature: float,
    beta: float,
    tau_plus: float,
    normalize: bool,
    reduction: str,
) -> tuple[ObjectiveConfig, Tensor, Tensor, Tensor]:
    """Check an anchor/positive objective's inputs and settings; return the estimator settings,
    the (normalised) ``[B, D]`` anchors and positives, and the ``[B]`` positive logits."""
    check_embeddings("query", query)
    check_embeddings("positive", positive)
    check_same_shape("query", query, "positive", positive)
    check_hyperparameters(temperature, beta, tau_plus)
    check_reduction(reduction)
    q = unit_rows(query) if normalize else query
    k = unit_rows(positive) if normalize else positive
    return ObjectiveConfig(temperature, beta, tau_plus), q, k, (q * k).sum(dim=-1) / temperature


def nt_xent(
    z1: Tensor,
    z2: Tensor,
    *,
    temperature: float = 0.5,
    beta: float = 0.0,
    tau_plus: float = 0.0,
    normalize: bool = True,
    reduction: str = "mean",
) -> Tensor:
    """SimCLR's NT-Xent over 2B anchors, each with the other 2B - 2 views as negatives.

    With ``beta``/``tau_plus`` it is HCL's image objective exactly as in ``hcl.md`` §2
    (``N = 2B - 2``; both views act as anchors).

    Args:
        z1: ``[B, D]`` first view; row ``i`` and ``z2[i]`` are a positive pair.
        z2: ``[B, D]`` second view.
        temperature, beta, tau_plus, normalize, reduction: as in ``info_nce``.

    Returns:
        The mean over the 2B anchors (or ``[2B]`` with ``reduction="none"``: ``z1`` rows first).

    Example:
        >>> z1, z2 = torch.randn(8, 16), torch.randn(8, 16)
        >>> loss = nt_xent(z1, z2, beta=1.0, tau_plus=0.1)
        >>> bool(torch.isfinite(loss))
        True
    """
    check_embeddings("z1", z1)
    check_embeddings("z2", z2)
    check_same_shape("z1", z1, "z2", z2)
    check_hyperparameters(temperature, beta, tau_plus)
    check_reduction(reduction)
    if z1.shape[0] < 2:
        raise ValueError(f"nt_xent needs at least 2 pairs for negatives, got z1 of shape {tuple(z1.shape)}")
    cfg = ObjectiveConfig(temperature, beta, tau_plus)
    a = unit_rows(z1) if normalize else z1
    b = unit_rows(z2) if normalize else z2
    z = torch.cat([a, b], dim=0)
    pos = (a * b).sum(dim=-1) / temperature
    pos_logits = torch.cat([pos, pos])
    n = z1.shape[0]
    rows = torch.arange(2 * n, device=z.device)
    partner = (rows + n) % (2 * n)
    return estimator_loss(z, pos_logits, [z], [(rows, partner)], cfg, normalize=normalize, reduction=reduction)
