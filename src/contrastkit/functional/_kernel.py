"""The one computation behind every InfoNCE-style objective in contrastkit.

For anchor ``b`` with positive logit ``l_b`` and negative logits ``L_bj`` (``j`` over all
negative groups, excluded columns dropped) the per-row loss is HCL's estimator
(Robinson et al., ICLR 2021, in the form of the official code; see ``docs/methods/hcl.md``)::

    log R_b  = log N_b + lse_j((beta + 1) L_bj) - lse_j(beta L_bj)     (= lse_j L_bj if beta = 0)
    Ng_b     = max((R_b - tau_plus N_b e^{l_b}) / (1 - tau_plus), N_b e^{-1/t})   (clamp only if tau_plus > 0)
    loss_b   = log(e^{l_b} + Ng_b) - l_b

With ``beta = 0`` and ``tau_plus = 0`` this is exactly cross-entropy over ``[l_b, L_b.]``
with target 0, i.e. plain InfoNCE. Everything is computed in log space in float32.

Why a hand-written autograd function: with a queue of ``K`` shared negatives the obvious
version (one matmul, ``torch.cat``, ``cross_entropy``) writes and re-reads several
``[B, K]`` tensors, which costs more than the matmuls themselves on a CPU. Here the shared
negatives are streamed in blocks that fit in cache; the log-sum-exp runs online (running
max, as in FlashAttention) and, because a scalar loss's gradient is fixed by the forward
pass, the gradient with respect to the anchors is accumulated in the same pass
(``sum_j softmax_j n_j``). The backward pass only rescales it. Groups whose negatives need
a gradient (in-batch, gathered across ranks, per-anchor) keep their ``[B, K]`` logits for a
second, exact pass once the row statistics are known.

HCL (``beta > 0``) needs two softmax-weighted sums of the negatives whose per-row mix is only
known at the end, so streaming would cost a third ``[B, K] x [K, D]`` product. Instead, while
``B x K`` fits ``_KEEP_BYTES``, the shared group keeps its tiles of exponentials in a reused
per-thread workspace and the end pass folds both sums into one weight matrix per tile: one
product, as for plain InfoNCE. With ``beta = 1`` a single ``exp`` serves both scales
(``exp(2c) = exp(c)^2``).

This module is private: the public entry points are ``info_nce`` and ``nt_xent``.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

_BLOCK_ELEMENTS = 1 << 18
"""Target size (elements) of one ``[B, block]`` logit tile of a streamed shared group:
about 1 MiB, which keeps the tile in cache between the matmul, the exp and the second matmul
(measured best on 2-core x86 at B = 64..512)."""


def without_autocast(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run an ``autograd.Function`` step with autocast off: the kernels compute in float32 (or
    float64) themselves, and autocast would turn their matrix products back into bf16/fp16."""

    @functools.wraps(fn)
    def wrapper(ctx: Any, *args: Any) -> Any:
        device = next((a.device.type for a in args if isinstance(a, Tensor)), "cpu")
        with torch.autocast(device_type=device, enabled=False):
            return fn(ctx, *args)

    return wrapper


@dataclass(frozen=True)
class ObjectiveConfig:
    """Settings of the estimator (already validated)."""

    temperature: float
    beta: float = 0.0
    tau_plus: float = 0.0

    @property
    def scales(self) -> tuple[float, ...]:
        """Multipliers of the logits whose log-sum-exp the estimator needs."""
        return (1.0 + self.beta, self.beta) if self.beta > 0 else (1.0,)


def _two_exponentials(scales: tuple[float, ...]) -> bool:
    """Whether a tile needs ``exp(beta c)`` stored beside ``exp(c)``: HCL with beta != 1 (with
    beta = 1 one exponential serves both scales, ``exp(2c) = exp(c)^2``)."""
    return len(scales) == 2 and scales[1] != 1.0


@dataclass
class _Tile:
    """One folded block of logits: its reference max ``[B]`` and exponentials ``[B, k]``.

    ``exps`` is ``(e,)`` with one scale and ``(e_beta, e_one)`` with two, where
    ``e_beta = exp(beta c)``, ``e_one = exp(c)`` and ``exp((beta + 1) c) = e_beta * e_one``
    (``c`` = logits minus ``ref``). ``rows`` is the slice of a streamed group's negatives.
    """

    ref: Tensor
    exps: tuple[Tensor, ...]
    rows: slice | None = None

    def gradient(self, scales: tuple[float, ...], lse: tuple[Tensor, ...], coefs: tuple[Tensor, ...]) -> Tensor:
        """``d loss / d logit`` of the tile's columns, in place of its exponentials: per scale
        ``s``, ``coefs_s[b] * softmax_j(s L_b.)`` once the row log-sum-exps ``lse`` are known."""
        return self.weights(tuple(c * torch.exp(s * self.ref - total) for s, total, c in zip(scales, lse, coefs)))

    def weights(self, multipliers: tuple[Tensor, ...]) -> Tensor:
        """``sum_s m_s[b] exp(s c_bj)`` in place of the exponentials (they are consumed)."""
        if len(self.exps) == 1:
            return self.exps[0].mul_(multipliers[0][:, None])
        e_beta, e_one = self.exps
        # The [B, k] temporary lives in a reused workspace: a fresh 16 MiB one (N = 1024 in-batch)
        # costs more in page faults than the arithmetic.
        inner = _workspace(e_one.numel(), e_one, slot="inner").view_as(e_one)
        torch.addcmul(multipliers[1][:, None], e_one, multipliers[0][:, None], out=inner)
        return e_beta.mul_(inner)


_KEEP_BYTES = 256 << 20
"""Largest workspace (bytes) a streamed shared group with two scales may keep its tiles in."""


class _Workspace(threading.local):
    def __init__(self) -> None:
        self.buffers: dict[str, Tensor] = {}


_WORKSPACE = _Workspace()


def _workspace(numel: int, like: Tensor, slot: str = "tiles") -> Tensor:
    """A flat scratch tensor of ``numel`` elements, reused across calls on this thread.

    ``slot`` names independent buffers ("tiles": kept exponentials; "inner": the HCL weight
    temporary). The kernel finishes with them before returning, so reuse is safe; it avoids
    faulting in fresh pages for every call, which costs as much as the exponentials themselves.
    Requests over ``_KEEP_BYTES`` get a fresh tensor and are not kept.
    """
    if numel * like.element_size() > _KEEP_BYTES:
        return torch.empty(numel, dtype=like.dtype, device=like.device)
    buffer = _WORKSPACE.buffers.get(slot)
    if buffer is None or buffer.numel() < numel or buffer.dtype != like.dtype or buffer.device != like.device:
        buffer = torch.empty(numel, dtype=like.dtype, device=like.device)
        _WORKSPACE.buffers[slot] = buffer
    return buffer[:numel]


@dataclass
class _RowStats:
    """Online ``lse_j(s L_bj)`` for each scale ``s``, with one running max of ``L`` per row.

    ``accs[k]`` (when tracked) is ``sum_j exp(s_k (L_bj - max_b)) n_j``, the unnormalised
    softmax-weighted sum of the streamed negatives.
    """

    scales: tuple[float, ...]
    max: Tensor
    sums: list[Tensor]
    accs: list[Tensor] | None

    @classmethod
    def empty(cls, scales: tuple[float, ...], batch: int, dim: int, like: Tensor, track: bool) -> _RowStats:
        def zeros(*shape: int) -> Tensor:
            return torch.zeros(*shape, dtype=like.dtype, device=like.device)

        return cls(
            scales,
            torch.full((batch,), -math.inf, dtype=like.dtype, device=like.device),
            [zeros(batch) for _ in scales],
            [zeros(batch, dim) for _ in scales] if track else None,
        )

    def fold(self, logits: Tensor, vectors: Tensor | None = None, spare: Tensor | None = None) -> _Tile:
        """Fold a ``[B, k]`` block in (consuming ``logits``; ``spare``, same shape, may take
        the second exponential when there are two scales).

        Returns:
            The block's tile: the reference max ``[B]`` it was shifted by and its exponentials.
        """
        new_max = torch.maximum(self.max, logits.amax(dim=1))
        ref = new_max.nan_to_num(neginf=0.0)
        shift = self.max - ref
        centered = logits.sub_(ref[:, None])
        self.max = new_max
        if len(self.scales) == 1:
            exps: tuple[Tensor, ...] = (centered.exp_(),)
            self._add(0, exps[0].sum(dim=1), shift, exps[0], vectors)
            return _Tile(ref, exps)
        beta = self.scales[1]
        if not _two_exponentials(self.scales):
            e_one = e_beta = centered.exp_()
        else:
            e_beta = torch.mul(centered, beta, out=spare) if spare is not None else centered * beta
            e_beta.exp_()
            e_one = centered.exp_()
        top = None if vectors is None or self.accs is None else e_beta * e_one  # exp((beta + 1) c)
        if top is not None:
            top_sum = top.sum(dim=1)
        elif e_beta is e_one:
            top_sum = torch.linalg.vector_norm(e_one, dim=1).square_()
        else:  # a batched dot product: no [B, k] temporary
            top_sum = torch.bmm(e_beta.unsqueeze(1), e_one.unsqueeze(2)).view(-1)
        self._add(0, top_sum, shift, top, vectors)
        self._add(1, e_beta.sum(dim=1), shift, e_beta, vectors)
        return _Tile(ref, (e_beta, e_one))

    def _add(self, k: int, block_sum: Tensor, shift: Tensor, e: Tensor | None, vectors: Tensor | None) -> None:
        rescale = torch.exp(shift * self.scales[k])
        self.sums[k] = torch.addcmul(block_sum, self.sums[k], rescale)
        if self.accs is not None:
            acc = self.accs[k] * rescale[:, None]
            self.accs[k] = acc if vectors is None or e is None else acc.addmm_(e, vectors)

    def lse(self) -> tuple[Tensor, ...]:
        return tuple(self.max * s + torch.log(total) for s, total in zip(self.scales, self.sums))


@dataclass(eq=False)
class _Group:
    """One set of negatives: ``[K, D]`` shared or ``[B, K, D]`` per anchor."""

    vectors: Tensor
    exclude: tuple[Tensor, ...] = ()
    needs_grad: bool = False
    is_query: bool = False
    inv_norm: Tensor | None = field(default=None, repr=False)
    tiles: list[_Tile] = field(default_factory=list, repr=False)


def _inverse_norms(vectors: Tensor) -> Tensor:
    """``1 / ||v||`` over the last dimension, in float32 at least (shape without it)."""
    dtype = torch.promote_types(vectors.dtype, torch.float32)
    return torch.linalg.vector_norm(vectors, dim=-1, dtype=dtype).clamp_min_(1e-12).reciprocal_()


_UNIT_TOLERANCE = 1e-6
"""A streamed queue whose every norm is within this of 1 (MoCo stores unit keys) is used as it
is: rescaling it would change its logits by less than float32 rounding, and skipping the scaled
copy of every tile saves a few percent at K = 4096."""


def _inverse_norms_unless_unit(vectors: Tensor) -> Tensor | None:
    """``_inverse_norms(vectors)``, or None when every row already has unit norm (to float32 rounding)."""
    inv = _inverse_norms(vectors)
    return None if bool((inv - 1.0).abs_().max() <= _UNIT_TOLERANCE) else inv


_BLOCK_ELEMENTS_GPU = 1 << 25
"""On a GPU the tile does not need to fit a CPU cache: large tiles mean fewer kernel launches."""


def _block_size(batch: int, device: torch.device) -> int:
    target = _BLOCK_ELEMENTS_GPU if device.type == "cuda" else _BLOCK_ELEMENTS
    return max(256, target // max(batch, 1))


def _mask_(logits: Tensor, exclude: tuple[Tensor, ...]) -> Tensor:
    rows = torch.arange(logits.shape[0], device=logits.device)
    for cols in exclude:
        logits[rows, cols] = float("-inf")
    return logits


def row_estimator(
    pos: Tensor, lse: tuple[Tensor, ...], num_neg: Tensor, cfg: ObjectiveConfig
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-row loss and the two partial derivatives the gradient needs.

    Args:
        pos: ``[B]`` positive logits ``l_b`` (float32).
        lse: per scale of ``cfg.scales``, ``[B]`` log-sum-exp over the negatives.
        num_neg: ``[B]`` number of negatives per row (float32).
        cfg: estimator settings.

    Returns:
        ``loss [B]``, ``coef [B]`` = d loss / d log R (zero where the clamp is active) and
        ``dpos [B]`` = d loss / d l_b.
    """
    log_n = torch.log(num_neg)
    log_r = lse[0] if cfg.beta == 0 else log_n + lse[0] - lse[1]
    if cfg.tau_plus == 0:
        log_ng = log_r
        dlogng_dlogr = torch.ones_like(log_r)
        dlogng_dpos = torch.zeros_like(log_r)
    else:
        x = math.log(cfg.tau_plus) + log_n + pos - log_r
        below = x < 0
        x_safe = torch.where(below, x, torch.full_like(x, -1.0))
        one_minus = -torch.expm1(x_safe)
        raw = torch.where(
            below, log_r + torch.log(one_minus) - math.log1p(-cfg.tau_plus), torch.full_like(x, -math.inf)
        )
        floor = log_n - 1.0 / cfg.temperature
        clamped = raw < floor
        log_ng = torch.where(clamped, floor, raw)
        dlogng_dlogr = torch.where(clamped, torch.zeros_like(x), 1.0 / one_minus)
        dlogng_dpos = torch.where(clamped, torch.zeros_like(x), -torch.exp(x_safe) / one_minus)
    total = torch.logaddexp(pos, log_ng)
    loss = total - pos
    share_neg = torch.exp(log_ng - total)
    share_pos = torch.exp(pos - total)
    coef = share_neg * dlogng_dlogr
    dpos = share_pos - 1.0 + share_neg * dlogng_dpos
    return loss, coef, dpos


class FusedContrastiveLoss(torch.autograd.Function):
    """Reduced (mean or sum) estimator loss; gradient computed in the forward pass."""

    @staticmethod
    @without_autocast
    def forward(
        ctx: Any,
        query: Tensor,
        pos: Tensor,
        cfg: ObjectiveConfig,
        reduction: str,
        normalize_frozen: bool,
        excludes: tuple[tuple[Tensor, ...], ...],
        *negatives: Tensor,
    ) -> Tensor:
        needs = ctx.needs_input_grad
        want_query = bool(needs[0]) or any(needs[6 + i] and neg is query for i, neg in enumerate(negatives))
        want_any = any(needs)
        compute = torch.promote_types(query.dtype, torch.float32)
        q = query.to(compute)
        batch, dim = q.shape
        inv_t = 1.0 / cfg.temperature
        num_neg = torch.zeros(batch, device=q.device, dtype=compute)
        groups = [_Group(neg, excludes[i], bool(needs[6 + i]), neg is query) for i, neg in enumerate(negatives)]
        streamed = [g for g in groups if g.vectors.dim() == 2 and not (g.needs_grad or g.exclude or g.is_query)]
        keep = _keep_workspace(q, streamed, cfg) if want_query else None
        track = want_query and bool(streamed) and keep is None  # running d/dq sums, only for streamed groups
        stats = _RowStats.empty(cfg.scales, batch, dim, q, track=track)
        for index, group in enumerate(groups):
            neg = group.vectors
            num_neg += neg.shape[-2] - len(group.exclude)
            if group in streamed:
                group.inv_norm = _inverse_norms_unless_unit(neg) if normalize_frozen else None
                keep = _stream_shared(q, group, stats, inv_t, want_query, keep)
                continue
            vectors = neg.to(compute)
            if neg.dim() == 2:
                logits = torch.mm(q, vectors.t()).mul_(inv_t)
            else:
                logits = torch.bmm(vectors, q.unsqueeze(2)).squeeze(2).mul_(inv_t)
            if normalize_frozen and not (group.needs_grad or group.is_query):
                group.inv_norm = _inverse_norms(vectors)
                logits.mul_(group.inv_norm)
            spare = None  # the second exponential goes to a reused workspace
            if _two_exponentials(cfg.scales):
                spare = _workspace(logits.numel(), q, slot=f"spare{index}").view_as(logits)
            group.tiles.append(stats.fold(_mask_(logits, group.exclude), None, spare))
        lse = stats.lse()
        loss, coef, dpos = row_estimator(pos.to(compute), lse, num_neg, cfg)
        weight = 1.0 / batch if reduction == "mean" else 1.0
        out = loss.sum() * weight
        if not want_any:
            return out

        coefs = _scale_coefficients(coef * (weight * inv_t), cfg)
        grad_q = torch.zeros_like(q) if want_query else None
        if grad_q is not None and stats.accs is not None:
            for k, c in enumerate(coefs):
                grad_q += (c * torch.exp(cfg.scales[k] * stats.max - lse[k]))[:, None] * stats.accs[k]
        grad_negs = [_stash_gradients(q, g, cfg.scales, lse, coefs, grad_q) for g in groups]
        ctx.save_for_backward(
            grad_q if grad_q is not None else torch.empty(0),
            dpos * weight,
            *[g if g is not None else torch.empty(0) for g in grad_negs],
        )
        ctx.has_grad_q = grad_q is not None
        ctx.dtypes = (query.dtype, pos.dtype, *[n.dtype for n in negatives])
        return out

    @staticmethod
    @without_autocast
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        grad_q, dpos, *grad_negs = ctx.saved_tensors
        g = grad_out.to(dpos.dtype)
        dq = (grad_q * g).to(ctx.dtypes[0]) if ctx.has_grad_q and ctx.needs_input_grad[0] else None
        dp = (dpos * g).to(ctx.dtypes[1]) if ctx.needs_input_grad[1] else None
        dn = tuple(
            (gn * g).to(dt) if gn.numel() and ctx.needs_input_grad[6 + i] else None
            for i, (gn, dt) in enumerate(zip(grad_negs, ctx.dtypes[2:]))
        )
        return (dq, dp, None, None, None, None, *dn)


def _scale_coefficients(coef: Tensor, cfg: ObjectiveConfig) -> tuple[Tensor, ...]:
    """d loss / d L_bj = sum_s c_s[b] softmax_j(s L_b.) over the scales s of ``cfg``."""
    if cfg.beta == 0:
        return (coef,)
    return (coef * (1.0 + cfg.beta), -coef * cfg.beta)


def _keep_workspace(q: Tensor, streamed: list[_Group], cfg: ObjectiveConfig) -> Tensor | None:
    """Workspace for the tiles of the streamed groups when they need keeping (two scales) and fit."""
    if cfg.beta == 0 or not streamed:
        return None
    per_logit = 2 if _two_exponentials(cfg.scales) else 1
    numel = q.shape[0] * sum(g.vectors.shape[0] for g in streamed) * per_logit
    if numel * q.element_size() > _KEEP_BYTES:
        return None
    return _workspace(numel, q)


def _tile_vectors(negatives: Tensor, rows: slice, inv_norm: Tensor | None, dtype: torch.dtype) -> Tensor:
    vectors = negatives[rows].to(dtype)
    return vectors * inv_norm[rows, None] if inv_norm is not None else vectors


def _stream_shared(
    q: Tensor, group: _Group, stats: _RowStats, inv_t: float, accumulate: bool, keep: Tensor | None
) -> Tensor | None:
    """Run the online statistics over shared ``[K, D]`` negatives in cache-sized blocks.

    Without ``keep`` the anchors' gradient is accumulated on the fly (``accumulate``); with it
    the tiles are written into ``keep`` and recorded on ``group`` for the end pass. Returns
    what is left of ``keep``.
    """
    batch, negatives = q.shape[0], group.vectors
    block = _block_size(batch, q.device)
    for start in range(0, negatives.shape[0], block):
        rows = slice(start, min(start + block, negatives.shape[0]))
        vectors = _tile_vectors(negatives, rows, group.inv_norm, q.dtype)
        if keep is None:
            stats.fold(torch.mm(q, vectors.t()).mul_(inv_t), vectors if accumulate else None)
            continue
        n = batch * (rows.stop - rows.start)
        logits = torch.mm(q, vectors.t(), out=keep[:n].view(batch, -1)).mul_(inv_t)
        spare = keep[n : 2 * n].view(batch, -1) if _two_exponentials(stats.scales) else None
        keep = keep[2 * n if spare is not None else n :]
        tile = stats.fold(logits, None, spare)
        tile.rows = rows
        group.tiles.append(tile)
    return keep


def _stash_gradients(
    q: Tensor,
    group: _Group,
    scales: tuple[float, ...],
    lse: tuple[Tensor, ...],
    coefs: tuple[Tensor, ...],
    grad_q: Tensor | None,
) -> Tensor | None:
    """End pass over a group's kept tiles: add d/dq, return d/dnegatives."""
    for tile in group.tiles:
        weights = tile.gradient(scales, lse, coefs)
        if tile.rows is not None:  # a streamed shared group: frozen, only the anchors get a gradient
            if grad_q is not None:
                grad_q.addmm_(weights, _tile_vectors(group.vectors, tile.rows, group.inv_norm, q.dtype))
            continue
        return _whole_group_gradients(q, group, weights, grad_q)
    return None


def _whole_group_gradients(q: Tensor, group: _Group, weights: Tensor, grad_q: Tensor | None) -> Tensor | None:
    """d/dq (added into ``grad_q``) and d/dnegatives of a group folded as one ``[B, K]`` tile."""
    if group.inv_norm is not None:
        weights.mul_(group.inv_norm)
    vectors = group.vectors.to(q.dtype)
    if group.is_query:
        if grad_q is not None:
            grad_q.addmm_(weights, q).addmm_(weights.t(), q)
        return None
    if vectors.dim() == 2:
        if grad_q is not None:
            grad_q.addmm_(weights, vectors)
        return torch.mm(weights.t(), q) if group.needs_grad else None
    if grad_q is not None:
        grad_q += torch.bmm(weights.unsqueeze(1), vectors).squeeze(1)
    return weights.unsqueeze(2) * q.unsqueeze(1) if group.needs_grad else None
