"""EpochSampler (seeded by seed and epoch, sharded over ranks) and ArrayDataModule's batches."""

from __future__ import annotations

import pytest
import torch

from contrastkit.data.errors import DataError
from contrastkit.data.module import ArrayDataModule, ArrayDataset, EpochSampler


def test_order_is_a_function_of_seed_and_epoch():
    sampler = EpochSampler(50, seed=3)
    orders = []
    for epoch in (0, 1, 2, 0):
        sampler.set_epoch(epoch)
        orders.append(list(sampler))
    assert orders[0] == orders[3], "the same epoch must give the same order (resume)"
    assert orders[0] != orders[1] != orders[2], "each epoch must reshuffle"
    assert all(sorted(o) == list(range(50)) for o in orders)
    other = EpochSampler(50, seed=4)
    assert list(other) != orders[0]
    resumed = EpochSampler(50, seed=3)
    resumed.set_epoch(2)
    assert list(resumed) == orders[2], "a fresh sampler at epoch 2 replays epoch 2"


def test_ranks_take_disjoint_equal_shards(monkeypatch):
    import contrastkit.data.module as module

    shards = []
    for rank in range(3):
        monkeypatch.setattr(module, "rank_and_world", lambda rank=rank: (rank, 3))
        sampler = EpochSampler(20, seed=0)
        shards.append(list(sampler))
        assert len(sampler) == 6
    flat = [i for s in shards for i in s]
    assert len(flat) == len(set(flat)) == 18


def test_array_batches_are_dictionaries_of_rows_with_their_index():
    x, y = torch.arange(40.0).view(20, 2), torch.arange(20) % 3
    module = ArrayDataModule({"input": x, "label": y}, batch_size=6, seed=1)
    batches = list(module.train_dataloader())
    assert len(batches) == 3  # drop_last
    for batch in batches:
        assert torch.equal(batch["input"], x[batch["index"]]) and torch.equal(batch["label"], y[batch["index"]])
    module = ArrayDataModule({"input": x}, batch_size=6, monitor=({"input": x, "label": y}, {"input": x, "label": y}))
    assert len(module.val_dataloader()) == 2


def test_array_dataset_rejects_ragged_arrays_and_a_user_index():
    with pytest.raises(ValueError, match="one length"):
        ArrayDataset({"input": torch.zeros(3, 2), "label": torch.zeros(4)})
    with pytest.raises(ValueError, match="'index' is added"):
        ArrayDataset({"input": torch.zeros(3, 2), "index": torch.zeros(3)})
    with pytest.raises(DataError, match="data.batch_size 8 exceeds the 3 training rows"):
        ArrayDataModule({"input": torch.zeros(3, 2)}, batch_size=8)  # refused when built, before any run folder
