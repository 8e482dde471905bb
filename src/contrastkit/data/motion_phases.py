"""Seeded appearance + motion-phase videos for long/short views (``docs/methods/longshort.md``), written as
real mp4 files with a label per frame.

Each video (64 frames of 32x32 by default): an object of a static **appearance class** (filled
square, ring, plus sign, diagonal-stripe square, each with its own background tint) that never
changes within the video, and **motion phases**: the video is cut into 4 contiguous phases of
at least 10 frames, each moving the object right, left, up or down at 1 pixel per frame
(wrapping around the borders), consecutive phases different, the sequence drawn independently
of the class. Per-video nuisances (object size 5-7 px, a tint offset, the noise seed) make
instance discrimination possible without motion. Background noise std 0.05.

Files: ``<root>/{train,test}/<appearance>/<i>.mp4``; ``labels.csv`` (file, appearance) and
``frame_labels.json`` (file -> the phase label of every frame; 0 right, 1 left, 2 up, 3 down).
``generate_motion_phases`` writes once and reuses a complete folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from contrastkit.data.moving_objects import _write_mp4, generated_before, seal_generated
from contrastkit.data.video_folders import ClipData
from contrastkit.registry import register_dataset

__all__ = ["APPEARANCES", "PHASES", "generate_motion_phases", "phase_lengths", "phase_video"]

APPEARANCES = ("square", "ring", "plus", "stripes")
PHASES = ("right", "left", "up", "down")
VELOCITY = {0: (0, 1), 1: (0, -1), 2: (-1, 0), 3: (1, 0)}  # (dy, dx) per frame
TINTS = ((0.55, 0.35, 0.35), (0.35, 0.55, 0.35), (0.35, 0.35, 0.55), (0.5, 0.5, 0.3))
_VERSION = 1


def _object_mask(appearance: int, size: int) -> Tensor:
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    c = (size - 1) / 2
    if appearance == 0:
        return torch.ones(size, size)
    if appearance == 1:
        r = ((y - c) ** 2 + (x - c) ** 2).float().sqrt()
        return ((r >= c - 1.2) & (r <= c + 0.5)).float()
    if appearance == 2:
        return (((y - c).abs() <= 0.6) | ((x - c).abs() <= 0.6)).float()
    if appearance == 3:
        return ((x + y) % 3 == 0).float()
    raise ValueError(f"appearance must lie in [0, {len(APPEARANCES)}), got {appearance}")


def phase_lengths(frames: int, phases: int, minimum: int, g: torch.Generator) -> list[int]:
    """``phases`` lengths of at least ``minimum`` frames summing to ``frames``."""
    spare = frames - phases * minimum
    if spare < 0:
        raise ValueError(f"{frames} frames cannot hold {phases} phases of at least {minimum} frames")
    cuts = sorted(torch.randint(spare + 1, (phases - 1,), generator=g).tolist())
    bounds = [0, *cuts, spare]
    return [minimum + bounds[i + 1] - bounds[i] for i in range(phases)]


def _phase_sequence(phases: int, g: torch.Generator) -> list[int]:
    sequence = [int(torch.randint(len(PHASES), (1,), generator=g))]
    while len(sequence) < phases:
        step = int(torch.randint(len(PHASES) - 1, (1,), generator=g))
        sequence.append(step + (step >= sequence[-1]))  # any direction but the previous one
    return sequence


def phase_video(
    appearance: int,
    phase_labels: Tensor,
    *,
    image_size: int = 32,
    object_size: int = 6,
    tint_offset: Tensor | None = None,
    start: tuple[int, int] = (10, 10),
    noise: float = 0.05,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Frames ``uint8 [T, H, W, 3]`` and the object's top-left corner ``[T, 2]`` per frame.

    Args:
        appearance: index into ``APPEARANCES`` (shape and background tint).
        phase_labels: ``[T]`` direction of every frame's move (index into ``PHASES``); the
            object moves by the velocity of frame ``t``'s label between frames ``t - 1`` and ``t``.
        image_size, object_size: frame and object side in pixels.
        tint_offset: ``[3]`` added to the class tint (a per-video nuisance).
        start: the corner in frame 0.
        noise: std of the Gaussian pixel noise.
        generator: noise draws.
    """
    frames = len(phase_labels)
    tint = torch.tensor(TINTS[appearance]) + (tint_offset if tint_offset is not None else 0)
    mask = _object_mask(appearance, object_size)
    position = torch.empty(frames, 2, dtype=torch.long)
    y, x = start
    out = torch.empty(frames, 3, image_size, image_size)
    rows = torch.arange(object_size)
    for t in range(frames):
        if t > 0:
            dy, dx = VELOCITY[int(phase_labels[t])]
            y, x = (y + dy) % image_size, (x + dx) % image_size
        position[t] = torch.tensor([y, x])
        frame = tint[:, None, None].expand(3, image_size, image_size).clone()
        ys, xs = (y + rows) % image_size, (x + rows) % image_size
        patch = frame[:, ys][:, :, xs]
        frame[:, ys[:, None], xs[None, :]] = patch * (1 - mask) + mask * 0.95
        frame = frame + noise * torch.randn(frame.shape, generator=generator)
        out[t] = frame
    pixels = (out.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    return pixels, position


def generate_motion_phases(
    root: str | os.PathLike[str],
    *,
    train: int = 2000,
    test: int = 400,
    frames: int = 64,
    size: int = 32,
    phases: int = 4,
    min_phase: int = 10,
    seed: int = 0,
) -> Path:
    """Write (or reuse) the appearance + motion-phase video set under ``root``; returns ``root``."""
    if size % 2:
        raise ValueError(f"size must be even for yuv420p, got {size}")
    folder = Path(root)
    settings = {"version": _VERSION, "train": train, "test": test, "frames": frames, "size": size}
    settings.update({"phases": phases, "min_phase": min_phase, "seed": seed})
    if generated_before(folder, settings):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    rows, frame_labels = [], {}
    for split, count in (("train", train), ("test", test)):
        for i in range(count):
            appearance = i % len(APPEARANCES)
            lengths = phase_lengths(frames, phases, min_phase, g)
            sequence = _phase_sequence(phases, g)
            labels = torch.cat([torch.full((n,), d) for n, d in zip(lengths, sequence)])
            clip, _ = phase_video(
                appearance,
                labels,
                image_size=size,
                object_size=5 + int(torch.randint(3, (1,), generator=g)),
                tint_offset=(torch.rand(3, generator=g) - 0.5) * 0.2,
                start=(int(torch.randint(size, (1,), generator=g)), int(torch.randint(size, (1,), generator=g))),
                generator=g,
            )
            name = f"{split}/{APPEARANCES[appearance]}/{i:05d}.mp4"
            _write_mp4(folder / name, clip)
            rows.append((name, APPEARANCES[appearance]))
            frame_labels[name] = labels.tolist()
    (folder / "frame_labels.json").write_text(json.dumps(frame_labels))
    seal_generated(folder, ["file", "appearance"], rows, settings)
    return folder


def read_frame_labels(folder: Path) -> dict[str, list[int]]:
    """``{absolute file path: per-frame labels}`` from a folder's ``frame_labels.json``."""
    raw = json.loads((folder / "frame_labels.json").read_text())
    return {str((folder / name).resolve()): labels for name, labels in raw.items()}


@register_dataset(
    "motion_phases",
    task="clips",
    settings=ClipData,
    summary="generated appearance + 4 motion phases, per-frame labels (docs/methods/longshort.md)",
    reads_root=False,
)
def _motion_phases_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> Any:
    from contrastkit.data.video_folders import cache_root, load_video_folder

    train, test = settings.train_subset or 2000, settings.test_subset or 400
    frames, size = settings.video_frames, settings.image_size
    folder = cache_root(settings.cache_dir) / f"motion_phases-{train}-{test}-{frames}f-{size}px-seed{seed}"
    minimum = min(10, frames // 5)  # 10 at the recipe's 64 frames; shorter smoke videos keep 4 phases
    generate_motion_phases(folder, train=train, test=test, frames=frames, size=size, min_phase=minimum, seed=seed)
    videos = load_video_folder(folder)
    videos.frame_labels = read_frame_labels(folder)
    videos.frame_classes = PHASES
    videos.source = (
        f"generated appearance + motion-phase videos ({train} train / {test} test, {frames} frames of {size}px, "
        f"4 appearance classes, 4 phases of >= {minimum} frames with per-frame labels, seed {seed}) in {folder}"
    )
    return videos
