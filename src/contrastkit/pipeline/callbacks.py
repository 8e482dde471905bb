"""Lightning callbacks of a run: atomic checkpoints, per-epoch seeds, metric files."""

from __future__ import annotations

import csv
import io
import os
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from contrastkit._files import write_atomic

__all__ = ["AtomicCheckpoint", "MetricsWriter"]


class AtomicCheckpoint(ModelCheckpoint):
    """``last.ckpt`` after every epoch, written to a temporary file and renamed into place, so a
    Ctrl-C or kill during the write leaves the previous complete checkpoint intact."""

    def __init__(self, dirpath: Path) -> None:
        super().__init__(
            dirpath=dirpath,
            filename="last",
            save_last=False,
            save_top_k=-1,
            every_n_epochs=1,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
        )

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        tmp = filepath + ".tmp"
        trainer.save_checkpoint(tmp, self.save_weights_only)
        if trainer.is_global_zero:
            with open(tmp, "rb") as f:  # on disk before the rename, so a power cut cannot leave it empty
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        trainer.strategy.barrier()


DATA_WAIT_WARNING = 0.10
"""The share of training time spent waiting for batches above which a run says so."""


def data_wait_advice(share: float) -> str:
    return (
        f"{share:.0%} of the training time went to waiting for the next batch: raise data.num_workers "
        "(folders of files), keep the decoded cache (videos: data.cache_dir), or lower the augmentation's cost"
    )


class MetricsWriter(L.Callback):
    """Appends epoch metrics to ``metrics.csv`` and step losses to ``steps.csv`` (rank 0 only).

    Appending (rather than Lightning's CSVLogger, which rewrites its file) keeps the history of
    a resumed run in one place.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._steps: list[tuple[int, int, float]] = []
        self._epoch_start = 0.0
        self._images = 0
        # where an epoch's time goes: waiting for the next batch, inside the step, in the monitor
        self._mark = 0.0
        self._data = self._step = self._monitor = 0.0
        self._warned = False

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = self._mark = time.perf_counter()
        self._images = 0
        self._data = self._step = self._monitor = 0.0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        self._data += now - self._mark
        self._mark = now

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._validation_start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._monitor += time.perf_counter() - self._validation_start

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        self._step += now - self._mark
        self._mark = now
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self._images += _batch_size(batch) * trainer.world_size
        if trainer.is_global_zero and loss is not None:
            self._steps.append((trainer.current_epoch, trainer.global_step, float(loss)))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        elapsed = time.perf_counter() - self._epoch_start
        row: dict[str, Any] = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for key, value in sorted(trainer.callback_metrics.items()):
            if key.endswith("_step") or key == "train/lr":
                continue
            row[key.removesuffix("_epoch")] = float(value) if isinstance(value, torch.Tensor) else value
        row["epoch_seconds"] = round(elapsed, 3)
        row["data_seconds"], row["step_seconds"] = round(self._data, 3), round(self._step, 3)
        row["monitor_seconds"] = round(self._monitor, 3)
        wait = self._data / max(self._data + self._step, 1e-9)
        settled = trainer.current_epoch >= 1 and trainer.num_training_batches >= 10  # past workers' start-up
        if wait > DATA_WAIT_WARNING and settled and not self._warned:
            self._warned = True
            print(f"contrastkit: warning: {data_wait_advice(wait)}", file=sys.stderr)
        if self._images:
            row["images_per_second"] = round(self._images / elapsed, 1) if elapsed > 0 else 0.0
        _append_row(self.run_dir / "metrics.csv", row)
        with open(self.run_dir / "steps.csv", "a", newline="") as f:
            writer = csv.writer(f)
            if f.tell() == 0:
                writer.writerow(["epoch", "step", "loss"])
            writer.writerows(self._steps)
        self._steps.clear()


def _batch_size(batch: Any) -> int:
    """Rows of a dictionary batch (or graphs of a PyG batch); 0 for methods that sample their own inputs."""
    if isinstance(batch, dict) and isinstance(batch.get("index"), torch.Tensor):
        return int(batch["index"].shape[0])
    return int(getattr(batch, "num_graphs", 0))


def _append_row(path: Path, row: dict[str, Any]) -> None:
    rows: list[dict[str, Any]] = []
    if path.exists():
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    rows = [r for r in rows if int(r["epoch"]) < int(row["epoch"])] + [row]  # a resumed epoch replaces itself
    columns = list(dict.fromkeys(k for r in rows for k in r))
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, text.getvalue())


class RecipeInCheckpoint(L.Callback):
    """Stores the run's resolved recipe in every checkpoint, so ``--resume`` can check the
    ``recipe.yaml`` it is given against the recipe the weights were trained with."""

    def __init__(self, recipe: dict[str, Any]) -> None:
        self.recipe = recipe

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint["contrastkit_recipe"] = self.recipe
