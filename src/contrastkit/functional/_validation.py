"""Argument checks shared by the public objectives.

Every check raises ``ValueError`` naming the argument and the value or shape it saw, so a
user reading the traceback knows which tensor to look at.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def check_embeddings(name: str, x: Tensor, ndim: int = 2) -> None:
    """Check that ``x`` is a non-empty floating tensor with ``ndim`` dimensions."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); the batch needs at least one row")
    if x.shape[-1] == 0:
        raise ValueError(f"{name} has feature dimension 0 (shape {tuple(x.shape)})")


def check_same_shape(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def check_hyperparameters(temperature: float, beta: float, tau_plus: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not beta >= 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if temperature == float("inf") or beta == float("inf"):
        raise ValueError(f"temperature and beta must be finite, got temperature {temperature}, beta {beta}")
    if not 0 <= tau_plus < 1:
        raise ValueError(f"tau_plus must lie in [0, 1), got {tau_plus}")


def check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def as_negative_list(negatives: Tensor | Sequence[Tensor], query: Tensor) -> list[Tensor]:
    """Validate ``negatives`` against ``query`` and return it as a list of tensors.

    Each entry is ``[K, D]`` (shared by every anchor, e.g. a queue) or ``[B, K, D]``
    (one set per anchor, e.g. MoCHi's synthetic negatives).
    """
    items = [negatives] if isinstance(negatives, Tensor) else list(negatives)
    if not items:
        raise ValueError("negatives is an empty sequence; pass None for in-batch negatives")
    batch, dim = query.shape
    checked: list[Tensor] = []
    for i, neg in enumerate(items):
        name = "negatives" if isinstance(negatives, Tensor) else f"negatives[{i}]"
        if not isinstance(neg, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(neg).__name__}")
        if not torch.is_floating_point(neg):
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {neg.dtype}")
        if neg.dim() not in (2, 3):
            raise ValueError(f"{name} must be [K, D] (shared) or [B, K, D] (per anchor), got shape {tuple(neg.shape)}")
        if neg.shape[-1] != dim:
            raise ValueError(
                f"{name} has feature dimension {neg.shape[-1]} but query has {dim} "
                f"(shapes {tuple(neg.shape)} and {tuple(query.shape)})"
            )
        if neg.dim() == 3 and neg.shape[0] != batch:
            raise ValueError(f"{name} is per-anchor [B, K, D] with B={neg.shape[0]} but query has B={batch}")
        if neg.shape[-2] == 0:
            continue
        checked.append(neg)
    if not checked:
        raise ValueError("negatives holds no vectors (K=0 in every entry)")
    return checked


def check_negative_factors(
    factors: Tensor | Sequence[Tensor | None] | None, groups: list[Tensor], batch: int
) -> list[Tensor | None]:
    """Validate per-group similarity factors; returns one entry (or None) per group."""
    if factors is None:
        return [None] * len(groups)
    items: list[Tensor | None] = [factors] if isinstance(factors, Tensor) else list(factors)
    if len(items) != len(groups):
        raise ValueError(f"negative_factors has {len(items)} entries but negatives has {len(groups)} group(s)")
    for i, (factor, group) in enumerate(zip(items, groups)):
        if factor is None:
            continue
        name = "negative_factors" if isinstance(factors, Tensor) else f"negative_factors[{i}]"
        if not isinstance(factor, Tensor) or not torch.is_floating_point(factor):
            raise ValueError(f"{name} must be a floating-point tensor, got {type(factor).__name__}")
        k = group.shape[-2]
        if tuple(factor.shape) not in ((k,), (batch, k)):
            raise ValueError(f"{name} must have shape [{k}] or [{batch}, {k}] for its group, got {tuple(factor.shape)}")
    return items


def check_row_weights(weights: Tensor | None, mask: Tensor | None, rows: int) -> None:
    """Per-row ``weights`` must be non-negative floats ``[B]``; ``mask`` a bool ``[B]``."""
    if weights is not None:
        if not isinstance(weights, Tensor) or not torch.is_floating_point(weights) or weights.shape != (rows,):
            got = str(tuple(weights.shape)) if isinstance(weights, Tensor) else type(weights).__name__
            raise ValueError(f"weights must be a floating-point tensor of shape [{rows}], got {got}")
        if bool((weights < 0).any()):
            raise ValueError(f"weights must be >= 0, got a minimum of {float(weights.min())}")
    if mask is not None and (not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != (rows,)):
        got = f"{tuple(mask.shape)} {mask.dtype}" if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a bool tensor of shape [{rows}], got {got}")


_FINITE_CHECKS = [False]


def set_finite_checks(enabled: bool) -> bool:
    """Turn the objectives' non-finite input checks on or off for calls that leave ``check_finite``
    at None; returns the previous setting. Off by default (each check is a device sync); the
    command line's runs turn it on."""
    previous = _FINITE_CHECKS[0]
    _FINITE_CHECKS[0] = bool(enabled)
    return previous


def check_finite(check: bool | None, **inputs: Tensor | Sequence[Tensor] | None) -> None:
    """Raise ``ValueError`` naming the first input with NaN or inf values (``check`` None: the
    ``set_finite_checks`` setting)."""
    if not (_FINITE_CHECKS[0] if check is None else check):
        return
    for name, value in inputs.items():
        items = [] if value is None else [value] if isinstance(value, Tensor) else list(value)
        for i, x in enumerate(items):
            if torch.isfinite(x).all():
                continue
            rows = x.reshape(x.shape[0], -1) if x.dim() > 1 else x.reshape(-1, 1)
            bad = int((~torch.isfinite(rows)).any(1).sum())
            where = name if len(items) == 1 else f"{name}[{i}]"
            raise ValueError(
                f"{where} has non-finite values (NaN or inf) in {bad} of {rows.shape[0]} row(s) of shape "
                f"{tuple(x.shape)}; training diverged or the data holds NaN/inf (try a lower learning rate)"
            )
