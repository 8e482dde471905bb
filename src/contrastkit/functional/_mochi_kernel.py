"""MoCHi's queue loss without building the synthetic negatives (CPU, mean/sum reduction).

``info_nce(q, k, (queue, mix_hard_negatives(q, queue, ...)))`` materialises ``[B, s + s', D]``
mixed vectors, takes ``B (s + s')`` dot products with them and, in the backward pass, sums them
again. Every synthetic vector is a combination of two unit vectors, so both its logit and its
share of the gradient follow from numbers the queue loss already has:

- type 1, ``h = (a n_i + (1-a) n_j) / ||.||``: ``q.h = (a s_i + (1-a) s_j) / ||.||`` where
  ``s = q . n`` are the queue similarities (computed once for the top-N selection and the loss);
  ``||.||`` needs only ``n_i . n_j``.
- type 2, ``h' = (c q + (1-c) n_j) / ||.||``: ``q.h' = (c + (1-c) s_j) / ||.||`` and
  ``||.||^2 = c^2 + (1-c)^2 + 2 c (1-c) s_j``: no vector work at all.

The gradient with respect to the (detached-mix) query is ``sum_m w_m h_m / t``: each ``w_m`` is
scattered onto the queue columns ``i, j`` (and the query itself for type 2), so one
``[B, K] x [K, D]`` product gives the queue's and the mixes' share together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from contrastkit.functional._kernel import (
    ObjectiveConfig,
    _inverse_norms,
    _RowStats,
    _scale_coefficients,
    row_estimator,
    without_autocast,
)


def hardest_negatives(sims: Tensor, num_hard: int, mask: Tensor | None = None) -> Tensor:
    """``[B, num_hard]`` column indices of each row's largest ``sims`` (``[B, K]``), unordered;
    columns where ``mask`` is True are never chosen (while enough others remain).

    Exactly the set ``torch.topk`` selects (up to ties), found faster for a small ``num_hard / K``:
    a strided sample of the columns gives each row a threshold that about 1.3 ``num_hard``
    entries pass; the top ``num_hard`` of those candidates are the row's top ``num_hard``
    whenever at least ``num_hard`` pass, and rows where fewer pass fall back to ``topk``.
    """
    if mask is not None:
        sims = sims.masked_fill(mask, float("-inf"))
    batch, size = sims.shape
    if size < _SELECT_MIN_COLUMNS or num_hard * 4 > size:
        return sims.topk(num_hard, dim=1, sorted=False).indices
    sample = sims[:, :: size // _SELECT_SAMPLE]
    rank = min(sample.shape[1], math.ceil(sample.shape[1] * num_hard / size * 1.3) + 4)
    threshold = sample.topk(rank, dim=1, sorted=False).values.amin(dim=1)
    rows, cols = torch.nonzero(sims >= threshold[:, None], as_tuple=True)
    counts = torch.bincount(rows, minlength=batch)
    short = counts < num_hard
    if bool(short.all()):
        return sims.topk(num_hard, dim=1, sorted=False).indices
    slot = torch.arange(rows.numel(), device=sims.device) - (torch.cumsum(counts, 0) - counts)[rows]
    width = int(counts.max())
    values = torch.full((batch, width), float("-inf"), dtype=sims.dtype, device=sims.device)
    columns = torch.zeros((batch, width), dtype=torch.long, device=sims.device)
    values[rows, slot] = sims[rows, cols]
    columns[rows, slot] = cols
    hardest = columns.gather(1, values.topk(num_hard, dim=1, sorted=False).indices)
    if bool(short.any()):
        hardest[short] = sims[short].topk(num_hard, dim=1, sorted=False).indices
    return hardest


_SELECT_MIN_COLUMNS = 4096
_SELECT_SAMPLE = 1024
"""Threshold selection in ``hardest_negatives``: used from this queue length, with this many
sampled columns per row (measured on 2-core x86: ~0.7x the time of ``topk`` at K = 16384, N = 1024)."""


@dataclass
class MixDraws:
    """MoCHi's random draws for ``B`` queries: queue columns and mixing weights.

    Type 1 (``[B, s]`` each): ``h = a n_i + (1 - a) n_j`` with ``a = pair_weight``; type 2
    (``[B, s']`` each): ``h' = c q + (1 - c) n_j`` with ``c = query_weight``.
    """

    pair_i: Tensor
    pair_j: Tensor
    pair_weight: Tensor
    query_j: Tensor
    query_weight: Tensor


def draw_mixes(
    hardest: Tensor,
    num_pair_mix: int,
    num_query_mix: int,
    generator: torch.Generator | None,
    dtype: torch.dtype = torch.float32,
) -> MixDraws:
    """Draw every pair and weight from ``hardest`` (``[B, N]`` columns) in one fixed order, so the
    fused loss (``mochi_info_nce``) and ``mix_hard_negatives`` agree draw for draw."""
    batch, num_hard = hardest.shape
    device = hardest.device

    def pick(count: int) -> Tensor:
        slots = torch.randint(num_hard, (batch, count), generator=generator, device=device)
        return hardest.gather(1, slots)

    def uniform(count: int, high: float) -> Tensor:
        return torch.rand(batch, count, generator=generator, device=device, dtype=dtype) * high

    pair_i, pair_j, pair_weight = pick(num_pair_mix), pick(num_pair_mix), uniform(num_pair_mix, 1.0)
    query_j, query_weight = pick(num_query_mix), uniform(num_query_mix, 0.5)
    return MixDraws(pair_i, pair_j, pair_weight, query_j, query_weight)


_PAIR_CHUNK_ELEMENTS = 1 << 19
"""Mixed vectors (elements) built at a time to take their norms: about 2 MiB, kept in cache."""


def _pair_norms(unit_queue: Tensor, i: Tensor, j: Tensor, a: Tensor) -> Tensor:
    """``||a n_i + (1-a) n_j||`` for ``[B, s]`` indices and weights, in cache-sized chunks."""
    batch, count = i.shape
    rows = torch.stack([i, j], dim=2).reshape(-1, 2)
    weights = torch.stack([a, 1 - a], dim=2).reshape(-1, 2)
    step = max(1, _PAIR_CHUNK_ELEMENTS // unit_queue.shape[1])
    out = torch.empty(rows.shape[0], dtype=unit_queue.dtype, device=unit_queue.device)
    for start in range(0, rows.shape[0], step):
        part = slice(start, start + step)
        mixed = torch.nn.functional.embedding_bag(rows[part], unit_queue, per_sample_weights=weights[part], mode="sum")
        torch.linalg.vector_norm(mixed, dim=1, out=out[part])
    return out.view(batch, count).clamp_min_(1e-12)


class MixedQueueLoss(torch.autograd.Function):
    """Scalar estimator loss over a frozen queue plus MoCHi's mixes of it; d/dquery and d/dpos."""

    @staticmethod
    @without_autocast
    def forward(
        ctx: Any,
        query: Tensor,
        pos: Tensor,
        queue: Tensor,
        cfg: ObjectiveConfig,
        reduction: str,
        mixing: tuple[int, int, int, torch.Generator | None, Tensor | None],
    ) -> Tensor:
        num_hard, num_pair, num_query, generator, mask = mixing
        compute = torch.promote_types(query.dtype, torch.float32)
        q = query.to(compute)
        batch, dim = q.shape
        inv_t = 1.0 / cfg.temperature
        unit_queue = queue.to(compute) * _inverse_norms(queue).to(compute)[:, None]
        sims = torch.mm(q, unit_queue.t())
        draws = draw_mixes(hardest_negatives(sims, num_hard, mask), num_pair, num_query, generator, compute)
        mix_logits, pair_norm, query_norm = _mix_logits(sims, q, unit_queue, draws)
        stats = _RowStats.empty(cfg.scales, batch, dim, q, track=False)
        queue_tile = stats.fold(sims.mul_(inv_t))  # one piece: column tiles of sims measured slower
        mix_tile = stats.fold(mix_logits.mul_(inv_t))
        lse = stats.lse()
        num_neg = torch.full((batch,), float(queue.shape[0] + num_pair + num_query), dtype=compute, device=q.device)
        loss, coef, dpos = row_estimator(pos.to(compute), lse, num_neg, cfg)
        weight = 1.0 / batch if reduction == "mean" else 1.0
        out = loss.sum() * weight
        coefs = _scale_coefficients(coef * (weight * inv_t), cfg)
        queue_w = queue_tile.gradient(cfg.scales, lse, coefs)  # d loss / d logit of every queue column
        mix_w = mix_tile.gradient(cfg.scales, lse, coefs)
        pair_w, query_w = mix_w[:, :num_pair] / pair_norm, mix_w[:, num_pair:] / query_norm
        queue_w.scatter_add_(1, draws.pair_i, pair_w * draws.pair_weight)
        queue_w.scatter_add_(1, draws.pair_j, pair_w * (1 - draws.pair_weight))
        queue_w.scatter_add_(1, draws.query_j, query_w * (1 - draws.query_weight))
        grad_q = torch.mm(queue_w, unit_queue)
        grad_q += (query_w * draws.query_weight).sum(dim=1, keepdim=True) * q
        ctx.save_for_backward(grad_q, dpos * weight)
        ctx.dtypes = (query.dtype, pos.dtype)
        return out

    @staticmethod
    @without_autocast
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        grad_q, dpos = ctx.saved_tensors
        g = grad_out.to(dpos.dtype)
        dq = (grad_q * g).to(ctx.dtypes[0]) if ctx.needs_input_grad[0] else None
        dp = (dpos * g).to(ctx.dtypes[1]) if ctx.needs_input_grad[1] else None
        return dq, dp, None, None, None, None


def _mix_logits(sims: Tensor, q: Tensor, unit_queue: Tensor, draws: MixDraws) -> tuple[Tensor, Tensor, Tensor]:
    """``[B, s + s']`` cosine of each query with its mixes (type 1 first) and the mixes' norms."""
    a, c = draws.pair_weight, draws.query_weight
    pair_norm = _pair_norms(unit_queue, draws.pair_i, draws.pair_j, a)
    pair = (a * sims.gather(1, draws.pair_i) + (1 - a) * sims.gather(1, draws.pair_j)) / pair_norm
    s_j = sims.gather(1, draws.query_j)
    qq = (q * q).sum(dim=1, keepdim=True)  # 1 up to rounding
    query_norm = (c * c * qq + (1 - c) ** 2 + 2 * c * (1 - c) * s_j).clamp_min_(1e-24).sqrt_()
    query = (c * qq + (1 - c) * s_j) / query_norm
    return torch.cat([pair, query], dim=1), pair_norm, query_norm
