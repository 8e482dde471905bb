"""Labelled clips with frozen teacher features of other modalities, for cross-modal distillation
(CCL, ``docs/methods/ccl.md``): the seeded protocol ``ccl_synthetic`` (no download).

- 10 classes = 5 static shapes x 2 motion directions (left / right, wrapping around), clips of 8
  frames of 32x32 with strong pixel noise; 20 labelled training clips per class (the student
  alone is data-starved) and 50 test clips per class.
- Image teacher (64-d, precomputed): ``P_I[y] + 0.5 e`` with ``P_I`` rows random unit vectors x 3:
  appearance knowledge for every class.
- Audio teacher with a **semantic gap**: classes 0-4 ``P_A[y] + 0.5 e``; classes 5-9 share one
  "music" vector ``P_A[music] + 0.5 e`` (uninformative); 10% of the videos have no audio (a zero
  vector, which the losses mask out).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from contrastkit.data.images import AugmentedData
from contrastkit.registry import register_dataset

__all__ = ["DISTILL_TASK", "DistillSet", "audio_teacher", "ccl_synthetic"]

DISTILL_TASK = "distill"
SHAPES = ("square", "plus", "ring", "cross", "bar")
GAP_CLASSES = (5, 6, 7, 8, 9)


@dataclass
class DistillSet:
    """Clips ``uint8 [N, 3, T, H, W]``, labels, and teacher features ``{name: [N, D]}`` per split."""

    name: str
    train_clips: Tensor
    train_labels: Tensor
    train_teachers: dict[str, Tensor]
    test_clips: Tensor
    test_labels: Tensor
    test_teachers: dict[str, Tensor]
    classes: tuple[str, ...]
    source: str
    gap_classes: tuple[int, ...] = ()
    teacher_top1: dict[str, float] = field(default_factory=dict)  # a teacher's own test top-1, where it has one


def _shape_mask(shape: int, size: int = 8) -> Tensor:
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    c = (size - 1) / 2
    if shape == 0:
        return torch.ones(size, size)
    if shape == 1:
        return (((y - c).abs() <= 1) | ((x - c).abs() <= 1)).float()
    if shape == 2:
        r = ((y - c) ** 2 + (x - c) ** 2).float().sqrt()
        return ((r >= c - 1.5) & (r <= c + 0.5)).float()
    if shape == 3:
        return (((y - x).abs() <= 1) | ((y + x - size + 1).abs() <= 1)).float()
    return ((y - c).abs() <= 1.5).float()  # a horizontal bar


def _clips(labels: Tensor, frames: int, size: int, noise: float, g: torch.Generator) -> Tensor:
    out = torch.empty(len(labels), 3, frames, size, size)
    for i, label in enumerate(labels.tolist()):
        shape, direction = label % 5, (1 if label < 5 else -1)
        mask = _shape_mask(shape)
        colour = torch.rand(3, generator=g) * 0.6 + 0.4
        top = int(torch.randint(size - 8, (1,), generator=g))
        left = int(torch.randint(size, (1,), generator=g))
        speed = 1 + int(torch.randint(2, (1,), generator=g))
        for t in range(frames):
            frame = torch.full((3, size, size), 0.2)
            cols = (left + direction * speed * t + torch.arange(8)) % size
            frame[:, top : top + 8, cols] = torch.where(
                mask[None] > 0, colour[:, None, None], frame[:, top : top + 8, cols]
            )
            out[i, :, t] = frame
    out = out + noise * torch.randn(out.shape, generator=g)
    return (out.clamp(0, 1) * 255).round().to(torch.uint8)


def audio_teacher(labels: Tensor, protos: Tensor, missing: float, g: torch.Generator) -> Tensor:
    """Audio features with a semantic gap, ``[N, D]``: ``protos[y] + 0.5 e`` for the classes below
    5, the shared "music" row ``protos[-1] + 0.5 e`` for ``GAP_CLASSES``; a ``missing`` fraction
    of rows all zero (no audio)."""
    source = torch.where(labels < GAP_CLASSES[0], labels, torch.full_like(labels, len(protos) - 1))
    audio = protos[source] + 0.5 * torch.randn(len(labels), protos.shape[1], generator=g)
    audio[torch.rand(len(labels), generator=g) < missing] = 0
    return audio


def ccl_synthetic(
    seed: int = 0,
    *,
    train_per_class: int = 20,
    test_per_class: int = 50,
    frames: int = 8,
    size: int = 32,
    dim: int = 64,
    noise: float = 0.35,
    missing_audio: float = 0.1,
) -> DistillSet:
    """Our CCL protocol (see the module docstring)."""
    g = torch.Generator().manual_seed(seed)
    classes = 10
    image_protos = torch.nn.functional.normalize(torch.randn(classes, dim, generator=g), dim=1) * 3
    audio_protos = torch.nn.functional.normalize(torch.randn(classes + 1, dim, generator=g), dim=1) * 3  # + "music"

    def split(per_class: int) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        labels = torch.arange(classes).repeat_interleave(per_class)
        clips = _clips(labels, frames, size, noise, g)
        image = image_protos[labels] + 0.5 * torch.randn(len(labels), dim, generator=g)
        return clips, labels, {"audio": audio_teacher(labels, audio_protos, missing_audio, g), "image": image}

    train = split(train_per_class)
    test = split(test_per_class)
    names = tuple(f"{shape}-{'right' if d == 0 else 'left'}" for d in range(2) for shape in SHAPES)
    return DistillSet(
        "ccl_synthetic",
        *train,
        *test,
        names,
        f"CCL synthetic clips (docs/methods/ccl.md: 10 classes = 5 shapes x 2 directions, {frames} frames of {size}px, "
        f"{train_per_class} train / {test_per_class} test per class; teachers: image for every class, audio "
        f"uninformative for classes 5-9, {missing_audio:.0%} without audio; seed {seed})",
        GAP_CLASSES,
    )


class DistillData(AugmentedData):
    """Options of the ``distill`` task's datasets: the student's views (``image_size``,
    ``augmentation``) and ``per_frame_views`` (one augmentation draw per frame)."""

    per_frame_views: bool = False


@register_dataset(
    "ccl_synthetic",
    task=DISTILL_TASK,
    settings=DistillData,
    summary="clips + image/audio teacher features with a semantic gap",
    reads_root=False,
)
def _ccl_synthetic_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> DistillSet:
    return ccl_synthetic(seed)
