"""The ``distill`` task: labelled clips with frozen teacher features (``docs/methods/ccl.md``): dictionary
batches ``{"input": uint8 [B, 3, T, H, W], "label", "audio", "image", "index"}``; evaluation of
the student alone: top-1 of its classifier on the test clips, retrieval R@1 with its features
(test -> train, cosine, same class = hit), and top-1 on the gap classes (where a teacher is
uninformative)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from contrastkit.data.distill import DISTILL_TASK, DistillData, DistillSet
from contrastkit.data.module import ArrayDataModule
from contrastkit.pipeline.tasks.base import (
    Evaluation,
    Task,
    build_method,
    data_settings,
    load_dataset,
    optimizer_settings,
    prepared_backbone,
)
from contrastkit.registry import register_task
from contrastkit.views.clips import ClipAugmentation
from contrastkit.views.image import build_augmentation

if TYPE_CHECKING:
    from contrastkit.config import Recipe

__all__ = ["DistillTask"]


@runtime_checkable
class DistillMethod(Protocol):
    """What the ``distill`` task asks of a method (CCL). It is built with ``backbone``,
    ``augmentation`` (a ``ClipAugmentation``), ``optimizer``, ``num_classes``, ``teacher_dims``
    (``{name: D}``), ``seed`` and ``knn_k``; batches are ``{"input": uint8 clips, "label",
    "index", <teacher name>: [B, D]}`` (an all-zero teacher row is a missing modality)."""

    def predict_logits(self, clips: Tensor) -> Tensor:
        """Class logits ``[N, classes]`` of un-augmented clips."""
        ...

    def embed(self, clips: Tensor) -> Tensor:
        """Student features ``[N, D]`` of un-augmented clips."""
        ...


@register_task(DISTILL_TASK)
class DistillTask(Task):
    """Clips with teacher features; methods meet ``DistillMethod``."""

    samples = "clips"

    def __init__(self, recipe: Recipe, root: str | Path | None) -> None:
        super().__init__(recipe, root)
        d, seed = data_settings(recipe, DistillData), recipe.trainer.seed
        data: DistillSet = load_dataset(recipe, root)
        self.data = data
        x = data.train_clips[:256].float().div(255).transpose(0, 1).reshape(3, -1)
        mean, std = tuple(x.mean(1).tolist()), tuple(x.std(1).clamp_min(1e-3).tolist())
        frames = build_augmentation(d.augmentation, d.image_size, mean, std)
        clip_length = int(data.train_clips.shape[2])
        self.input_spec = {
            "channels": 3,
            "image_size": d.image_size,
            "clip_length": clip_length,
            "mean": mean,
            "std": std,
        }
        backbone = prepared_backbone(recipe, 3, d.image_size)
        self.method = build_method(
            recipe,
            DistillMethod,
            backbone=backbone,
            augmentation=ClipAugmentation(frames, per_frame=d.per_frame_views),
            optimizer=optimizer_settings(recipe),
            num_classes=len(data.classes),
            teacher_dims={k: v.shape[1] for k, v in data.train_teachers.items()},
            seed=seed,
            knn_k=recipe.eval.knn_k,
        )
        rows = {"input": data.train_clips, "label": data.train_labels, **data.train_teachers}
        self.datamodule = ArrayDataModule(rows, d.batch_size, d.num_workers, seed)
        self.classes = data.classes
        self.source = data.source
        self.metrics = [
            ("student_top1", "student top-1"),
            ("student_retrieval_r1", "student retrieval R@1"),
        ]
        if data.gap_classes:
            self.metrics.append(("gap_classes_top1", "student top-1, gap classes"))
            self.metrics.append(("other_classes_top1", "student top-1, other classes"))
        self.protocol = (
            "The student alone: its classifier's top-1 on the test clips; retrieval R@1 with its features "
            "(each test clip queries the training clips by cosine; a hit is a same-class clip); top-1 on the classes "
            "whose audio is uninformative (the gap classes) and on the others."
        )

    @classmethod
    def smoke(cls, raw: dict[str, Any]) -> None:
        raw.setdefault("data", {})["batch_size"] = min(int(raw.get("data", {}).get("batch_size", 32)), 16)

    @torch.no_grad()
    def evaluate(self, desc: str, progress: bool) -> Evaluation:
        from contrastkit.evaluation.retrieval import retrieval_recall

        m: Any = self.method
        was = m.training
        m.eval()
        try:
            logits = torch.cat([m.predict_logits(c) for c in self.data.test_clips.split(128)])
            test = torch.cat([m.embed(c) for c in self.data.test_clips.split(128)]).float()
            train = torch.cat([m.embed(c) for c in self.data.train_clips.split(128)]).float()
        finally:
            m.train(was)
        labels = self.data.test_labels
        correct = logits.argmax(1) == labels
        numbers: dict[str, float | int | None] = {
            "student_top1": float(correct.float().mean() * 100),
            "student_retrieval_r1": retrieval_recall(train, self.data.train_labels, test, labels, ks=(1,))[1],
            "feature_dim": test.shape[1],
        }
        for name, top1 in self.data.teacher_top1.items():  # the frozen teacher's own, for reference
            numbers[f"teacher_{name}_top1"] = top1
        if self.data.gap_classes:
            gap = torch.isin(labels, torch.tensor(self.data.gap_classes))
            numbers["gap_classes_top1"] = float(correct[gap].float().mean() * 100)
            numbers["other_classes_top1"] = float(correct[~gap].float().mean() * 100)
            for c in self.data.gap_classes:
                numbers[f"class{c}_top1"] = float(correct[labels == c].float().mean() * 100)
        return Evaluation(numbers, test, labels)
