"""CrossCLR's paper form with both directions in one autograd function: the fast path of
``functional.crossclr`` (``fused``; picked by default on CPU where it applies), tested equal to
the reference path (``crossclr._rows``, ``fused=False``).

The embeddings come in normalised and scaled by ``1/sqrt(tau)``, so every logit lies in
``[-1/tau, 1/tau]`` and one constant shift ``m = 1/tau`` keeps every exponential in range as
long as ``exp(-2/tau)`` is a normal number (``eligible``). With a shift shared by all rows:

- one ``exp`` of the cross logits serves the video rows (masked row sums) and the text rows
  (masked column sums); the masks are column vectors, so masked sums are matrix-vector products;
- ``exp`` of a self-similarity is symmetric, so the gradient of ``a @ a.T`` folds into one
  weight matrix ``E * (r k^T + k r^T)`` times ``a``;
- the backward pass needs no softmax: ``d rows_i / d logit_ik = E_ik / S_i`` on kept entries.

For anchor ``i`` of the video side (text side alike, with columns of the cross block) and its
negatives ``N_i = sum_{k kept, k!=i} (E^vt_ik + lambda E^vv_ik)`` (``E = exp(logit - m)``):
``rows_i = log(1 + N_i / E^vt_ii) = softplus(log N_i - (l_ii - m))``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from contrastkit.functional._kernel import without_autocast

# largest 2/tau whose exp(-2/tau) is still a normal number, with a margin
_RANGE = {torch.float32: 80.0, torch.float64: 700.0}


def eligible(temperature: float, dtype: torch.dtype) -> bool:
    """Whether one shift of ``1/tau`` keeps every exponential of this dtype normal."""
    return dtype in _RANGE and 2.0 / temperature <= _RANGE[dtype]


class PaperCrossCLR(torch.autograd.Function):
    """``(rows_v, rows_t)`` ``[B]`` from scaled embeddings ``v``, ``t`` ``[B, d]`` (``v @ t.T``
    are the logits), kept-column masks ``keep_v``, ``keep_t`` ``[B]`` (bool), the shift ``1/tau``
    and ``lambda`` (0 drops the intra blocks). No double backward."""

    @staticmethod
    @without_autocast
    def forward(
        ctx: Any, v: Tensor, t: Tensor, keep_v: Tensor, keep_t: Tensor, shift: float, intra_weight: float
    ) -> tuple[Tensor, Tensor]:
        kv, kt = keep_v.to(v.dtype), keep_t.to(v.dtype)
        exp_cross = v @ t.t()
        log_positive = exp_cross.diagonal() - shift
        exp_cross.sub_(shift).exp_()
        exp_positive = exp_cross.diagonal().clone()
        exp_cross.diagonal().zero_()  # negatives only; the positive is kept apart, never subtracted
        negatives_v, negatives_t = exp_cross @ kv, kt @ exp_cross
        exp_vv = exp_tt = None
        if intra_weight > 0:
            exp_vv, exp_tt = _exp_self(v, shift), _exp_self(t, shift)
            negatives_v.add_(exp_vv @ kv, alpha=intra_weight)
            negatives_t.add_(exp_tt @ kt, alpha=intra_weight)
        ctx.intra_weight = intra_weight
        ctx.save_for_backward(v, t, kv, kt, exp_cross, exp_vv, exp_tt, exp_positive, negatives_v, negatives_t)
        # log(1 + N / e^l): exactly 0 when every negative is pruned
        return _softplus(negatives_v.log() - log_positive), _softplus(negatives_t.log() - log_positive)

    @staticmethod
    @without_autocast
    def backward(ctx: Any, grad_v: Tensor | None, grad_t: Tensor | None) -> tuple[Tensor | None, ...]:
        v, t, kv, kt, exp_cross, exp_vv, exp_tt, exp_positive, negatives_v, negatives_t = ctx.saved_tensors
        grad_v = torch.zeros_like(negatives_v) if grad_v is None else grad_v
        grad_t = torch.zeros_like(negatives_t) if grad_t is None else grad_t
        rate_v, rate_t = grad_v / (negatives_v + exp_positive), grad_t / (negatives_t + exp_positive)
        g_cross = torch.outer(rate_v, kv).add_(torch.outer(kt, rate_t)).mul_(exp_cross)
        # d rows / d positive = softmax share of the positive - 1 = -N / (N + e^l), in both directions
        g_cross.diagonal().copy_(-(rate_v * negatives_v + rate_t * negatives_t))
        d_v, d_t = g_cross @ t, g_cross.t() @ v
        if ctx.intra_weight > 0:
            d_v.add_(_self_grad(exp_vv, rate_v, kv) @ v, alpha=ctx.intra_weight)
            d_t.add_(_self_grad(exp_tt, rate_t, kt) @ t, alpha=ctx.intra_weight)
        return d_v, d_t, None, None, None, None


def _softplus(z: Tensor) -> Tensor:
    """``log(1 + e^z)`` to the last bit (``F.softplus`` returns ``z`` above 20), 0 at ``-inf``."""
    return torch.logaddexp(z, torch.zeros_like(z))


def _exp_self(a: Tensor, shift: float) -> Tensor:
    """``exp(a @ a.T - shift)`` with a zero diagonal (an anchor is never its own negative)."""
    out = (a @ a.t()).sub_(shift).exp_()
    out.diagonal().zero_()
    return out


def _self_grad(exp_self: Tensor, rate: Tensor, keep: Tensor) -> Tensor:
    """``G + G.T`` for ``G_ik = rate_i keep_k E_ik``, using that ``E`` is symmetric."""
    return torch.outer(rate, keep).add_(torch.outer(keep, rate)).mul_(exp_self)
