"""Seeded "global context" videos for VCLR (``docs/methods/vclr.md``), written as real mp4 files.

Each video: ``frames`` frames (48) in three scenes of equal length with hard cuts between them.
The class (8) is a small static glyph — one of 4 shapes in one of 2 colours — blended at low
contrast into the frame and drifting slowly (at most 1 pixel per frame). Every scene has its own
high-contrast background of stripes (random orientation, frequency and colours) that never
depends on the class: the "temporal content change" a frame- or scene-level method latches onto.
A global brightness ramp (+30% from the first frame to the last) makes the natural order of a
video learnable; ``ramp=False`` removes it, so the order task must stay at chance (25%).

Written with Video I's libx264 writer into ``<root>/{train,test}/<class>/<i>.mp4`` plus
``labels.csv``; ``generate_global_context`` writes once and reuses a complete folder.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from pydantic import Field
from torch import Tensor

from contrastkit.data.moving_objects import _write_mp4, generated_before, seal_generated
from contrastkit.data.video_folders import ClipData
from contrastkit.registry import register_dataset

__all__ = ["GLYPHS", "generate_global_context", "global_context_frames"]

SHAPES = ("square", "plus", "ring", "cross")
COLOURS = {"red": (1.0, 0.15, 0.1), "blue": (0.1, 0.25, 1.0)}
GLYPHS = tuple(f"{shape}-{colour}" for colour in COLOURS for shape in SHAPES)
_VERSION = 1


def _glyph_mask(shape: str, size: int = 9) -> Tensor:
    """``[size, size]`` float mask of a glyph."""
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    c = size // 2
    if shape == "square":
        return ((y >= 1) & (y < size - 1) & (x >= 1) & (x < size - 1)).float()
    if shape == "plus":
        return (((y - c).abs() <= 1) | ((x - c).abs() <= 1)).float()
    if shape == "ring":
        r = ((y - c) ** 2 + (x - c) ** 2).float().sqrt()
        return ((r >= c - 2) & (r <= c)).float()
    if shape == "cross":
        return (((y - x).abs() <= 1) | ((y + x - size + 1).abs() <= 1)).float()
    raise ValueError(f"unknown glyph shape {shape!r}")


def _stripes(size: int, g: torch.Generator) -> Tensor:
    """A high-contrast stripe background ``[3, size, size]`` in [0, 1]."""
    angle = float(torch.rand(1, generator=g)) * math.pi
    period = 4 + float(torch.rand(1, generator=g)) * 8
    phase = float(torch.rand(1, generator=g)) * 2 * math.pi
    y, x = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    wave = 0.5 + 0.5 * torch.sin(2 * math.pi * (x * math.cos(angle) + y * math.sin(angle)) / period + phase)
    a, b = torch.rand(3, 1, 1, generator=g), torch.rand(3, 1, 1, generator=g)
    return a * wave + b * (1 - wave)


def global_context_frames(
    glyph: int,
    backgrounds: list[Tensor],
    frames: int,
    start: tuple[int, int],
    drift: tuple[float, float],
    *,
    ramp: bool = True,
    contrast: float = 0.35,
) -> Tensor:
    """``uint8 [frames, H, W, 3]`` of one video.

    Args:
        glyph: class index into ``GLYPHS``.
        backgrounds: one ``[3, H, W]`` background per scene (scenes of ``frames // len`` frames,
            the last taking the remainder).
        frames: video length.
        start: the glyph's top-left corner in the first frame.
        drift: its velocity in pixels per frame (each component within [-1, 1]).
        ramp: multiply frame ``t`` by ``0.77 + 0.23 t / (frames - 1)`` (+30% first to last).
        contrast: the glyph's blend weight over the background.
    """
    shape, colour = GLYPHS[glyph].split("-")
    mask = _glyph_mask(shape)
    k = mask.shape[0]
    size = backgrounds[0].shape[-1]
    tint = torch.tensor(COLOURS[colour])[:, None, None]
    scene_len = frames // len(backgrounds)
    out = torch.empty(frames, 3, size, size)
    for t in range(frames):
        frame = backgrounds[min(t // scene_len, len(backgrounds) - 1)].clone()
        top = int(round(start[0] + drift[0] * t)) % (size - k)
        left = int(round(start[1] + drift[1] * t)) % (size - k)
        patch = frame[:, top : top + k, left : left + k]
        frame[:, top : top + k, left : left + k] = patch * (1 - contrast * mask) + tint * contrast * mask
        if ramp:
            frame = frame * (0.77 + 0.23 * t / max(1, frames - 1))
        out[t] = frame
    return (out.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def generate_global_context(
    root: str | os.PathLike[str],
    *,
    train: int = 1600,
    test: int = 400,
    frames: int = 48,
    size: int = 32,
    scenes: int = 3,
    ramp: bool = True,
    seed: int = 0,
    contrast: float = 0.35,
) -> Path:
    """Write (or reuse) the global-context video set under ``root``; returns ``root``.

    Args:
        root: output folder (a complete folder with the same settings is reused as it is).
        train, test: videos per split (classes balanced, cycling).
        frames, size: frames per video, frame side (even, for yuv420p).
        scenes: scenes per video (hard cuts between them).
        ramp: the brightness ramp that makes the natural order learnable.
        seed: everything random follows it.
        contrast: the glyph's blend weight (``global_context_frames``).
    """
    if size % 2:
        raise ValueError(f"size must be even for yuv420p, got {size}")
    if frames < 2 * scenes:
        raise ValueError(f"{frames} frames cannot hold {scenes} scenes of at least 2 frames")
    folder = Path(root)
    settings: dict[str, Any] = {"version": _VERSION, "train": train, "test": test, "frames": frames, "size": size}
    settings.update({"scenes": scenes, "ramp": ramp, "seed": seed})
    if contrast != 0.35:  # folders written before the option existed stay valid
        settings["contrast"] = contrast
    if generated_before(folder, settings):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    rows = []
    for split, count in (("train", train), ("test", test)):
        for i in range(count):
            glyph = i % len(GLYPHS)
            backgrounds = [_stripes(size, g) for _ in range(scenes)]
            start = (int(torch.randint(size - 9, (1,), generator=g)), int(torch.randint(size - 9, (1,), generator=g)))
            drift = tuple(float(v) for v in (torch.rand(2, generator=g) * 2 - 1) * 0.5)
            clip = global_context_frames(
                glyph,
                backgrounds,
                frames,
                start,
                drift,  # type: ignore[arg-type]
                ramp=ramp,
                contrast=contrast,
            )
            name = f"{split}/{GLYPHS[glyph]}/{i:05d}.mp4"
            _write_mp4(folder / name, clip)
            rows.append((name, GLYPHS[glyph]))
    seal_generated(folder, ["file", "glyph"], rows, settings)
    return folder


def _global_context(settings: Any, seed: int, ramp: bool) -> Any:
    from contrastkit.data.video_folders import cache_root, load_video_folder

    train, test = settings.train_subset or 1600, settings.test_subset or 400
    frames, size, contrast = settings.video_frames, settings.image_size, settings.glyph_contrast
    name = f"global_context-{train}-{test}-{frames}f-{size}px-seed{seed}" + ("" if ramp else "-noramp")
    name += f"-contrast{contrast:g}" if contrast != 0.35 else ""
    folder = cache_root(settings.cache_dir) / name
    generate_global_context(
        folder, train=train, test=test, frames=frames, size=size, ramp=ramp, seed=seed, contrast=contrast
    )
    videos = load_video_folder(folder)
    videos.source = (
        f"generated global-context videos ({train} train / {test} test, {frames} frames of {size}px, 3 scenes, "
        f"8 glyph classes at contrast {contrast:g}, brightness ramp {'on' if ramp else 'off'}, seed {seed}) in {folder}"
    )
    return videos


class GlobalContextData(ClipData):
    """``glyph_contrast``: how far the class glyph stands out of its scene (1 = fully)."""

    glyph_contrast: float = Field(0.35, gt=0, le=1)


@register_dataset(
    "global_context",
    task="clips",
    settings=GlobalContextData,
    summary="generated glyph + 3-scene mp4s (docs/methods/vclr.md; no download)",
    reads_root=False,
)
def _global_context_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> Any:
    return _global_context(settings, seed, ramp=True)


@register_dataset(
    "global_context_noramp",
    task="clips",
    settings=GlobalContextData,
    summary="the same without the brightness ramp (order at chance)",
    reads_root=False,
)
def _global_context_noramp_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> Any:
    return _global_context(settings, seed, ramp=False)
