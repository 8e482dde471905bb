"""InfoNCE, NT-Xent and their hard-negative (HCL) forms.

References:
    van den Oord et al., "Representation Learning with Contrastive Predictive Coding", 2018.
    He et al., "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020.
    Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020.
    Robinson et al., "Contrastive Learning with Hard Negative Samples", ICLR 2021 (``beta``,
    ``tau_plus``; the form of the official code, see ``docs/methods/hcl.md``).
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
    check_negative_factors,
    check_reduction,
    check_row_weights,
    check_same_shape,
)
from contrastkit.functional._validation import check_finite as check_finite_inputs

__all__ = ["estimator_loss", "info_nce", "negative_logits", "nt_xent", "reduce_rows", "unit_rows"]


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
    factors: Sequence[Tensor | None] | None = None,
    weights: Tensor | None = None,
    mask: Tensor | None = None,
    fused: bool | None = None,
) -> Tensor:
    """HCL/InfoNCE estimator over prepared inputs (building block of the public losses).

    The reference path reads top to bottom: negative logits (``negative_logits``) -> per-row
    estimator -> per-row weights and mask -> reduction (``reduce_rows``). The fused CPU kernel
    (``_kernel``) computes the same numbers for the plain case (no factors, weights or mask,
    reduction ``"mean"``/``"sum"``) and is tested equal to this path.

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
        factors: per group, ``None`` or a ``[K]`` / ``[B, K]`` factor multiplying that group's
            similarities before the temperature (VideoMoCo's ``t^age``).
        weights, mask: per-row weights ``[B]`` and keep-mask ``[B]`` (see ``reduce_rows``).
        fused: ``None`` picks the fused kernel where it computes the same thing (CPU, plain,
            reduced); ``False`` forces the reference path; ``True`` insists on the kernel.

    Returns:
        A scalar, or ``[B]`` with ``reduction="none"``.
    """
    factors = list(factors) if factors is not None else [None] * len(negatives)
    plain = all(f is None for f in factors) and weights is None and mask is None
    eligible = plain and reduction != "none"
    if fused and not eligible:
        raise ValueError(
            "fused=True needs plain inputs (no negative_factors, weights or mask) and reduction 'mean' or 'sum'"
        )
    if fused or (fused is None and eligible and not query.is_cuda):
        return FusedContrastiveLoss.apply(query, pos_logits, cfg, reduction, normalize, tuple(excludes), *negatives)
    logits, num_neg = negative_logits(query, negatives, excludes, cfg.temperature, normalize, factors)
    pos = pos_logits.to(logits.dtype)
    if cfg.beta == 0 and cfg.tau_plus == 0:  # plain InfoNCE: one fused cross-entropy kernel on GPUs
        target = torch.zeros(len(pos), dtype=torch.long, device=pos.device)
        rows = F.cross_entropy(torch.cat([pos[:, None], logits], dim=1), target, reduction="none")
    else:
        lse = tuple(torch.logsumexp(logits * s, dim=1) for s in cfg.scales)
        rows, _, _ = row_estimator(pos, lse, num_neg, cfg)
    return reduce_rows(rows, weights=weights, mask=mask, reduction=reduction)


def negative_logits(
    query: Tensor,
    negatives: Sequence[Tensor],
    excludes: Sequence[tuple[Tensor, ...]],
    temperature: float,
    normalize: bool,
    factors: Sequence[Tensor | None] | None = None,
) -> tuple[Tensor, Tensor]:
    """All negative logits ``[B, K_total]`` (excluded columns ``-inf``) and counts ``[B]``.

    For a group with vectors ``n_j``: ``logit_bj = factor_j * (q_b . n_j) / t`` (factor 1 when
    the group has none). The factor scales the *similarity* of already-normalised vectors, as
    VideoMoCo's temporal decay does (``docs/methods/videomoco.md``), so normalisation cannot
    undo it. This is the straightforward path, used for ``reduction="none"`` (double backward
    works), for factors, weights and masks, and on GPUs, where a handful of large kernels beats
    the CPU-oriented streaming of ``_kernel``.
    """
    compute = torch.promote_types(query.dtype, torch.float32)
    q = query.to(compute)
    blocks = []
    num_neg = torch.zeros(q.shape[0], dtype=compute, device=q.device)
    for i, (neg, exclude) in enumerate(zip(negatives, excludes)):
        vectors = unit_rows(neg) if normalize and _frozen(neg) else neg.to(compute)
        sims = q @ vectors.t() if vectors.dim() == 2 else torch.einsum("bd,bkd->bk", q, vectors)
        factor = factors[i] if factors is not None else None
        if factor is not None:
            sims = sims * factor.to(compute)
        if exclude:
            dropped = torch.zeros_like(sims, dtype=torch.bool)
            rows = torch.arange(q.shape[0], device=q.device)
            for cols in exclude:
                dropped[rows, cols] = True
            sims = sims.masked_fill(dropped, float("-inf"))
        blocks.append(sims / temperature)
        num_neg += vectors.shape[-2] - len(exclude)
    return torch.cat(blocks, dim=1), num_neg


def reduce_rows(
    rows: Tensor, *, weights: Tensor | None = None, mask: Tensor | None = None, reduction: str = "mean"
) -> Tensor:
    """Reduce per-row losses ``[B]`` with optional per-row weights and a keep-mask.

    - ``"mean"``: ``sum_b m_b w_b l_b / sum_b m_b w_b``, a weighted mean (CrossCLR's form; the
      plain mean without weights); 0 when no row is kept.
    - ``"sum"``: ``sum_b m_b w_b l_b``.
    - ``"none"``: ``[B]`` of ``w_b l_b`` for kept rows and 0 for masked ones, so that its sum is
      the ``"sum"`` reduction.

    Args:
        rows: ``[B]`` per-row losses.
        weights: ``[B]`` non-negative weights (None = 1).
        mask: ``[B]`` bool, True = keep the row (None = keep all; e.g. CCL's missing audio).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Examples:
        >>> reduce_rows(torch.tensor([1.0, 2.0, 9.0]), weights=torch.tensor([1.0, 3.0, 1.0]),
        ...             mask=torch.tensor([True, True, False]))
        tensor(1.7500)
    """
    check_reduction(reduction)
    if weights is None and mask is None:
        return rows if reduction == "none" else rows.sum() if reduction == "sum" else rows.mean()
    check_row_weights(weights, mask, len(rows))
    w = torch.ones_like(rows) if weights is None else weights.to(rows.dtype)
    if mask is not None:
        w = torch.where(mask, w, torch.zeros_like(w))
    weighted = torch.where(w > 0, w * rows, torch.zeros_like(rows))  # a dropped row's inf/nan stays out
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return weighted.sum()
    return weighted.sum() / w.sum().clamp_min(torch.finfo(w.dtype).tiny)


def info_nce(
    query: Tensor,
    positive: Tensor,
    negatives: Tensor | Sequence[Tensor] | None = None,
    *,
    in_batch: bool | None = None,
    negative_factors: Tensor | Sequence[Tensor | None] | None = None,
    weights: Tensor | None = None,
    mask: Tensor | None = None,
    temperature: float = 0.1,
    beta: float = 0.0,
    tau_plus: float = 0.0,
    normalize: bool = True,
    reduction: str = "mean",
    fused: bool | None = None,
    check_finite: bool | None = None,
) -> Tensor:
    """InfoNCE with optional HCL hard-negative weighting and debiasing.

    For anchor ``b``: ``-log(e^{q.k/t} / (e^{q.k/t} + Ng))`` where ``Ng`` is the sum of
    ``e^{q.n/t}`` over the negatives (``beta = tau_plus = 0``), or HCL's reweighted and
    debiased estimate of it (``docs/methods/hcl.md``; clamped at ``N e^{-1/t}`` when ``tau_plus > 0``).

    Args:
        query: ``[B, D]`` anchors (gradient flows).
        positive: ``[B, D]`` one positive per anchor (e.g. a momentum key).
        negatives: ``[K, D]`` shared by all anchors (a queue), ``[B, K, D]`` per anchor,
            a sequence of those (concatenated along K, e.g. ``(queue, mixed)`` for MoCHi),
            or ``None``: in-batch only.
        in_batch: also use the other rows' positives as negatives (``K += B - 1``). Defaults
            to True without ``negatives`` and False with them; True with ``negatives`` gives
            in-batch negatives plus extra groups, e.g. one per-anchor hard negative
            ``[B, 1, D]`` (long/short views' shuffled aggregate).
        negative_factors: per group of ``negatives``, ``None`` or a factor ``[K]`` (or
            ``[B, K]``) multiplying that group's cosine similarities before the temperature:
            ``l_bj = f_j (q_b . n_j) / t``. VideoMoCo's temporal decay is
            ``negative_factors=decay ** queue.age()`` on the queue (``docs/methods/videomoco.md``); it is
            applied to the similarity of normalised vectors, so ``normalize`` keeps it.
        weights: ``[B]`` non-negative per-row weights; ``"mean"`` becomes the weighted mean
            ``sum w l / sum w`` (CrossCLR's anchor weighting).
        mask: ``[B]`` bool, False drops the row from the loss (CCL's missing audio).
        temperature: ``t`` > 0; divides every logit.
        beta: HCL concentration >= 0 (0 = uniform weights).
        tau_plus: HCL class prior in ``[0, 1)`` (0 = no debiasing).
        normalize: L2-normalise every input first.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (``[B]``; see ``reduce_rows``
            for weights and masks).
        fused: ``None`` (auto), ``False`` (always the readable reference path) or ``True``;
            see ``estimator_loss``.
        check_finite: raise ``ValueError`` naming an input with NaN/inf values (None: the
            ``set_finite_checks`` setting, off unless the command line runs).

    Returns:
        The loss, float32 (float64 for float64 inputs) whatever the input dtype, computed
        in log space; finite for float16/bfloat16/float32 inputs at ``t`` in [0.01, 1].

    Note:
        On CPU with ``reduction`` "mean"/"sum" and no factors, weights or mask, the gradient is
        computed during the forward pass (see ``_kernel``) and is first-order only; use
        ``reduction="none"`` or ``fused=False`` if you need double backward. On GPUs the logits
        are built in one piece and reduced with ``cross_entropy`` (plain) or ``logsumexp`` (HCL).
        On CPU, HCL (``beta > 0``) keeps its ``B x K`` temporaries (a queue's exponentials, the
        in-batch weight matrix) in per-thread workspaces reused across calls (each at most
        256 MiB; larger problems stream or allocate afresh).

    Examples:
        >>> q, k, queue = torch.randn(8, 16), torch.randn(8, 16), torch.randn(64, 16)
        >>> loss = info_nce(q, k, queue, temperature=0.2)
        >>> float(loss) > 0
        True
        >>> ages = torch.arange(64)
        >>> decayed = info_nce(q, k, queue, negative_factors=0.99 ** ages, temperature=0.2)
    """
    cfg, q, k, pos_logits = prepare_pairs(query, positive, temperature, beta, tau_plus, normalize, reduction)
    check_finite_inputs(check_finite, query=query, positive=positive, negatives=negatives)
    use_batch = negatives is None if in_batch is None else in_batch
    if negatives is None and not use_batch:
        raise ValueError("in_batch=False needs negatives; there is nothing to contrast against")
    if use_batch and query.shape[0] < 2:
        raise ValueError(f"in-batch negatives need at least 2 rows, got query of shape {tuple(query.shape)}")
    groups, factors = [], []
    if negatives is not None:
        items = [negatives] if isinstance(negatives, Tensor) else list(negatives)
        raw_factors = check_negative_factors(negative_factors, items, query.shape[0])
        kept = as_negative_list(negatives, query)
        factors = [f for f, n in zip(raw_factors, items) if any(n is m for m in kept)]
        groups = [n if _frozen(n) or not normalize else unit_rows(n) for n in kept]
    elif negative_factors is not None:
        raise ValueError("negative_factors needs negatives (one factor per group)")
    excludes: list[tuple[Tensor, ...]] = [()] * len(groups)
    if use_batch:
        groups, factors = [k, *groups], [None, *factors]
        excludes = [(torch.arange(query.shape[0], device=query.device),), *excludes]
    return estimator_loss(
        q,
        pos_logits,
        groups,
        excludes,
        cfg,
        normalize=normalize,
        reduction=reduction,
        factors=factors,
        weights=weights,
        mask=mask,
        fused=fused,
    )


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
    check_finite: bool | None = None,
) -> Tensor:
    """SimCLR's NT-Xent over 2B anchors, each with the other 2B - 2 views as negatives.

    With ``beta``/``tau_plus`` it is HCL's image objective exactly as in ``docs/methods/hcl.md``
    (``N = 2B - 2``; both views act as anchors).

    Args:
        z1: ``[B, D]`` first view; row ``i`` and ``z2[i]`` are a positive pair.
        z2: ``[B, D]`` second view.
        temperature, beta, tau_plus, normalize, reduction, check_finite: as in ``info_nce``.

    Returns:
        The mean over the 2B anchors (or ``[2B]`` with ``reduction="none"``: ``z1`` rows first).

    Examples:
        >>> z1, z2 = torch.randn(8, 16), torch.randn(8, 16)
        >>> loss = nt_xent(z1, z2, beta=1.0, tau_plus=0.1)
        >>> bool(torch.isfinite(loss))
        True
    """
    check_embeddings("z1", z1)
    check_embeddings("z2", z2)
    check_same_shape("z1", z1, "z2", z2)
    check_finite_inputs(check_finite, z1=z1, z2=z2)
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
