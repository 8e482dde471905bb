"""Moving CIFAR-10 objects (``moving_cifar``): VideoMoCo's moving-object videos with the class in
what moves rather than where it goes, so a clip encoder inflated from an encoder pretrained on
CIFAR-10 (a zoo expert) can see it.

Each video: one CIFAR-10 image of the class (training split for training videos, test split for
test videos) in a disc of radius 0.4 x the frame side, moving 1-2 px per frame in a random
compass direction (wrapping) over a smooth random background. The direction and the background
are independent of the class. Written as mp4 under ``<cache>/moving_cifar-.../{train,test}/<class>/``,
with ``labels.csv`` (file, class, direction).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from contrastkit.data.images import require_cifar10
from contrastkit.data.moving_objects import (
    DIRECTIONS,
    _background,
    _write_mp4,
    balanced_cifar_draws,
    generated_before,
    moving_object_frames,
    seal_generated,
)
from contrastkit.data.video_folders import ClipData
from contrastkit.registry import register_dataset

__all__ = ["generate_moving_cifar"]

_VERSION = 1
RADIUS = 0.4  # of the frame side


def generate_moving_cifar(
    root: str | os.PathLike[str], cifar: Any, *, train: int = 1000, test: int = 400, frames: int = 32, seed: int = 0
) -> Path:
    """Write (or reuse) the videos under ``root`` from ``cifar`` (``ImageSplits``); returns ``root``.
    Classes are balanced (cycling); a complete folder with the same settings is reused."""
    folder = Path(root)
    size = cifar.image_size
    settings = {"version": _VERSION, "train": train, "test": test, "frames": frames, "seed": seed}
    if generated_before(folder, settings):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    rows = []
    for split, i, label, texture in balanced_cifar_draws(cifar, train, test, g):
        direction = int(torch.randint(len(DIRECTIONS), (1,), generator=g))
        start = (float(torch.rand(1, generator=g)) * size, float(torch.rand(1, generator=g)) * size)
        speed = 1.0 + float(torch.rand(1, generator=g))
        background = _background(size, g)
        clip = moving_object_frames(direction, texture, background, frames, start, speed, RADIUS * size)
        name = f"{split}/{cifar.classes[label]}/{i:05d}.mp4"
        _write_mp4(folder / name, clip)
        rows.append((name, cifar.classes[label], DIRECTIONS[direction]))
    seal_generated(folder, ["file", "class", "direction"], rows, settings)
    return folder


@register_dataset(
    "moving_cifar",
    task="clips",
    settings=ClipData,
    summary="mp4s of a CIFAR-10 object (the class) moving in a random direction (needs the CIFAR-10 copy)",
)
def _moving_cifar_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> Any:
    from contrastkit.data.video_folders import cache_root, load_video_folder

    cifar = require_cifar10(root or settings.root, "moving_cifar draws its objects from CIFAR-10")
    train, test, frames = settings.train_subset or 1000, settings.test_subset or 400, settings.video_frames
    name = f"moving_cifar-{train}-{test}-{frames}f-seed{seed}"
    folder = generate_moving_cifar(
        cache_root(settings.cache_dir) / name, cifar, train=train, test=test, frames=frames, seed=seed
    )
    videos = load_video_folder(folder)
    videos.source = (
        f"generated videos of moving CIFAR-10 objects ({train} train / {test} test, {frames} frames, "
        f"10 classes, random direction and background, seed {seed}) in {folder}"
    )
    return videos
