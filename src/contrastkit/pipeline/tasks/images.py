"""The ``images`` task: labelled image splits, encoder methods on dictionary batches, kNN and a
linear probe on frozen backbone features, an online kNN monitor, similarity and t-SNE plots."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contrastkit.data.errors import DataError
from contrastkit.data.image_files import ImageFiles
from contrastkit.data.images import ImageData, ImageSplits
from contrastkit.data.module import ArrayDataModule
from contrastkit.evaluation.low_label import few_label_key
from contrastkit.methods.base import ContrastiveMethod
from contrastkit.pipeline.tasks.base import (
    Evaluation,
    Plot,
    Task,
    build_method,
    data_settings,
    load_dataset,
    optimizer_settings,
    prepared_backbone,
)
from contrastkit.registry import register_task
from contrastkit.views.image import build_augmentation, resolve_preset

if TYPE_CHECKING:
    from contrastkit.config import Recipe

__all__ = ["ImagesTask", "image_method", "image_splits"]

STREAMED_MONITOR = 1000  # images in the kNN monitor's bank and test set when they are read from disk


def image_splits(recipe: Recipe, root: str | Path | None = None) -> ImageSplits:
    """The recipe's image dataset, checked against ``data.image_size`` and subset as asked."""
    splits: ImageSplits = load_dataset(recipe, root)
    cfg = data_settings(recipe, ImageData)
    if cfg.image_size != splits.image_size:
        raise DataError(
            f"data.image_size={cfg.image_size} but {splits.name} images are {splits.image_size}x{splits.image_size}"
        )
    return splits.subset(cfg.train_subset, cfg.test_subset, recipe.trainer.seed)


def image_method(recipe: Recipe, splits: ImageSplits) -> ContrastiveMethod:
    """The recipe's method with a fresh backbone (seed the RNG first for reproducible weights)."""
    backbone = prepared_backbone(recipe, splits.channels, splits.image_size)
    augmentation = build_augmentation(
        data_settings(recipe, ImageData).augmentation, splits.image_size, splits.mean, splits.std
    )
    method: ContrastiveMethod = build_method(
        recipe,
        backbone=backbone,
        augmentation=augmentation,
        optimizer=optimizer_settings(recipe),
        num_classes=splits.num_classes,
        knn_k=recipe.eval.knn_k,
        knn_temperature=recipe.eval.knn_temperature,
        seed=recipe.trainer.seed,
    )
    return method


@register_task("images")
class ImagesTask(Task):
    """Image pretraining: batches ``{"input": uint8 [B, C, H, W], "label": [B], "index": [B]}``."""

    samples = "images"

    def __init__(self, recipe: Recipe, root: str | Path | None) -> None:
        super().__init__(recipe, root)
        self.splits = image_splits(recipe, root)
        self.method: ContrastiveMethod = image_method(recipe, self.splits)
        s, d, e, seed = self.splits, data_settings(recipe, ImageData), recipe.eval, recipe.trainer.seed
        self.input_spec = {"channels": s.channels, "image_size": s.image_size, "mean": s.mean, "std": s.std}
        self.labelled = bool(s.classes)
        streamed = isinstance(s.train_images, ImageFiles)
        monitor = None
        if self.labelled:  # the online kNN monitor; files read from disk get a 1,000-image bank and test set
            bank = s.subset(e.monitor_bank or (STREAMED_MONITOR if streamed else None), None, seed)
            test = s.subset(None, STREAMED_MONITOR if streamed else None, seed)
            monitor = (
                {"input": bank.train_images, "label": bank.train_labels},
                {"input": test.test_images, "label": test.test_labels},
            )
        self.datamodule = ArrayDataModule(
            {"input": s.train_images, "label": s.train_labels},
            d.batch_size,
            d.num_workers or (min(4, os.cpu_count() or 1) if streamed else 0),
            seed,
            monitor=monitor,
        )
        self.classes = s.classes
        self.source = s.source
        preset = resolve_preset(d.augmentation, s.channels, s.image_size)
        views = f" Views: the {preset} preset" + (" (data.augmentation=auto)." if d.augmentation == "auto" else ".")
        if not self.labelled:
            self.metrics = [
                ("view_cosine_positive", "cosine, two views of one image"),
                ("view_cosine_negative", "cosine, two different images"),
            ]
            self.protocol = (
                "No labels, so no kNN or probe: mean cosine similarity of backbone features of two random"
                " views of the same held-out image, and of two different held-out images (up to 512). Training"
                " should pull the first above the second." + views
            )
            return
        self.metrics = [
            ("knn_top1", f"kNN top-1 (k={e.knn_k})"),
            *[(few_label_key(f), f"kNN top-1, {100 * f:g}% of labels") for f in e.label_fractions],
            ("linear_probe_top1", "linear probe top-1"),
        ]
        self.protocol = (
            "kNN: cosine similarity to the whole training split, votes weighted "
            f"exp(sim / {e.knn_temperature})."
            " Linear probe: frozen backbone features, no augmentation, standardised, Adam with cosine decay."
            + (
                f" Few labels: the same kNN with only that fraction of each class labelled (at least one),"
                f" mean ± std over {e.label_draws} random draws of the labelled images."
                if e.label_fractions
                else ""
            )
            + views
        )

    def evaluate(self, desc: str, progress: bool) -> Evaluation:
        from contrastkit.pipeline.evaluate import evaluate_encoder, view_similarities

        if not self.labelled:
            positive, negative = view_similarities(self.method, self.splits.test_images[:512], self.recipe.trainer.seed)
            return Evaluation(
                {"view_cosine_positive": float(positive.mean()), "view_cosine_negative": float(negative.mean())}
            )
        e = self.recipe.eval
        result = evaluate_encoder(
            self.method,
            self.splits,
            knn_k=e.knn_k,
            knn_temperature=e.knn_temperature,
            probe=e.linear_probe,
            probe_epochs=e.probe_epochs,
            label_fractions=tuple(e.label_fractions),
            label_draws=e.label_draws,
            seed=self.recipe.trainer.seed,
            desc=desc,
            progress=progress,
        )
        return Evaluation(result.numbers(), result.test_features, result.test_labels)

    def plots(self, run_dir: Path, final: Evaluation, random_init: dict[str, Any] | None) -> list[Plot]:
        from contrastkit.pipeline.evaluate import view_similarities
        from contrastkit.pipeline.report import plot_monitor, plot_similarities

        out: list[Plot] = []
        baseline = (random_init or {}).get("knn_top1")
        if plot_monitor(run_dir, "val/knn_top1", "kNN top-1 (%)", "knn.png", baseline, self.baseline_name()):
            out.append(Plot("knn.png", "Online kNN monitor per epoch"))
        positive, negative = view_similarities(self.method, self.splits.test_images[:512], self.recipe.trainer.seed)
        out.append(
            Plot(
                plot_similarities(run_dir, positive, negative),
                "Cosine similarity of two views of one image vs different images (test split)",
            )
        )
        return out + self.embedding_plot(run_dir, final)

    def headline(self, final: dict[str, Any], random_init: dict[str, Any] | None) -> str | None:
        """The pretraining gain at the smallest label fraction, with the spread over label draws."""
        fractions = sorted(self.recipe.eval.label_fractions)
        if not fractions or not random_init:
            return None
        key, fraction = few_label_key(fractions[0]), fractions[0]
        if final.get(key) is None or random_init.get(key) is None:
            return None
        trained, init = float(final[key]), float(random_init[key])
        spread = max(float(final.get(key + "_std", 0.0)), float(random_init.get(key + "_std", 0.0)))
        gain = trained - init
        verdict = "a clear gain" if gain > 2 * spread else "within the spread: no clear gain"
        return (
            f"Pretraining gain with {100 * fraction:g}% of the labels: {gain:+.1f} points of kNN top-1"
            f" ({trained:.1f} ± {final.get(key + '_std', 0.0):.1f} trained vs {init:.1f} ± "
            f"{random_init.get(key + '_std', 0.0):.1f} with the {self.baseline_name()}; ± is the spread over "
            f"{self.recipe.eval.label_draws} draws of the labelled images, one pretraining seed): {verdict}."
        )
