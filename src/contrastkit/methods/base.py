"""The base every image method stands on: a LightningModule with a backbone, views drawn per
step from an explicit generator, declared (online, momentum) pairs, an optimiser with warm-up
and cosine decay, and an online kNN monitor.

A method subclass builds its heads and criterion in ``__init__`` and implements ``step``; the
base does the rest. Keys always come from the momentum encoder, which subclasses declare in
``momentum_pairs`` instead of coding EMA updates (after solo-learn's design).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from contrastkit.evaluation.knn import knn_accuracy
from contrastkit.functional.distributed import rank_and_world
from contrastkit.nn.backbones import Backbone
from contrastkit.nn.momentum import ema_update
from contrastkit.views.image import ViewAugmentation, normalize_images

__all__ = ["ContrastiveMethod", "OptimizerSettings", "StepOutput"]


@dataclass(frozen=True)
class OptimizerSettings:
    """Optimiser and schedule (per step: linear warm-up, then cosine to 0)."""

    name: str = "sgd"
    lr: float = 0.06
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.0
    cosine: bool = True


@dataclass
class StepOutput:
    """What ``step`` returns: the loss and, for the similarity plots, positive/negative cosines."""

    loss: Tensor
    positive_similarity: Tensor | None = None
    negative_similarity: Tensor | None = None


class ContrastiveMethod(L.LightningModule):
    """Shared base of SimCLR, MoCo, MoCHi, DenseCL.

    Args:
        backbone: encoder returning ``[B, C]`` (and ``forward_map`` for dense methods).
        augmentation: the view distribution.
        optimizer: optimiser settings.
        num_classes: classes of the labelled evaluation data (kNN monitor).
        knn_k, knn_temperature: kNN monitor settings (``moco.md`` §6).
        seed: base of the per-step generators (views, shuffles, mixing).
    """

    def __init__(
        self,
        backbone: Backbone,
        augmentation: ViewAugmentation,
        *,
        optimizer: OptimizerSettings | None = None,
        num_classes: int = 10,
        knn_k: int = 200,
        knn_temperature: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.augmentation = augmentation
        self.optimizer_settings = optimizer or OptimizerSettings()
        self.num_classes = num_classes
        self.knn_k = knn_k
        self.knn_temperature = knn_temperature
        self.seed = seed
        self.momentum = 0.99
        self._val_outputs: dict[int, list[tuple[Tensor, Tensor]]] = {}
        self.similarity_samples: dict[str, Tensor] = {}

    # --- what subclasses provide ------------------------------------------------------------

    def step(self, images: Tensor, indices: Tensor) -> StepOutput:
        """One training step on a batch of raw images ``uint8 [B, C, H, W]``."""
        raise NotImplementedError(f"{type(self).__name__} must implement step()")

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """``(online, momentum)`` module pairs updated by EMA before each step's key forward."""
        return []

    # --- randomness ---------------------------------------------------------------------------

    def generator(self, stream: int) -> torch.Generator:
        """A generator seeded by (seed, global step, rank, stream): resumable and per-rank distinct."""
        rank, _ = rank_and_world()
        g = torch.Generator(device=self.device)
        g.manual_seed(((self.seed * 1_000_003 + self.global_step) * 1009 + rank) * 31 + stream)
        return g

    def shared_generator(self, stream: int) -> torch.Generator:
        """Like ``generator`` but identical on every rank (for cross-rank shuffles)."""
        g = torch.Generator(device=self.device)
        g.manual_seed((self.seed * 1_000_003 + self.global_step) * 31 + stream + 7)
        return g

    def views(self, images: Tensor, count: int = 2) -> list[Tensor]:
        g = self.generator(0)
        return [self.augmentation(images, g) for _ in range(count)]

    def preprocess(self, images: Tensor) -> Tensor:
        """Evaluation input: normalise only."""
        return normalize_images(images, self.augmentation.mean, self.augmentation.std)

    def embed(self, images: Tensor) -> Tensor:
        """Backbone features ``[B, C]`` of un-augmented images (what kNN and probes use)."""
        return self.backbone(self.preprocess(images))

    # --- Lightning hooks ----------------------------------------------------------------------

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        for online, momentum in self.momentum_pairs():
            ema_update(online, momentum, self.momentum)

    def training_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> Tensor:
        images, _, indices = batch
        out = self.step(images, indices)
        self.log("train/loss", out.loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
        if out.positive_similarity is not None and out.negative_similarity is not None:
            self.log("train/pos_sim", out.positive_similarity.mean(), on_step=False, on_epoch=True, sync_dist=True)
            self.log("train/neg_sim", out.negative_similarity.mean(), on_step=False, on_epoch=True, sync_dist=True)
            self.similarity_samples = {
                "positive": out.positive_similarity.detach().float().cpu(),
                "negative": out.negative_similarity.detach().float().cpu()[:4096],
            }
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)
        return out.loss

    def validation_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        images, labels, _ = batch
        self._val_outputs.setdefault(dataloader_idx, []).append((self.embed(images).float(), labels))

    def on_validation_epoch_end(self) -> None:
        if len(self._val_outputs) < 2:
            self._val_outputs.clear()
            return
        bank, bank_labels = (torch.cat(t) for t in zip(*self._val_outputs[0]))
        test, test_labels = (torch.cat(t) for t in zip(*self._val_outputs[1]))
        self._val_outputs.clear()
        bank, bank_labels = self._gather_rows(bank), self._gather_rows(bank_labels)
        test, test_labels = self._gather_rows(test), self._gather_rows(test_labels)
        acc = knn_accuracy(bank, bank_labels, test, test_labels, self.num_classes, self.knn_k, self.knn_temperature)
        self.log("val/knn_top1", acc, prog_bar=True, sync_dist=False, rank_zero_only=True)

    def _gather_rows(self, x: Tensor) -> Tensor:
        if self.trainer.world_size <= 1:
            return x
        gathered = self.all_gather(x)  # [world, n, ...]: equal shards (the sampler drops the remainder)
        assert isinstance(gathered, Tensor)
        return gathered.reshape(-1, *x.shape[1:])

    def configure_optimizers(self) -> Any:
        cfg = self.optimizer_settings
        params = [p for p in self.parameters() if p.requires_grad]
        if cfg.name == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
        elif cfg.name == "adam":
            opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        elif cfg.name == "adamw":
            opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            raise ValueError(f"unknown optimizer {cfg.name!r}; choose sgd, adam or adamw")
        total = max(1, int(self.trainer.estimated_stepping_batches))
        steps_per_epoch = total / max(1, self.trainer.max_epochs or 1)
        warmup = int(cfg.warmup_epochs * steps_per_epoch)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if not cfg.cosine:
                return 1.0
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
