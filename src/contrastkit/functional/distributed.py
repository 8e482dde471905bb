"""Cross-rank gathering that keeps the gradient exact.

When ``torch.distributed`` is initialised, contrastive losses see every rank's embeddings
as negatives. ``all_gather_with_grad`` concatenates them along dim 0 and, in the backward
pass, sums each rank's gradient contributions (all-reduce) before taking the local slice, so
that after DDP averages parameter gradients over ``world_size`` ranks they equal the
gradient of the same loss computed on one process over the global batch. (Averaging inside
the gather as well, as some libraries once did, leaves gradients ``1/world_size`` too small.)

Ranks may hold different numbers of rows (the last batch of an epoch): rows are padded to
the largest count for the collective and the padding is removed again.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["all_gather_with_grad", "all_gather_no_grad", "gather_row_counts", "is_distributed", "rank_and_world"]


def is_distributed() -> bool:
    """True when a process group is initialised with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)``, ``(0, 1)`` without a process group."""
    if not is_distributed():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def gather_row_counts(x: Tensor) -> list[int]:
    """Number of rows of ``x`` on every rank, in rank order."""
    if not is_distributed():
        return [x.shape[0]]
    count = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    counts = [torch.zeros_like(count) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, count)
    return [int(c.item()) for c in counts]


def _gather(x: Tensor, counts: list[int]) -> Tensor:
    largest = max(counts)
    padded = x
    if x.shape[0] < largest:
        padded = torch.cat([x, x.new_zeros((largest - x.shape[0], *x.shape[1:]))])
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:n] for p, n in zip(parts, counts)])


class _AllGatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        counts = gather_row_counts(x)
        ctx.counts = counts
        ctx.rank = dist.get_rank()
        return _gather(x, counts)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.counts[: ctx.rank])
        return grad[start : start + ctx.counts[ctx.rank]]


def all_gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` ``[n_r, ...]`` from all ranks along dim 0, differentiably.

    Without an initialised process group (or with one rank) this returns ``x`` itself.

    Args:
        x: ``[n_r, ...]`` this rank's rows; ``n_r`` may differ between ranks.

    Returns:
        ``[sum_r n_r, ...]`` rows of rank 0 first. The backward pass all-reduces (sums) the
        incoming gradient and returns this rank's slice.

    Examples:
        >>> z = torch.randn(4, 8, requires_grad=True)
        >>> all_gather_with_grad(z) is z  # no process group here
        True
    """
    if not is_distributed():
        return x
    return _AllGatherWithGrad.apply(x)


@torch.no_grad()
def all_gather_no_grad(x: Tensor) -> Tensor:
    """Like ``all_gather_with_grad`` but detached (e.g. momentum keys for a queue)."""
    if not is_distributed():
        return x.detach()
    return _gather(x.detach(), gather_row_counts(x))
