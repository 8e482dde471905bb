"""The base every encoder-training method stands on: a LightningModule with a backbone, views
drawn per step from an explicit generator, declared (online, momentum) pairs, an optimiser with
warm-up and cosine decay per player, and an opt-in online kNN monitor.

A method subclass builds its heads and criterion in ``__init__`` from its params class (the one
place its defaults live: ``MethodParams.resolve``) and implements ``step(batch)``, returning the
loss or a ``StepOutput``; the base does the rest. Batches are dictionaries (``Batch``): ``"input"``
(images ``uint8 [B, C, H, W]``, clips ``[B, C, T, H, W]``, features ...), ``"index"`` (dataset
rows, ``[B]``) and, where the data has them, ``"label"`` and modality-specific entries
(per-frame labels, a second modality, a missing-modality mask). Keys always come from the
momentum encoder, which subclasses declare in ``momentum_pairs`` instead of coding EMA
updates (after solo-learn's design).

Two-player methods (VideoMoCo's frame-drop generator against the encoder) declare their
players in ``players()``; the base then switches to Lightning's manual optimisation with one
optimiser and one schedule per player (all saved in checkpoints), and ``step`` updates each
player inside ``with self.player(name) as update: ...`` in the order the paper prescribes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrastkit.evaluation.knn import knn_accuracy
from contrastkit.functional.distributed import rank_and_world
from contrastkit.nn.backbones import Backbone
from contrastkit.nn.momentum import ema_update
from contrastkit.nn.shuffle import shuffled_forward
from contrastkit.views.clips import normalize_clips
from contrastkit.views.image import ViewAugmentation, normalize_images

__all__ = ["Batch", "ContrastiveMethod", "OptimizerSettings", "StepOutput", "weighted_sum"]

SIMILARITY_SAMPLES = 4096
"""Negative cosines kept per step for the report's similarity histogram."""
QUEUE_SIMILARITY_ROWS = 512
"""Queue rows a queue method compares its queries with for that histogram."""

Batch = dict[str, Any]
"""A training batch: ``{"input": Tensor, "index": Tensor [B], "label": Tensor, ...}``."""


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
    """Shared base of the encoder-training methods (SimCLR, MoCo, MoCHi, DenseCL, ...).

    Args:
        backbone: encoder returning ``[B, C]`` (and ``forward_map`` for dense methods).
        augmentation: the view distribution.
        optimizer: optimiser settings (every player's, unless ``player_optimizer`` says otherwise).
        num_classes: classes of the labelled evaluation data (kNN monitor; it runs only when
            the data module provides a bank and a test loader).
        knn_k, knn_temperature: kNN monitor settings (``docs/methods/moco.md``).
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
        self.ema_momentum = 0.99
        self._val_outputs: dict[int, list[tuple[Tensor, Tensor]]] = {}
        self.similarity_samples: dict[str, Tensor] = {}

    # --- what subclasses provide ------------------------------------------------------------

    def step(self, batch: Batch) -> StepOutput | Tensor:
        """One training step on a batch (``batch["input"]``: raw images ``uint8 [B, C, H, W]``,
        ``batch["index"]``: dataset rows): the loss, or a ``StepOutput`` with the similarities
        for the report. Two-player methods also update their players here."""
        raise TypeError(f"{type(self).__name__} must implement step(batch)")

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """``(online, momentum)`` module pairs updated by EMA before each step's key forward."""
        return []

    def players(self) -> dict[str, list[nn.Module]]:
        """Named groups of modules, each with its own optimiser and schedule.

        The default is one player holding every trainable parameter (automatic optimisation).
        A two-player method returns, e.g., ``{"encoder": [...], "generator": [...]}``; its
        ``step`` must then update each player through ``player(name)``. Parameters of no player
        are not optimised.
        """
        return {"model": [self]}

    def player_optimizer(self, name: str) -> OptimizerSettings:
        """Optimiser settings of player ``name`` (default: the method's)."""
        return self.optimizer_settings

    @property
    def automatic_optimization(self) -> bool:
        return len(self.players()) <= 1

    @automatic_optimization.setter
    def automatic_optimization(self, value: bool) -> None:
        raise AttributeError("automatic_optimization follows players(): return several players for manual optimisation")

    @contextmanager
    def player(self, name: str) -> Iterator[Callable[[Tensor], None]]:
        """Update one player of a two-player method: inside the block only that player's
        parameters require gradients (Lightning's ``toggle_optimizer``), so compute its loss
        there — a fresh forward per player, which is also what DDP needs — and call
        ``update(loss)``: zero grad, backward (AMP- and DDP-aware), optimiser step, schedule step.

        Example (in ``step``)::

            with self.player("generator") as update:
                update(-self.contrast(self.generator(x), ...))
            with self.player("encoder") as update:
                loss = self.contrast(x, ...)
                update(loss)
        """
        names = list(self.players())
        if name not in names:
            raise ValueError(f"unknown player {name!r}; players: {', '.join(names)}")
        index = names.index(name)
        optimizers = self.optimizers()
        optimizer = optimizers[index] if isinstance(optimizers, list) else optimizers
        schedulers = self.lr_schedulers()
        scheduler = schedulers[index] if isinstance(schedulers, list) else schedulers
        self.toggle_optimizer(optimizer)

        def update(loss: Tensor) -> None:
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()

        try:
            yield update
        finally:
            self.untoggle_optimizer(optimizer)

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

    @torch.no_grad()
    def key_forward(
        self, encode: Callable[[Tensor], tuple[Tensor, ...]], x: Tensor, shuffle: bool
    ) -> tuple[Tensor, ...]:
        """``encode(x)`` without gradient, in a shuffled batch order when ``shuffle`` (ShuffleBN:
        the same permutation on every rank, undone on the outputs)."""
        if shuffle:
            return shuffled_forward(encode, x, self.shared_generator(1))
        return encode(x)

    def preprocess(self, images: Tensor) -> Tensor:
        """Evaluation input: normalise only (images ``[B, C, H, W]`` or clips ``[B, C, T, H, W]``)."""
        if images.dim() == 5:
            return normalize_clips(images, self.augmentation.mean, self.augmentation.std)
        return normalize_images(images, self.augmentation.mean, self.augmentation.std)

    def embed(self, images: Tensor) -> Tensor:
        """Backbone features ``[B, C]`` of un-augmented images (what kNN and probes use)."""
        return self.backbone(self.preprocess(images))

    # --- Lightning hooks ----------------------------------------------------------------------

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        for online, momentum in self.momentum_pairs():
            ema_update(online, momentum, self.ema_momentum)

    def log_terms(self, terms: dict[str, Tensor]) -> None:
        """Log each named part of a step's loss as ``train/<name>`` (epoch means)."""
        if self._trainer is None:
            return
        for name, value in terms.items():
            self.log(f"train/{name}", value.detach(), on_step=False, on_epoch=True, sync_dist=True)

    def queue_similarities(self, q: Tensor, keys: Tensor) -> Tensor:
        """Cosines of the queries ``[B, D]`` with the first queue rows ``[K, D]`` (flattened)."""
        return (F.normalize(q.detach(), dim=1) @ keys[:QUEUE_SIMILARITY_ROWS].t()).flatten()

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        out = self.step(batch)
        if isinstance(out, Tensor):
            out = StepOutput(out)
        elif not isinstance(out, StepOutput):
            raise TypeError(
                f"{type(self).__name__}.step() must return the loss tensor or a StepOutput, got {type(out).__name__}"
            )
        self.log("train/loss", out.loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
        if out.positive_similarity is not None and out.negative_similarity is not None:
            self.log("train/pos_sim", out.positive_similarity.mean(), on_step=False, on_epoch=True, sync_dist=True)
            self.log("train/neg_sim", out.negative_similarity.mean(), on_step=False, on_epoch=True, sync_dist=True)
            self.similarity_samples = {
                "positive": out.positive_similarity.detach().float().cpu(),
                "negative": out.negative_similarity.detach().float().cpu()[:SIMILARITY_SAMPLES],
            }
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)
        return out.loss if self.automatic_optimization else out.loss.detach()

    def validation_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Online kNN monitor: loader 0 is the bank, loader 1 the test split (both labelled)."""
        self._val_outputs.setdefault(dataloader_idx, []).append((self.embed(batch["input"]).float(), batch["label"]))

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
        total = max(1, int(self.trainer.estimated_stepping_batches))
        steps_per_epoch = total / max(1, self.trainer.max_epochs or 1)
        configs = []
        for name, modules in self.players().items():
            params = list(dict.fromkeys(p for m in modules for p in m.parameters() if p.requires_grad))
            if not params:
                raise ValueError(f"player {name!r} of {type(self).__name__} has no trainable parameters")
            cfg = self.player_optimizer(name)
            optimizer = build_optimizer(cfg, params)
            schedule = warmup_cosine(cfg, total, int(cfg.warmup_epochs * steps_per_epoch))
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
            configs.append({"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}})
        return configs[0] if len(configs) == 1 else configs


def weighted_sum(terms: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
    """``sum_name weights[name] * terms[name]`` in the order of ``terms`` (a term without a
    weight is an error, not a silent zero)."""
    missing = [name for name in terms if name not in weights]
    if missing:
        raise KeyError(f"no weight for the loss term(s) {', '.join(missing)}")
    first = next(iter(terms.values()))
    return sum((weights[name] * value for name, value in terms.items()), torch.zeros((), device=first.device))


def build_optimizer(cfg: OptimizerSettings, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """SGD (with momentum), Adam or AdamW from ``cfg``."""
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.name!r}; choose sgd, adam or adamw")


def warmup_cosine(cfg: OptimizerSettings, total: int, warmup: int) -> Callable[[int], float]:
    """Per-step learning-rate factor: linear warm-up over ``warmup`` steps, then cosine to 0 at
    ``total`` (or constant with ``cfg.cosine=False``)."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if not cfg.cosine:
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor
