"""The base of the graph methods (MVGRL node and graph level): Adam, a seeded per-step generator,
and early stopping on the training loss whose best weights are restored when training ends.

Lightning's ``EarlyStopping`` callback stops but does not restore the best weights, which the
graph protocols evaluate (``docs/methods/mvgrl.md``), so the stopper here keeps them and rides in
the checkpoint.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

__all__ = ["EarlyStopping", "GraphMethod"]


class EarlyStopping:
    """Best-loss weights and patience, carried in checkpoints (the graph protocols evaluate the best-loss weights)."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best = float("inf")
        self.wait = 0
        self.state: dict[str, Tensor] | None = None

    def update(self, loss: float, module: nn.Module) -> bool:
        """Record ``loss``; True when training should stop."""
        if loss < self.best:
            self.best, self.wait = loss, 0
            self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        else:
            self.wait += 1
        return self.wait >= self.patience


class GraphMethod(L.LightningModule):
    """Base of full-graph and graph-batch methods: Adam, a per-step generator, early stopping
    on the training loss with the best weights restored at the end (carried in checkpoints).

    Args:
        lr, weight_decay: Adam.
        patience: epochs without a lower training loss before stopping.
        seed: base of ``generator()``.
    """

    def __init__(self, *, lr: float = 1e-3, weight_decay: float = 0.0, patience: int = 20, seed: int = 0) -> None:
        super().__init__()
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.stopper = EarlyStopping(patience)

    graphs: list[Any] = []
    """A graph-set method's prepared copies of the dataset's graphs (what the task batches)."""

    def embed(self) -> Tensor:
        """Embeddings of what the task evaluates: every node ``[n, D]`` or every graph ``[G, D]``."""
        raise TypeError(f"{type(self).__name__} must implement embed()")

    def describe(self) -> str:
        """The model in one line, for the report (default: the class name)."""
        return type(self).__name__

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + self.global_step)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            [p for p in self.parameters() if p.requires_grad], lr=self.lr, weight_decay=self.weight_decay
        )

    def after_step(self, loss: Tensor) -> None:
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        if self.stopper.update(float(loss.detach()), self):
            self.trainer.should_stop = True

    def on_train_end(self) -> None:
        if self.stopper.state is not None:
            self.load_state_dict(self.stopper.state)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["early_stopping"] = {
            "best": self.stopper.best,
            "wait": self.stopper.wait,
            "state": self.stopper.state,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("early_stopping")
        if saved:
            self.stopper.best, self.stopper.wait, self.stopper.state = saved["best"], saved["wait"], saved["state"]
