"""MoCHi: synthetic hard negatives mixed from each query's hardest queue entries.

Reference: Kalantidis et al., "Hard Negative Mixing for Contrastive Learning", NeurIPS 2020
(``shared/methods/mochi.md``). Pairs are sampled independently with replacement (``i == j``
is possible and then ``h = n_i``), as in the public reimplementations (card §6.5).
"""

from __future__ import annotations

import torch
from torch import Tensor

from contrastkit.functional._validation import check_embeddings
from contrastkit.functional.contrastive import unit_rows

__all__ = ["mix_hard_negatives"]


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
            (e.g. a key of the query's own image still in the queue; card pitfall 6).

    Returns:
        ``[B, s + s', D]`` unit-norm synthetic negatives, type 1 first.

    Example:
        >>> q, queue = torch.randn(4, 16), torch.randn(128, 16)
        >>> mix_hard_negatives(q, queue, num_hard=32, num_pair_mix=8, num_query_mix=4).shape
        torch.Size([4, 12, 16])
    """
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
    q = unit_rows(query.detach())
    total = num_pair_mix + num_query_mix
    if total == 0:
        return q.new_zeros(batch, 0, dim).to(query.dtype)
    queue = negatives.detach().to(q.dtype)
    inv_norm = torch.linalg.vector_norm(queue, dim=1).clamp_min_(1e-12).reciprocal_()
    sims = torch.mm(q, queue.t()).mul_(inv_norm)
    if mask is not None:
        sims.masked_fill_(mask, float("-inf"))
    hardest = sims.topk(num_hard, dim=1, sorted=False).indices

    def pick(count: int) -> Tensor:
        slots = torch.randint(num_hard, (batch, count), generator=generator, device=q.device)
        return hardest.gather(1, slots)

    def uniform(count: int, high: float) -> Tensor:
        return torch.rand(batch, count, generator=generator, device=q.device, dtype=q.dtype) * high

    # Each synthetic vector is a weighted sum of two rows of [queue; q]: one embedding_bag
    # writes them all without [B, s, D] temporaries. Rows of q sit at K + b.
    rows, weights = [], []
    if num_pair_mix:
        i, j, a = pick(num_pair_mix), pick(num_pair_mix), uniform(num_pair_mix, 1.0)
        rows.append(torch.stack([i, j], dim=2))
        weights.append(torch.stack([a * inv_norm[i], (1 - a) * inv_norm[j]], dim=2))
    if num_query_mix:
        j, c = pick(num_query_mix), uniform(num_query_mix, 0.5)
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
