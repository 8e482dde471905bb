"""The ``dehaze`` task: paired hazy/clear images (``docs/methods/aecr.md``); dictionary batches
``{"hazy", "clear": uint8 [B, 3, c, c]}``; evaluation on full-size test images: mean PSNR / SSIM
(as the official code defines them, ``evaluation.restoration``) of the restored images, on the recipe's test set
and on the 5 SOTS-indoor pairs when the data root holds them, beside two reference rows (the hazy
input itself and the dark channel prior)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

import torch
from torch import Tensor

from contrastkit.data.dehaze import DEHAZE_TASK, DehazeSet
from contrastkit.data.module import ArrayDataModule
from contrastkit.evaluation.restoration import psnr, ssim
from contrastkit.pipeline.tasks.base import (
    Evaluation,
    Plot,
    Task,
    build_method,
    load_dataset,
    optimizer_settings,
    verdict_line,
)
from contrastkit.registry import register_task

if TYPE_CHECKING:
    from contrastkit.config import Recipe

__all__ = ["DehazeTask", "restoration_scores"]

MONITOR_IMAGES = 64


def restoration_scores(
    restore: Any, hazy: list[Tensor], clear: list[Tensor], batch: int = 16
) -> tuple[Tensor, Tensor, list[Tensor]]:
    """Per-image PSNR ``[N]``, SSIM ``[N]`` and the restored images (uint8) of ``restore`` (a
    function of float ``[B, 3, H, W]`` in [0, 1]); same-size images are batched."""
    p, s, out = torch.empty(len(hazy)), torch.empty(len(hazy)), [torch.empty(0)] * len(hazy)
    by_size: dict[tuple[int, ...], list[int]] = {}
    for i, h in enumerate(hazy):
        by_size.setdefault(tuple(h.shape), []).append(i)
    for rows in by_size.values():
        for start in range(0, len(rows), batch):
            idx = rows[start : start + batch]
            x = torch.stack([hazy[i] for i in idx]).float() / 255
            y = torch.stack([clear[i] for i in idx]).float() / 255
            r = restore(x).clamp(0, 1)
            p[idx], s[idx] = psnr(r, y), ssim(r, y)
            for j, i in enumerate(idx):
                out[i] = (r[j] * 255).round().to(torch.uint8)
    return p, s, out


@runtime_checkable
class RestorationMethod(Protocol):
    """What the ``dehaze`` task asks of a method (AECR). It is built with ``optimizer`` and
    ``seed``; batches are ``{"hazy": [B, 3, S, S], "clear": [B, 3, S, S], "index"}``."""

    def restore(self, hazy: Tensor) -> Tensor:
        """Restored images ``[N, 3, H, W]`` in ``[0, 1]`` from hazy ones of any size."""
        ...

    def describe(self) -> str:
        """The model in one line, for the report."""
        ...


@register_task(DEHAZE_TASK)
class DehazeTask(Task):
    """Hazy/clear pairs; methods meet ``RestorationMethod``."""

    samples = "image pairs"

    uses_backbone = False

    def __init__(self, recipe: Recipe, root: str | Path | None) -> None:
        super().__init__(recipe, root)
        d, seed = recipe.data, recipe.trainer.seed
        data: DehazeSet = load_dataset(recipe, root)
        self.data = data
        self.method = build_method(recipe, RestorationMethod, optimizer=optimizer_settings(recipe), seed=seed)
        train: Any = data.train
        self.datamodule = ArrayDataModule(
            train, d.batch_size, d.num_workers, seed, monitor=(self._monitor_pairs(),), drop_last=True
        )
        self.source = data.source
        self.metrics = [("psnr", "PSNR (dB)"), ("ssim", "SSIM")]
        if "sots" in data.extra_tests:
            self.metrics += [("sots_psnr", "SOTS-5 PSNR (dB)"), ("sots_ssim", "SOTS-5 SSIM")]
        self.protocol = (
            f"Full-size test images ({len(data.test_hazy)}) restored by the network (reflect-padded to a multiple of "
            "4); outputs and targets clamped to [0, 1]; PSNR = 20 log10(1 / RMSE) per image, SSIM with an 11x11 "
            "Gaussian window (sigma 1.5, zero-padded, docs/methods/aecr.md); means over images. SOTS-5: the 5 "
            "SOTS-indoor pairs under <data root>/dehaze/sots_indoor_d4 (synthetic haze on real indoor photos). "
            "Reference rows: the hazy input unchanged, and the dark channel prior with guided-filter refinement."
        )
        self._references: dict[str, dict[str, float]] | None = None
        self._hazy_psnr = torch.zeros(0)

    def _monitor_pairs(self) -> dict[str, Tensor]:
        """Up to 64 test pairs, centre-cropped to one common size (a multiple of 4, at most 256)."""
        hazy, clear = self.data.test_hazy[:MONITOR_IMAGES], self.data.test_clear[:MONITOR_IMAGES]
        side = min(256, *(min(h.shape[1:]) for h in hazy)) // 4 * 4

        def centre(x: Tensor) -> Tensor:
            top, left = (x.shape[1] - side) // 2, (x.shape[2] - side) // 2
            return x[:, top : top + side, left : left + side]

        return {"hazy": torch.stack([centre(h) for h in hazy]), "clear": torch.stack([centre(c) for c in clear])}

    @classmethod
    def smoke(cls, raw: dict[str, Any]) -> None:
        data = raw.setdefault("data", {})
        data["batch_size"] = min(int(data.get("batch_size", 8)), 8)
        data["train_subset"] = min(int(data.get("train_subset") or 64), 64)
        data["test_subset"] = min(int(data.get("test_subset") or 16), 16)

    def model_line(self) -> str:
        return cast(RestorationMethod, self.method).describe()

    def _sets(self) -> dict[str, tuple[list[Tensor], list[Tensor], list[str]]]:
        return {
            "": (self.data.test_hazy, self.data.test_clear, self.data.test_names),
            **{f"{k}_": v for k, v in self.data.extra_tests.items()},
        }

    def reference_rows(self) -> dict[str, dict[str, float]]:
        """The hazy input and the dark channel prior on the same test sets (computed once)."""
        if self._references is None:
            from contrastkit.nn.dark_channel import DarkChannelPrior

            rows: dict[str, dict[str, float]] = {"hazy input (no restoration)": {}, "dark channel prior": {}}
            for prefix, (hazy, clear, _) in self._sets().items():
                for label, fn in (
                    ("hazy input (no restoration)", lambda x: x),
                    ("dark channel prior", DarkChannelPrior()),
                ):
                    p, s, _ = restoration_scores(fn, hazy, clear)
                    rows[label][f"{prefix}psnr"], rows[label][f"{prefix}ssim"] = float(p.mean()), float(s.mean())
                    if label.startswith("hazy") and not prefix:
                        self._hazy_psnr = p
            self._references = rows
        return self._references

    def verdict(self, final: Evaluation, random_init: dict[str, Any] | None) -> str | None:
        """PSNR against the unchanged hazy input, the spread being the standard error of the
        per-image differences (paired: the same test images)."""
        restored = self.restored[""][0]
        self.reference_rows()
        diff = restored - self._hazy_psnr
        spread = float(diff.std() / math.sqrt(len(diff))) if len(diff) > 1 else None
        hazy = float(self._hazy_psnr.mean())
        return verdict_line("PSNR (dB)", float(restored.mean()), hazy, "the unchanged hazy input", spread)

    def evaluate(self, desc: str, progress: bool) -> Evaluation:
        m: Any = self.method
        was = m.training
        m.eval()
        numbers: dict[str, float | int | None] = {}
        self.restored: dict[str, tuple[Tensor, Tensor, list[Tensor]]] = {}
        try:
            for prefix, (hazy, clear, _) in self._sets().items():
                p, s, out = restoration_scores(m.restore, hazy, clear)
                numbers[f"{prefix}psnr"], numbers[f"{prefix}ssim"] = float(p.mean()), float(s.mean())
                self.restored[prefix] = (p, s, out)
        finally:
            m.train(was)
        return Evaluation(numbers)

    def plots(self, run_dir: Path, final: Evaluation, random_init: dict[str, Any] | None) -> list[Plot]:
        from contrastkit.pipeline.report import plot_monitor, restoration_grid

        plots = []
        hazy_psnr = self.reference_rows()["hazy input (no restoration)"]["psnr"]
        if plot_monitor(run_dir, "val/psnr", "PSNR (dB), monitor crops", "psnr.png", None):
            plots.append(
                Plot(
                    "psnr.png",
                    f"PSNR per epoch on {MONITOR_IMAGES} centre-cropped test pairs "
                    f"(hazy input on the full test set: {hazy_psnr:.2f} dB)",
                )
            )
        for prefix, (hazy, clear, names) in self._sets().items():
            p, s, out = self.restored[prefix]
            count = 5 if prefix else 6
            file = f"{prefix or 'test_'}examples.png"
            restoration_grid(
                run_dir / file, hazy[:count], out[:count], clear[:count], names[:count], p[:count], s[:count]
            )
            where = "SOTS-indoor pairs" if prefix else "test images"
            plots.append(Plot(file, f"Hazy / restored / clear, {where} (per-image PSNR / SSIM of the restored image)"))
        return plots
