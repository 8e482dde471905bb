"""LightningDataModule over in-memory image splits, with a resumable, DDP-aware sampler."""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler

from contrastkit.data.images import ImageSplits, IndexedImages
from contrastkit.functional.distributed import rank_and_world

__all__ = ["EpochSampler", "ImageDataModule"]


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


class ImageDataModule(L.LightningDataModule):
    """Train batches of raw images for views, plus a kNN bank and the test split for monitoring.

    Args:
        splits: the images.
        batch_size: per-process batch (the global batch is ``batch_size * world_size``).
        num_workers: DataLoader workers (0 is fastest for in-memory tensors on small CPUs).
        seed: sampler seed.
        monitor_bank: number of training images in the online kNN bank (None = all).
    """

    def __init__(
        self,
        splits: ImageSplits,
        batch_size: int = 256,
        num_workers: int = 0,
        seed: int = 0,
        monitor_bank: int | None = None,
    ) -> None:
        super().__init__()
        self.splits = splits
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.monitor_bank = monitor_bank

    def _loader(self, dataset: IndexedImages, shuffle: bool, drop_last: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=EpochSampler(len(dataset), self.seed, shuffle),
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        if len(self.splits.train_labels) < self.batch_size:
            raise ValueError(
                f"batch_size {self.batch_size} exceeds the {len(self.splits.train_labels)} training images"
            )
        return self._loader(IndexedImages(self.splits.train_images, self.splits.train_labels), True, True)

    def val_dataloader(self) -> list[DataLoader]:
        bank = self.splits.subset(self.monitor_bank, None, self.seed) if self.monitor_bank else self.splits
        return [
            self._loader(IndexedImages(bank.train_images, bank.train_labels), False, False),
            self._loader(IndexedImages(self.splits.test_images, self.splits.test_labels), False, False),
        ]
