"""VCLR's global-context videos with CIFAR-10 objects (``global_context_cifar``): the class is the
object's CIFAR-10 class, so a frame encoder pretrained on CIFAR-10 (a zoo expert) can see it, as
the paper's ImageNet MoCo v2 initialisation sees Kinetics' objects (Kuang et al., ICCV 2021).

Each video: ``frames`` frames in three scenes with hard cuts, each scene its own high-contrast
stripe background (independent of the class, as in ``global_context``). One CIFAR-10 image of the
class (training split for training videos, test split for test videos) sits in a disc of radius
0.4 x the frame side and drifts slowly (0.5 px per frame in a random compass direction, wrapping)
across all three scenes; the brightness ramp of ``global_context`` makes the natural order
learnable. Written as mp4 under ``<cache>/global_context_cifar-.../{train,test}/<class>/``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from contrastkit.data.global_context import _stripes
from contrastkit.data.images import require_cifar10
from contrastkit.data.moving_objects import (
    DIRECTIONS,
    _write_mp4,
    balanced_cifar_draws,
    generated_before,
    moving_object_frames,
    seal_generated,
)
from contrastkit.data.video_folders import ClipData
from contrastkit.registry import register_dataset

__all__ = ["cifar_context_frames", "generate_global_context_cifar"]

_VERSION = 1
RADIUS = 0.4  # of the frame side
SPEED = 0.5  # px per frame


def cifar_context_frames(
    texture: Tensor, backgrounds: list[Tensor], frames: int, start: tuple[float, float], direction: int
) -> Tensor:
    """``uint8 [frames, H, W, 3]``: ``texture`` (``[3, h, w]`` in [0, 1]) in a drifting disc over one
    background per scene (the last scene takes the remainder), brightness ramped by +30%."""
    size = backgrounds[0].shape[-1]
    scene_len = frames // len(backgrounds)
    dx, dy = SPEED * math.cos(direction * math.pi / 4), -SPEED * math.sin(direction * math.pi / 4)
    parts = []
    for s, background in enumerate(backgrounds):
        first = s * scene_len
        length = frames - first if s == len(backgrounds) - 1 else scene_len
        here = (start[0] + dx * first, start[1] + dy * first)
        parts.append(moving_object_frames(direction, texture, background, length, here, SPEED, RADIUS * size))
    video = torch.cat(parts).float()
    ramp = 0.77 + 0.23 * torch.arange(frames).float() / max(1, frames - 1)
    return (video * ramp[:, None, None, None]).clamp(0, 255).round().to(torch.uint8)


def generate_global_context_cifar(
    root: str | os.PathLike[str],
    cifar: Any,
    *,
    train: int = 1600,
    test: int = 400,
    frames: int = 48,
    scenes: int = 3,
    seed: int = 0,
) -> Path:
    """Write (or reuse) the videos under ``root`` from ``cifar`` (``ImageSplits``); returns ``root``.
    Classes are balanced (cycling); a complete folder with the same settings is reused."""
    folder = Path(root)
    size = cifar.image_size
    settings = {"version": _VERSION, "train": train, "test": test, "frames": frames, "scenes": scenes, "seed": seed}
    if generated_before(folder, settings):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    rows = []
    for split, i, label, texture in balanced_cifar_draws(cifar, train, test, g):
        backgrounds = [_stripes(size, g) for _ in range(scenes)]
        start = (float(torch.rand(1, generator=g)) * size, float(torch.rand(1, generator=g)) * size)
        direction = int(torch.randint(len(DIRECTIONS), (1,), generator=g))
        clip = cifar_context_frames(texture, backgrounds, frames, start, direction)
        name = f"{split}/{cifar.classes[label]}/{i:05d}.mp4"
        _write_mp4(folder / name, clip)
        rows.append((name, cifar.classes[label]))
    seal_generated(folder, ["file", "class"], rows, settings)
    return folder


@register_dataset(
    "global_context_cifar",
    task="clips",
    settings=ClipData,
    summary="3-scene mp4s whose class is a drifting CIFAR-10 object (needs the CIFAR-10 copy)",
)
def _global_context_cifar_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> Any:
    from contrastkit.data.video_folders import cache_root, load_video_folder

    cifar = require_cifar10(root, "global_context_cifar draws its objects from CIFAR-10")
    train, test, frames = settings.train_subset or 1600, settings.test_subset or 400, settings.video_frames
    name = f"global_context_cifar-{train}-{test}-{frames}f-seed{seed}"
    folder = generate_global_context_cifar(
        cache_root(settings.cache_dir) / name, cifar, train=train, test=test, frames=frames, seed=seed
    )
    videos = load_video_folder(folder)
    videos.source = (
        f"generated global-context videos with CIFAR-10 objects ({train} train / {test} test, {frames} frames, "
        f"3 scenes, 10 classes, brightness ramp, seed {seed}) in {folder}"
    )
    return videos
