"""Brute-force references: one anchor at a time, plain Python loops, float64.

They follow the method cards' formulas literally (``hcl.md`` §1-2, ``moco.md`` §1) and share
no code with ``contrastkit`` so that a mistake in the library cannot hide in both.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _unit(v: Tensor) -> Tensor:
    return v / v.norm()


def anchor_loss(q: Tensor, k: Tensor, negs: list[Tensor], t: float, beta: float, tau_plus: float) -> Tensor:
    """HCL estimator for one anchor, literally as in hcl.md §1 (linear space, float64)."""
    pos = torch.exp(q @ k / t)
    n = len(negs)
    sims = [q @ v for v in negs]
    neg = [torch.exp(s / t) for s in sims]
    imp = [torch.exp(beta * s / t) for s in sims]
    mean_imp = sum(imp) / n
    reweighted = sum(w * e for w, e in zip(imp, neg)) / mean_imp
    if tau_plus > 0:
        ng = (reweighted - tau_plus * n * pos) / (1 - tau_plus)
        ng = torch.clamp(ng, min=n * math.exp(-1 / t))
    else:
        ng = reweighted
    return -torch.log(pos / (pos + ng))


def loop_info_nce(
    query: Tensor,
    positive: Tensor,
    negatives: list[Tensor] | None,
    *,
    temperature: float,
    beta: float = 0.0,
    tau_plus: float = 0.0,
    normalize: bool = True,
) -> Tensor:
    """``[B]`` losses; negatives: list of ``[K, D]`` or ``[B, K, D]``; None = in-batch."""
    rows = []
    for b in range(query.shape[0]):
        q, k = query[b].double(), positive[b].double()
        if negatives is None:
            negs = [positive[j].double() for j in range(query.shape[0]) if j != b]
        else:
            negs = []
            for group in negatives:
                vectors = group if group.dim() == 2 else group[b]
                negs.extend(vectors[j].double() for j in range(vectors.shape[0]))
        if normalize:
            q, k, negs = _unit(q), _unit(k), [_unit(v) for v in negs]
        rows.append(anchor_loss(q, k, negs, temperature, beta, tau_plus))
    return torch.stack(rows)


def loop_nt_xent(
    z1: Tensor, z2: Tensor, *, temperature: float, beta: float = 0.0, tau_plus: float = 0.0, normalize: bool = True
) -> Tensor:
    """``[2B]`` losses: anchors z1 rows then z2 rows; negatives all other views but the pair."""
    views = [v.double() for v in torch.cat([z1, z2])]
    if normalize:
        views = [_unit(v) for v in views]
    n = z1.shape[0]
    rows = []
    for a in range(2 * n):
        partner = (a + n) % (2 * n)
        negs = [views[j] for j in range(2 * n) if j not in (a, partner)]
        rows.append(anchor_loss(views[a], views[partner], negs, temperature, beta, tau_plus))
    return torch.stack(rows)
