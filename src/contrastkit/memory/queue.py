"""MoCo's FIFO of keys, kept in registered buffers so a checkpoint resumes it exactly.

Reference: He et al., "Momentum Contrast for Unsupervised Visual Representation Learning",
CVPR 2020 (``docs/methods/moco.md``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from contrastkit.functional.contrastive import unit_rows
from contrastkit.functional.distributed import all_gather_no_grad

__all__ = ["Queue"]


class Queue(nn.Module):
    """A ring buffer of ``size`` keys of dimension ``dim``.

    Buffers (all persistent, so ``state_dict()`` round-trips exactly):

    - ``keys`` ``[size, dim]``: one key per row (the official code stores ``[dim, size]``);
      initialised with random unit vectors, as in MoCo.
    - ``ptr``: index of the next slot to write.
    - ``enqueued_at`` ``[size]``: the value of ``step`` when each slot was written
      (-1 for the random initial entries). VideoMoCo's temporal decay uses ``age()``
      (``decay ** age()`` as ``info_nce``'s ``negative_factors``).
    - ``sample_ids`` ``[size]``: optional dataset index of each key (-1 if unknown), used to
      mask a query's own image among its negatives (``docs/methods/mochi.md``).
    - ``step``: number of ``enqueue`` calls so far.

    ``enqueue`` first gathers the keys of every rank (in rank order, so every rank writes
    the same rows), then writes them at ``ptr`` with wrap-around. Any batch size works; a
    batch larger than the queue keeps its last ``size`` keys.

    Args:
        size: number of slots ``K`` (> 0).
        dim: key dimension ``D`` (> 0).

    Examples:
        >>> queue = Queue(8, 4)
        >>> queue.enqueue(torch.randn(3, 4))
        >>> int(queue.ptr), int(queue.step), queue.keys.shape
        (3, 1, torch.Size([8, 4]))
    """

    keys: Tensor
    ptr: Tensor
    step: Tensor
    enqueued_at: Tensor
    sample_ids: Tensor

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size <= 0:
            raise ValueError(f"size must be > 0, got {size}")
        if dim <= 0:
            raise ValueError(f"dim must be > 0, got {dim}")
        self.size = size
        self.dim = dim
        self.register_buffer("keys", unit_rows(torch.randn(size, dim)))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("enqueued_at", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("sample_ids", torch.full((size,), -1, dtype=torch.long))

    def extra_repr(self) -> str:
        return f"size={self.size}, dim={self.dim}"

    @torch.no_grad()
    def enqueue(self, keys: Tensor, sample_ids: Tensor | None = None) -> None:
        """Write ``keys`` ``[n, dim]`` (detached) after gathering them across ranks.

        Args:
            keys: ``[n, dim]`` new keys, ``n >= 1`` (need not divide ``size``).
            sample_ids: optional ``[n]`` integer dataset indices of the keys.
        """
        if keys.dim() != 2 or keys.shape[1] != self.dim:
            raise ValueError(f"keys must have shape [n, {self.dim}], got {tuple(keys.shape)}")
        if keys.shape[0] == 0:
            raise ValueError("keys is empty (shape [0, dim]); enqueue at least one key")
        if not bool(torch.isfinite(keys).all()):
            bad = int((~torch.isfinite(keys)).any(1).sum())
            raise ValueError(
                f"keys has non-finite values (NaN or inf) in {bad} of {keys.shape[0]} row(s); nothing enqueued"
            )
        if sample_ids is not None and sample_ids.shape != (keys.shape[0],):
            raise ValueError(f"sample_ids must have shape [{keys.shape[0]}] like keys, got {tuple(sample_ids.shape)}")
        new = all_gather_no_grad(keys).to(self.keys.dtype)
        ids = (
            all_gather_no_grad(sample_ids.to(self.sample_ids.device, torch.long))
            if sample_ids is not None
            else torch.full((new.shape[0],), -1, dtype=torch.long, device=new.device)
        )
        total = new.shape[0]
        skipped = max(0, total - self.size)
        new, ids = new[skipped:], ids[skipped:]
        slots = (self.ptr + skipped + torch.arange(new.shape[0], device=self.ptr.device)) % self.size
        self.keys[slots] = new
        self.sample_ids[slots] = ids
        self.enqueued_at[slots] = self.step
        self.ptr.copy_((self.ptr + total) % self.size)
        self.step.add_(1)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        """Check every buffer's shape before any is copied, so a queue of another size is
        refused whole instead of half-loaded."""
        for name, buffer in self._buffers.items():
            saved = state_dict.get(prefix + name)
            if saved is not None and buffer is not None and saved.shape != buffer.shape:
                raise ValueError(
                    f"queue state {prefix + name} has shape {tuple(saved.shape)}, this queue {tuple(buffer.shape)} "
                    f"(size {self.size}, dim {self.dim}); build the queue with the saved size"
                )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def age(self) -> Tensor:
        """``[size]`` slot ages as VideoMoCo's code counts them (``docs/methods/videomoco.md``): every
        enqueue ages every slot by 1 and sets the slots it wrote to 1. So the newest keys have
        age 1, keys written ``r`` enqueues earlier ``r + 1``, never-written (random initial)
        slots the number of enqueues so far, and all slots are 0 before the first enqueue."""
        return torch.where(self.enqueued_at >= 0, self.step - self.enqueued_at, self.step)

    def forward(self) -> Tensor:
        """The keys ``[size, dim]`` (a view; detach or clone before modifying)."""
        return self.keys
