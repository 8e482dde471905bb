"""CCL's protocol on real images (``ccl_cifar``): the classes are CIFAR-10's, so an image teacher
built on an encoder trained on CIFAR-10 (a zoo expert) can see them, as the paper's ImageNet
teacher sees UCF's objects (Chen et al., CVPR 2021).

- A clip: one CIFAR-10 image in a disc at its own resolution (radius half the frame) drifting
  over a smooth background in a random direction and pace (``moving_object_frames``), 8 frames
  of 32x32 with pixel noise; label = the image's class. ``train_per_class`` labelled training
  clips per class (the student is data-starved), 100 test clips per class from the test split.
- Image teacher on one frame (the middle one), as the paper's: a frozen encoder (``image_teacher``:
  ``zoo:NAME`` — ``{seed}`` is the run's seed —, ``run:DIR``, a state-dict file, or ``random``,
  a randomly initialised ConvNetSmall of width 16) and a classifier head trained on labelled
  single frames of ``head_images`` other CIFAR-10 training images (the teacher has far more labels
  than the student). The teacher's feature is the head's 64-d hidden layer; its own top-1 on the
  test clips is kept (``DistillSet.teacher_top1``).
- Audio teacher with the semantic gap of ``ccl_synthetic``: informative for classes 0-4, one shared
  "music" vector for 5-9, 10% silent.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn

from contrastkit.data.distill import DISTILL_TASK, GAP_CLASSES, DistillData, DistillSet, audio_teacher
from contrastkit.data.errors import DataError
from contrastkit.data.images import require_cifar10
from contrastkit.data.moving_objects import DIRECTIONS, _background, moving_object_frames
from contrastkit.registry import register_dataset

__all__ = ["ccl_cifar", "train_teacher_head"]

TEACHER_DIM = 64


def _clips(images: Tensor, frames: int, size: int, noise: float, g: torch.Generator) -> Tensor:
    """``uint8 [N, 3, frames, size, size]``: each image drifting in a disc of radius ``size / 2``."""
    out = []
    for image in images:
        direction = int(torch.randint(len(DIRECTIONS), (1,), generator=g))
        speed = 1.0 + float(torch.rand(1, generator=g))
        start = (float(torch.rand(1, generator=g)) * size, float(torch.rand(1, generator=g)) * size)
        texture, background = image.float() / 255, _background(size, g)
        clip = moving_object_frames(direction, texture, background, frames, start, speed, size / 2)
        out.append(clip.permute(3, 0, 1, 2))
    clips = torch.stack(out).float() / 255
    clips = clips + noise * torch.randn(clips.shape, generator=g)
    return (clips.clamp(0, 1) * 255).round().to(torch.uint8)


def _pick(labels: Tensor, per_class: int, g: torch.Generator, taken: Tensor | None = None) -> Tensor:
    """``per_class`` random indices of every class, none of ``taken``."""
    free = torch.ones(len(labels), dtype=torch.bool)
    if taken is not None:
        free[taken] = False
    picks = []
    for c in range(int(labels.max()) + 1):
        pool = torch.nonzero(free & (labels == c)).flatten()
        if len(pool) < per_class:
            raise DataError(f"ccl_cifar: class {c} has {len(pool)} free images, {per_class} asked for")
        picks.append(pool[torch.randperm(len(pool), generator=g)[:per_class]])
    return torch.cat(picks)


def train_teacher_head(features: Tensor, labels: Tensor, classes: int, seed: int, steps: int = 500) -> nn.Sequential:
    """A ``Linear(D, 64) - ReLU - Linear(64, classes)`` classifier on frozen features (standardised
    inside), full-batch Adam with weight decay; returned frozen."""
    torch.manual_seed(seed)
    mean, std = features.mean(0), features.std(0).clamp_min(1e-6)
    hidden = nn.Linear(features.shape[1], TEACHER_DIM)
    with torch.no_grad():
        hidden.bias.sub_(hidden.weight @ (mean / std))
        hidden.weight.div_(std)
    head = nn.Sequential(hidden, nn.ReLU(), nn.Linear(TEACHER_DIM, classes))
    optimizer = torch.optim.Adam(head.parameters(), lr=3e-3, weight_decay=1e-3)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(head(features), labels).backward()
        optimizer.step()
    return head.requires_grad_(False).eval()


def _encoder(source: str, seed: int) -> Any:
    from contrastkit.nn.backbones import ConvNetSmall
    from contrastkit.nn.experts import frame_expert
    from contrastkit.nn.inflate import freeze_module

    if source != "random":
        return frame_expert(source.format(seed=seed))
    torch.manual_seed(seed)
    encoder = ConvNetSmall(3, 16)
    freeze_module(encoder)
    return encoder


def ccl_cifar(
    root: str | os.PathLike[str] | None,
    seed: int = 0,
    *,
    image_teacher: str = "random",
    train_per_class: int = 20,
    test_per_class: int = 100,
    head_images: int = 5000,
    frames: int = 8,
    noise: float = 0.1,
    missing_audio: float = 0.1,
) -> DistillSet:
    """The protocol of the module docstring; needs CIFAR-10 under ``root`` (``cifar10/``)."""
    cifar = require_cifar10(root, "ccl_cifar draws its clips from CIFAR-10")
    g = torch.Generator().manual_seed(seed)
    size, classes = cifar.image_size, len(cifar.classes)
    train_idx = _pick(cifar.train_labels, train_per_class, g)
    head_idx = _pick(cifar.train_labels, head_images // classes, g, taken=train_idx)
    test_idx = _pick(cifar.test_labels, test_per_class, g)
    train_clips = _clips(cifar.train_images[train_idx], frames, size, noise, g)
    test_clips = _clips(cifar.test_images[test_idx], frames, size, noise, g)
    head_frames = _clips(cifar.train_images[head_idx], 1, size, noise, g)  # clips of one frame
    train_labels, test_labels = cifar.train_labels[train_idx], cifar.test_labels[test_idx]

    from contrastkit.nn.experts import pooled_clip_features

    encoder = _encoder(image_teacher, seed)

    def one_frame(clips: Tensor) -> Tensor:  # the encoder's features of single-frame clips
        return pooled_clip_features(encoder, clips, cifar.mean, cifar.std, segments=1)

    head = train_teacher_head(one_frame(head_frames), cifar.train_labels[head_idx], classes, seed)

    def image_features(clips: Tensor) -> tuple[Tensor, Tensor]:
        z = one_frame(clips[:, :, frames // 2 : frames // 2 + 1])
        with torch.no_grad():
            return head[0](z), head(z)

    train_image, _ = image_features(train_clips)
    test_image, test_logits = image_features(test_clips)
    audio_protos = nn.functional.normalize(torch.randn(classes + 1, TEACHER_DIM, generator=g), dim=1) * 3
    teachers = {
        split: {"audio": audio_teacher(labels, audio_protos, missing_audio, g), "image": image}
        for split, labels, image in (("train", train_labels, train_image), ("test", test_labels, test_image))
    }
    teacher_top1 = float((test_logits.argmax(1) == test_labels).float().mean() * 100)
    return DistillSet(
        "ccl_cifar",
        train_clips,
        train_labels,
        teachers["train"],
        test_clips,
        test_labels,
        teachers["test"],
        cifar.classes,
        f"CIFAR-10 images drifting over backgrounds ({frames} frames of {size}px, {train_per_class} train / "
        f"{test_per_class} test clips per class); image teacher: {image_teacher.format(seed=seed)} + a head trained "
        f"on {head_images} labelled frames (test top-1 {teacher_top1:.1f}); audio teacher uninformative for classes "
        f"5-9, {missing_audio:.0%} silent; seed {seed}",
        GAP_CLASSES,
        {"image": teacher_top1},
    )


class CifarDistillData(DistillData):
    """Options of ``ccl_cifar``.

    Attributes:
        image_teacher: the image teacher's encoder: ``random`` (a randomly initialised
            ConvNetSmall), ``zoo:NAME`` (``{seed}`` is the run's seed), ``run:RUN_DIR`` or a file.
        train_per_class: labelled training clips per class.
        head_images: labelled frames the teacher's head is trained on.
    """

    image_teacher: str = "random"
    train_per_class: int = 20
    head_images: int = 5000


@register_dataset(
    "ccl_cifar",
    task=DISTILL_TASK,
    settings=CifarDistillData,
    summary="CIFAR-10 clips + an image teacher on a (zoo) encoder and an audio teacher with a semantic gap",
)
def _ccl_cifar_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> DistillSet:
    return ccl_cifar(
        root,
        seed,
        image_teacher=settings.image_teacher,
        train_per_class=settings.train_per_class,
        head_images=settings.head_images,
    )
