"""Motion phases with CIFAR-10 objects (``motion_phases_cifar``): the long/short-view videos of
``motion_phases`` with the static appearance class a CIFAR-10 image, so a clip encoder inflated
from an encoder pretrained on CIFAR-10 (a zoo expert) can see it.

Each video (64 frames of 32x32 by default): one CIFAR-10 image of the class (training split for
training videos, test split for test videos) in a disc of radius 0.3 x the frame side over a
smooth random background, moved by 4 contiguous **motion phases** of at least 10 frames (right,
left, up or down at 1 px per frame, wrapping; consecutive phases differ; drawn apart from the
class). As in ``motion_phases``, frame ``t``'s phase label is the move between frames ``t - 1``
and ``t``. Files: ``<root>/{train,test}/<class>/<i>.mp4``, ``labels.csv`` (file, class) and
``frame_labels.json`` (file -> the phase of every frame; 0 right, 1 left, 2 up, 3 down).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from contrastkit.data.images import require_cifar10
from contrastkit.data.motion_phases import PHASES, VELOCITY, _phase_sequence, phase_lengths, read_frame_labels
from contrastkit.data.moving_objects import (
    _background,
    _write_mp4,
    balanced_cifar_draws,
    generated_before,
    moving_object_frames,
    seal_generated,
)
from contrastkit.data.video_folders import ClipData
from contrastkit.registry import register_dataset

__all__ = ["generate_motion_phases_cifar", "phase_object_frames"]

_VERSION = 1
RADIUS = 0.3  # of the frame side
COMPASS = {0: 0, 1: 4, 2: 2, 3: 6}  # phase -> moving_object_frames direction (E, W, N, S)


def phase_object_frames(
    texture: Tensor, background: Tensor, phase_labels: Tensor, start: tuple[float, float], radius: float
) -> Tensor:
    """``uint8 [T, H, W, 3]``: ``texture`` (``[3, h, w]`` in [0, 1]) in a disc of ``radius`` at
    ``start`` in frame 0, moved 1 px between frames ``t - 1`` and ``t`` in the direction of
    ``phase_labels[t]`` (``[T]``, indices into ``PHASES``; frame 0's label is not a move)."""
    changes = [0] + [t for t in range(1, len(phase_labels)) if phase_labels[t] != phase_labels[t - 1]]
    bounds = [*changes, len(phase_labels)]
    x, y = start
    parts = []
    for first, end in zip(bounds, bounds[1:]):
        phase = int(phase_labels[first])
        dy, dx = VELOCITY[phase]
        if first > 0:  # the move into the phase's first frame is the phase's own
            x, y = x + dx, y + dy
        parts.append(moving_object_frames(COMPASS[phase], texture, background, end - first, (x, y), 1.0, radius))
        x, y = x + dx * (end - first - 1), y + dy * (end - first - 1)
    return torch.cat(parts)


def generate_motion_phases_cifar(
    root: str | os.PathLike[str],
    cifar: Any,
    *,
    train: int = 1000,
    test: int = 400,
    frames: int = 64,
    phases: int = 4,
    min_phase: int = 10,
    seed: int = 0,
) -> Path:
    """Write (or reuse) the videos under ``root`` from ``cifar`` (``ImageSplits``); returns ``root``."""
    folder = Path(root)
    size = cifar.image_size
    settings = {"version": _VERSION, "train": train, "test": test, "frames": frames}
    settings.update({"phases": phases, "min_phase": min_phase, "seed": seed})
    if generated_before(folder, settings):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    rows, frame_labels = [], {}
    for split, i, label, texture in balanced_cifar_draws(cifar, train, test, g):
        lengths = phase_lengths(frames, phases, min_phase, g)
        sequence = _phase_sequence(phases, g)
        labels = torch.cat([torch.full((n,), d) for n, d in zip(lengths, sequence, strict=True)])
        start = (float(torch.rand(1, generator=g)) * size, float(torch.rand(1, generator=g)) * size)
        clip = phase_object_frames(texture, _background(size, g), labels, start, RADIUS * size)
        name = f"{split}/{cifar.classes[label]}/{i:05d}.mp4"
        _write_mp4(folder / name, clip)
        rows.append((name, cifar.classes[label]))
        frame_labels[name] = labels.tolist()
    (folder / "frame_labels.json").write_text(json.dumps(frame_labels))
    seal_generated(folder, ["file", "class"], rows, settings)
    return folder


@register_dataset(
    "motion_phases_cifar",
    task="clips",
    settings=ClipData,
    summary="a CIFAR-10 object (the class) moved by 4 motion phases, per-frame labels (needs the CIFAR-10 copy)",
)
def _motion_phases_cifar_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> Any:
    from contrastkit.data.video_folders import cache_root, load_video_folder

    cifar = require_cifar10(root or settings.root, "motion_phases_cifar draws its objects from CIFAR-10")
    train, test, frames = settings.train_subset or 1000, settings.test_subset or 400, settings.video_frames
    minimum = min(10, frames // 5)
    folder = cache_root(settings.cache_dir) / f"motion_phases_cifar-{train}-{test}-{frames}f-seed{seed}"
    generate_motion_phases_cifar(folder, cifar, train=train, test=test, frames=frames, min_phase=minimum, seed=seed)
    videos = load_video_folder(folder)
    videos.frame_labels = read_frame_labels(folder)
    videos.frame_classes = PHASES
    videos.source = (
        f"generated motion-phase videos of CIFAR-10 objects ({train} train / {test} test, {frames} frames, "
        f"10 classes, 4 phases of >= {minimum} frames with per-frame labels, seed {seed}) in {folder}"
    )
    return videos
