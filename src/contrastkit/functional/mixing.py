"""MoCHi: synthetic hard negatives mixed from each query's hardest queue entries.

Reference: Kalantidis et al., "Hard Negative Mixing for Contrastive Learning", NeurIPS 2020
(``docs/methods/mochi.md``). Pairs are sampled independently with replacement (``i == j``
is possible and then ``h = n_i``), as in the public reimplementations (``docs/methods/mochi.md``, "Where we differ").
"""

from __future__ import annotations

import torch
from torch import Tensor

from contrastkit.functional._mochi_kernel import MixedQueueLoss, draw_mixes, hardest_negatives
from contrastkit.functional._validation import check_embeddings
from contrastkit.functional._validation import check_finite as check_finite_inputs
from contrastkit.functional.contrastive import info_nce, prepare_pairs, unit_rows

__all__ = ["mix_hard_negatives", "mochi_info_nce"]


@torch.no_grad()
def mix_hard_negatives(
    query: Tensor,
    negatives: Tensor,
    *,
    num_hard: int,
    num_pair_mix: int,
    num_query_mix: int,
    generator: torch.Generator | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """Synthesise MoCHi(N, s, s') hard negatives for each query.

    For query ``b``, rank the negatives by cosine similarity and keep the top ``N =
    num_hard`` (per row: every query has its own hardest set). Then

    - type 1 (``s = num_pair_mix``): ``h = normalize(a n_i + (1 - a) n_j)``, ``i, j`` drawn
      uniformly from the top-N, ``a ~ U(0, 1)``;
    - type 2 (``s' = num_query_mix``): ``h' = normalize(c q + (1 - c) n_j)``, ``c ~ U(0, 0.5)``.

    Every draw is independent per query and per synthetic vector. The result carries no
    gradient (the query is detached), and is meant to be passed to ``info_nce`` next to the
    queue: ``info_nce(q, k, (queue, mixed))``. It is never enqueued.

    Args:
        query: ``[B, D]`` queries (any norm; detached and normalised here).
        negatives: ``[K, D]`` the queue (any norm; normalised here).
        num_hard: ``N``, 1 <= N <= K.
        num_pair_mix: ``s`` >= 0.
        num_query_mix: ``s'`` >= 0.
        generator: random source for the pairs and coefficients.
        mask: optional ``[B, K]`` bool, True where an entry may not be used for row ``b``
            (e.g. a key of the query's own image still in the queue; ``docs/methods/mochi.md``).

    Returns:
        ``[B, s + s', D]`` unit-norm synthetic negatives, type 1 first.

    Examples:
        >>> q, queue = torch.randn(4, 16), torch.randn(128, 16)
        >>> mix_hard_negatives(q, queue, num_hard=32, num_pair_mix=8, num_query_mix=4).shape
        torch.Size([4, 12, 16])
    """
    _check_mixing(query, negatives, num_hard, num_pair_mix, num_query_mix, mask)
    batch, dim = query.shape
    size = negatives.shape[0]
    q = unit_rows(query.detach())
    total = num_pair_mix + num_query_mix
    if total == 0:
        return q.new_zeros(batch, 0, dim).to(query.dtype)
    queue = negatives.detach().to(q.dtype)
    inv_norm = torch.linalg.vector_norm(queue, dim=1).clamp_min_(1e-12).reciprocal_()
    sims = torch.mm(q, queue.t()).mul_(inv_norm)
    draws = draw_mixes(hardest_negatives(sims, num_hard, mask), num_pair_mix, num_query_mix, generator, q.dtype)
    # Each synthetic vector is a weighted sum of two rows of [queue; q]: one embedding_bag
    # writes them all without [B, s, D] temporaries. Rows of q sit at K + b.
    rows, weights = [], []
    if num_pair_mix:
        i, j, a = draws.pair_i, draws.pair_j, draws.pair_weight
        rows.append(torch.stack([i, j], dim=2))
        weights.append(torch.stack([a * inv_norm[i], (1 - a) * inv_norm[j]], dim=2))
    if num_query_mix:
        j, c = draws.query_j, draws.query_weight
        own = torch.arange(size, size + batch, device=q.device)[:, None].expand(batch, num_query_mix)
        rows.append(torch.stack([own, j], dim=2))
        weights.append(torch.stack([c, (1 - c) * inv_norm[j]], dim=2))
    mixed = torch.nn.functional.embedding_bag(
        torch.cat(rows, dim=1).reshape(-1, 2),
        torch.cat([queue, q]),
        per_sample_weights=torch.cat(weights, dim=1).reshape(-1, 2),
        mode="sum",
    )
    mixed.mul_(torch.linalg.vector_norm(mixed, dim=1, keepdim=True).clamp_min_(1e-12).reciprocal_())
    return mixed.view(batch, total, dim).to(query.dtype)


def _check_mixing(
    query: Tensor, negatives: Tensor, num_hard: int, num_pair_mix: int, num_query_mix: int, mask: Tensor | None
) -> None:
    check_embeddings("query", query)
    check_embeddings("negatives", negatives)
    batch, dim = query.shape
    size = negatives.shape[0]
    if negatives.shape[1] != dim:
        raise ValueError(
            f"negatives has feature dimension {negatives.shape[1]} but query has {dim} "
            f"(shapes {tuple(negatives.shape)} and {tuple(query.shape)})"
        )
    if not 1 <= num_hard <= size:
        raise ValueError(f"num_hard must lie in [1, K={size}], got {num_hard}")
    if num_pair_mix < 0 or num_query_mix < 0:
        raise ValueError(f"num_pair_mix and num_query_mix must be >= 0, got {num_pair_mix} and {num_query_mix}")
    if mask is not None and mask.shape != (batch, size):
        raise ValueError(f"mask must have shape {(batch, size)}, got {tuple(mask.shape)}")


def mochi_info_nce(
    query: Tensor,
    positive: Tensor,
    queue: Tensor,
    *,
    num_hard: int,
    num_pair_mix: int,
    num_query_mix: int,
    temperature: float = 0.1,
    beta: float = 0.0,
    tau_plus: float = 0.0,
    reduction: str = "mean",
    generator: torch.Generator | None = None,
    mask: Tensor | None = None,
    check_finite: bool | None = None,
) -> Tensor:
    """MoCo's queue loss with MoCHi's synthetic hard negatives, in one call.

    Equals ``info_nce(query, positive, (queue, mix_hard_negatives(query, queue, ...)),
    temperature=..., beta=..., tau_plus=...)`` draw for draw (same ``generator`` state, same
    mixes), inputs normalised as there. On CPU with ``reduction`` "mean"/"sum" it never builds
    the ``[B, s + s', D]`` mixes: their logits come from the queue similarities the top-N
    selection needs anyway, and their gradient share is scattered onto the queue columns
    (see ``_mochi_kernel``). Elsewhere it runs the composition above.

    Args:
        query: ``[B, D]`` anchors (gradient flows; the mixes see them detached).
        positive: ``[B, D]`` keys.
        queue: ``[K, D]`` frozen negatives (no gradient).
        num_hard, num_pair_mix, num_query_mix, generator, mask: as ``mix_hard_negatives``.
        temperature, beta, tau_plus, reduction, check_finite: as ``info_nce``.

    Returns:
        A scalar (or ``[B]`` with ``reduction="none"``).

    Examples:
        >>> q, k, queue = torch.randn(4, 16), torch.randn(4, 16), torch.randn(128, 16)
        >>> loss = mochi_info_nce(q, k, queue, num_hard=32, num_pair_mix=8, num_query_mix=4)
    """
    check_finite_inputs(check_finite, query=query, positive=positive, queue=queue)
    fused = reduction != "none" and not query.is_cuda and not queue.requires_grad
    if not fused or num_pair_mix + num_query_mix == 0:
        mixed = mix_hard_negatives(
            query,
            queue,
            num_hard=num_hard,
            num_pair_mix=num_pair_mix,
            num_query_mix=num_query_mix,
            generator=generator,
            mask=mask,
        )
        return info_nce(
            query,
            positive,
            (queue, mixed),
            temperature=temperature,
            beta=beta,
            tau_plus=tau_plus,
            reduction=reduction,
            check_finite=False,  # checked above; the mixes are convex combinations of checked rows
        )
    _check_mixing(query, queue, num_hard, num_pair_mix, num_query_mix, mask)
    cfg, q, _, pos_logits = prepare_pairs(query, positive, temperature, beta, tau_plus, True, reduction)
    mixing = (num_hard, num_pair_mix, num_query_mix, generator, mask)
    return MixedQueueLoss.apply(q, pos_logits, queue.detach(), cfg, reduction, mixing)
