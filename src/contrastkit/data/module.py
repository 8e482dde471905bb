"""LightningDataModule over in-memory arrays (dictionary batches), with a resumable, DDP-aware sampler."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from contrastkit.data.errors import DataError
from contrastkit.functional.distributed import rank_and_world

__all__ = ["ArrayDataModule", "ArrayDataset", "EpochSampler"]


class EpochSampler(Sampler[int]):
    """Indices in an order that depends only on ``(seed, epoch)``, sharded over ranks.

    Lightning calls ``set_epoch`` before each epoch, so a run resumed from an epoch-end
    checkpoint visits the same batches as an uninterrupted one. Under ``torch.distributed``
    rank ``r`` takes every ``world``-th index of the permutation (shards of equal length).
    """

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True) -> None:
        self.size = size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.size)
        return torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))

    def __iter__(self) -> Iterator[int]:
        rank, world = rank_and_world()
        order = self._order()
        per_rank = len(order) // world
        return iter(order[rank : per_rank * world : world].tolist())

    def __len__(self) -> int:
        _, world = rank_and_world()
        return self.size // world


class ArrayDataset(Dataset[dict[str, Any]]):
    """Rows of equally long tensors as dictionaries: ``{name: tensor[i], ..., "index": i}``.

    ``__getitems__`` serves a whole batch with one indexing per array (the DataLoader's fast
    path), so an in-memory batch costs a gather, not ``B`` dictionaries.

    Args:
        arrays: ``{"input": [N, ...], "label": [N, ...], ...}`` (all of length ``N``).
    """

    def __init__(self, arrays: dict[str, Tensor]) -> None:
        lengths = {name: len(a) for name, a in arrays.items()}
        if not arrays or len(set(lengths.values())) != 1:
            raise ValueError(f"arrays must be non-empty and of one length, got lengths {lengths}")
        if "index" in arrays:
            raise ValueError("'index' is added by ArrayDataset (the row number); do not pass it")
        self.arrays = arrays
        self.length = next(iter(lengths.values()))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**{name: a[index] for name, a in self.arrays.items()}, "index": index}

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        rows = torch.as_tensor(indices, dtype=torch.long)
        return {**{name: a[rows] for name, a in self.arrays.items()}, "index": rows}


def _keep_batch(batch: Any) -> Any:
    """Collate for ``__getitems__``: the batch is already assembled."""
    return batch


class ArrayDataModule(L.LightningDataModule):
    """Dictionary batches from in-memory arrays, with a resumable, DDP-aware sampler.

    The one data module of every array-shaped modality (images, clips, feature pairs, image
    pairs): ``train`` maps names to equally long tensors, and each batch is the dictionary of
    their rows plus ``"index"``. With ``monitor`` (a bank and a test split, each holding
    ``"input"`` and ``"label"``) it also serves validation loaders for an online kNN monitor.

    Args:
        train: training arrays, e.g. ``{"input": images, "label": labels}``, or a dataset whose
            ``__getitems__`` returns such a dictionary batch (files read lazily).
        batch_size: per-process batch (the global batch is ``batch_size * world_size``).
        num_workers: DataLoader workers (0 is fastest for in-memory tensors on small CPUs).
        seed: sampler seed.
        monitor: optional ``(bank, test)`` arrays for the online kNN monitor.
        drop_last: drop the last incomplete training batch (contrastive batches stay full).
    """

    def __init__(
        self,
        train: dict[str, Tensor] | Dataset[dict[str, Any]],
        batch_size: int = 256,
        num_workers: int = 0,
        seed: int = 0,
        monitor: tuple[dict[str, Tensor], ...] | None = None,
        drop_last: bool = True,
    ) -> None:
        super().__init__()
        train_set: Any = ArrayDataset(train) if isinstance(train, dict) else train
        self.train = train_set
        self.monitor = tuple(ArrayDataset(m) for m in monitor) if monitor else None
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.drop_last = drop_last
        rows = len(train_set)
        if drop_last and rows < batch_size:
            raise DataError(
                f"data.batch_size {batch_size} exceeds the {rows} training rows: "
                f"set data.batch_size to at most {rows} (--set data.batch_size={rows})"
            )

    def _loader(self, dataset: Any, shuffle: bool, drop_last: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=EpochSampler(len(dataset), self.seed, shuffle),
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=_keep_batch,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train, True, self.drop_last)

    def val_dataloader(self) -> list[DataLoader]:
        if self.monitor is None:
            return []
        return [self._loader(split, False, False) for split in self.monitor]
