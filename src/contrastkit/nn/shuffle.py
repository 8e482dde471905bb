"""ShuffleBN (``docs/methods/moco.md``): encode keys in a permuted batch so that BatchNorm statistics of a
key and of its query come from different samples, then undo the permutation.

Under ``torch.distributed`` the permutation spans all ranks (each rank encodes a random slice
of the global key batch), exactly as MoCo's multi-GPU code; on one device it only matters
with split BatchNorm (``SplitBatchNorm2d``), which emulates per-GPU statistics.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from contrastkit.functional.distributed import all_gather_no_grad, is_distributed, rank_and_world

__all__ = ["shuffled_forward"]


@torch.no_grad()
def shuffled_forward(
    encoder: Callable[[Tensor], tuple[Tensor, ...]], x: Tensor, generator: torch.Generator | None = None
) -> tuple[Tensor, ...]:
    """``encoder(x)`` computed on a shuffled batch, outputs returned in ``x``'s order.

    Args:
        encoder: maps ``[n, ...]`` to a tuple of ``[n, ...]`` tensors (e.g. key and dense map).
        x: this rank's batch; under DDP every rank must hold the same number of rows.
        generator: source of the permutation; must be identical on every rank under DDP.
    """
    if not is_distributed():
        perm = torch.randperm(x.shape[0], generator=generator, device=x.device)
        outs = encoder(x[perm])
        inverse = torch.argsort(perm)
        return tuple(o[inverse] for o in outs)
    rank, world = rank_and_world()
    n = x.shape[0]
    everything = all_gather_no_grad(x)
    if everything.shape[0] != n * world:
        raise ValueError("shuffled_forward under DDP needs the same batch size on every rank (use drop_last)")
    perm = torch.randperm(everything.shape[0], generator=generator, device=x.device)
    outs = encoder(everything[perm[rank * n : (rank + 1) * n]])
    inverse = torch.argsort(perm)
    return tuple(all_gather_no_grad(o)[inverse][rank * n : (rank + 1) * n] for o in outs)
