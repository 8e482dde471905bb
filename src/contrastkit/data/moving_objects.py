"""Seeded moving-object videos written as real mp4 files (``docs/methods/videomoco.md`` protocol).

Each video: a textured disc moving in one of 8 compass directions (the class) over a static,
smooth random background, from a random start at a random speed of 1-2 pixels per frame,
wrapping around at the borders. One frame says nothing about the class; two do. With a
CIFAR-10 copy the disc's texture is a real CIFAR-10 image (its class is kept as a second label,
``appearance``); without one it is seeded noise.

The files are encoded with libx264 through PyAV (``yuv420p``, near-lossless) into
``<root>/train/<direction>/<i>.mp4`` and ``<root>/test/<direction>/<i>.mp4`` — the class
sub-folder layout any user folder of videos has — plus ``labels.csv`` (file, direction,
appearance). ``generate_moving_objects`` writes once and reuses a complete folder.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from contrastkit._files import temporary_sibling
from contrastkit.data.video_folders import ClipData
from contrastkit.registry import register_dataset

__all__ = ["DIRECTIONS", "generate_moving_objects", "moving_object_frames"]

DIRECTIONS = ("E", "NE", "N", "NW", "W", "SW", "S", "SE")
_VERSION = 1


def _background(size: int, g: torch.Generator) -> Tensor:
    """A smooth random RGB background ``[3, size, size]`` in [0.2, 0.8]."""
    coarse = torch.rand(1, 3, 4, 4, generator=g)
    smooth = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0]
    return (0.2 + 0.6 * smooth).clamp(0, 1)


def _texture(textures: tuple[Tensor, Tensor] | None, g: torch.Generator) -> tuple[Tensor, int]:
    """A disc texture in [0, 1] and its appearance label (-1 for seeded noise)."""
    if textures is None:
        return torch.rand(3, 8, 8, generator=g), -1
    pick = int(torch.randint(len(textures[1]), (1,), generator=g))
    return textures[0][pick].float() / 255, int(textures[1][pick])


def moving_object_frames(
    direction: int,
    texture: Tensor,
    background: Tensor,
    frames: int,
    start: tuple[float, float],
    speed: float,
    radius: float,
) -> Tensor:
    """``uint8 [frames, H, W, 3]``: ``texture`` (``[3, h, w]`` in [0, 1]) in a disc of ``radius``
    moving ``speed`` px/frame in compass ``direction`` (0 = east, counter-clockwise by 45 deg)."""
    size = background.shape[-1]
    angle = direction * math.pi / 4
    dx, dy = speed * math.cos(angle), -speed * math.sin(angle)  # image rows grow downwards
    side = texture.shape[-1]
    axis = torch.arange(size, dtype=torch.float32)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    out = []
    for t in range(frames):
        cx, cy = (start[0] + dx * t) % size, (start[1] + dy * t) % size
        # wrapped offsets from the centre, so the disc re-enters on the other side
        ox = (xs - cx + size / 2) % size - size / 2
        oy = (ys - cy + size / 2) % size - size / 2
        inside = ox**2 + oy**2 <= radius**2
        u = ((ox / (2 * radius) + 0.5) * (side - 1)).round().clamp(0, side - 1).long()
        v = ((oy / (2 * radius) + 0.5) * (side - 1)).round().clamp(0, side - 1).long()
        frame = torch.where(inside, texture[:, v, u], background)
        out.append(frame)
    return (torch.stack(out).permute(0, 2, 3, 1) * 255).round().to(torch.uint8)


def generated_before(folder: Path, settings: dict[str, Any]) -> bool:
    """Whether ``folder`` holds a complete generated set written with ``settings`` (its
    ``settings.json`` is written last, by ``seal_generated``)."""
    marker = folder / "settings.json"
    return marker.is_file() and json.loads(marker.read_text()) == settings


def seal_generated(folder: Path, header: list[str], rows: list[tuple[Any, ...]], settings: dict[str, Any]) -> None:
    """Finish a generated set: ``labels.csv`` (``header`` then ``rows``), then the ``settings.json``
    that marks the folder complete."""
    with open(folder / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    (folder / "settings.json").write_text(json.dumps(settings))


def balanced_cifar_draws(
    cifar: Any, train: int, test: int, g: torch.Generator
) -> Iterator[tuple[str, int, int, Tensor]]:
    """``(split, i, class, image in [0, 1])`` for ``train`` then ``test`` videos of a generated set:
    classes cycle, each video one image of its class drawn from its split of ``cifar`` (``ImageSplits``).
    The caller draws the rest of video ``i`` from ``g`` before the next item."""
    for split, count, images, labels in (
        ("train", train, cifar.train_images, cifar.train_labels),
        ("test", test, cifar.test_images, cifar.test_labels),
    ):
        pools = [torch.nonzero(labels == c).flatten() for c in range(len(cifar.classes))]
        for i in range(count):
            label = i % len(cifar.classes)
            pick = pools[label][int(torch.randint(len(pools[label]), (1,), generator=g))]
            yield split, i, label, images[pick].float() / 255


def _write_mp4(path: Path, frames: Tensor, fps: int = 25) -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    with av.open(str(tmp), mode="w", format="mp4") as container:  # mp4 whatever the name says
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = int(frames.shape[1]), int(frames.shape[2])
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "preset": "veryfast", "g": "16"}
        for array in frames.numpy():
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)


def generate_moving_objects(
    root: str | os.PathLike[str],
    *,
    train: int = 2000,
    test: int = 400,
    frames: int = 32,
    size: int = 32,
    seed: int = 0,
    textures: tuple[Tensor, Tensor] | None = None,
    texture_source: str = "seeded noise",
    appearance_pool: int | None = None,
) -> Path:
    """Write (or reuse) the moving-object video set under ``root``; returns ``root``.

    Args:
        root: output folder (a complete folder with the same settings is reused as it is).
        train, test: videos per split (classes balanced, directions cycling).
        frames, size: frames per video and frame side length (even, for yuv420p).
        seed: everything random (starts, speeds, backgrounds, texture picks) follows it.
        textures: optional ``(images uint8 [N, 3, h, w], labels [N])`` (CIFAR-10) for the discs.
        texture_source: how the report names the textures.
        appearance_pool: draw every video's background and texture from ``appearance_pool`` of
            each (shared by train and test) instead of a fresh pair per video, so that
            appearance does not identify a video and instance discrimination has to look at
            the motion. None = a fresh pair per video (the first protocol's wording).
    """
    if size % 2:
        raise ValueError(f"size must be even for yuv420p, got {size}")
    folder = Path(root)
    settings = {
        "version": _VERSION,
        "train": train,
        "test": test,
        "frames": frames,
        "size": size,
        "seed": seed,
        "textures": texture_source,
        "appearance_pool": appearance_pool,
    }
    if not appearance_pool:
        del settings["appearance_pool"]  # folders written before the option existed stay valid
    if generated_before(folder, settings):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    pool = None
    if appearance_pool:
        pool = [(*_texture(textures, g), _background(size, g)) for _ in range(appearance_pool)]
    rows = []
    for split, count in (("train", train), ("test", test)):
        for i in range(count):
            direction = i % len(DIRECTIONS)
            if pool is not None:
                texture, appearance, background = pool[int(torch.randint(len(pool), (1,), generator=g))]
            else:
                texture, appearance = _texture(textures, g)
            start = (float(torch.rand(1, generator=g)) * size, float(torch.rand(1, generator=g)) * size)
            speed = 1.0 + float(torch.rand(1, generator=g))
            if pool is None:  # drawn here, after the motion, as in the first version: the same videos
                background = _background(size, g)
            clip = moving_object_frames(direction, texture, background, frames, start, speed, size / 5)
            name = f"{split}/{DIRECTIONS[direction]}/{i:05d}.mp4"
            _write_mp4(folder / name, clip)
            rows.append((name, DIRECTIONS[direction], appearance))
    seal_generated(folder, ["file", "direction", "appearance"], rows, settings)
    return folder


def _moving_objects(settings: Any, root: str | os.PathLike[str] | None, seed: int, pool: int | None) -> Any:
    """Generated once into the cache (``data.cache_dir`` / ``$CONTRASTKIT_CACHE``); CIFAR-10 textures
    when the data root holds CIFAR-10. ``data.train_subset`` / ``test_subset`` set the counts."""
    from contrastkit.data.images import data_root, require_cifar10
    from contrastkit.data.video_folders import cache_root, load_video_folder

    base = data_root(root or settings.root)
    textures, source = None, "seeded noise"
    if base is not None:
        why = f"moving objects take their textures from CIFAR-10 under {base} (leave --data-root out for noise)"
        cifar = require_cifar10(base, why)
        textures, source = (cifar.train_images, cifar.train_labels), "CIFAR-10 training images"
    train, test = settings.train_subset or 2000, settings.test_subset or 400
    tag = ("cifar10" if textures is not None else "noise") + (f"-pool{pool}" if pool else "")
    name = f"moving_objects-{train}-{test}-{settings.video_frames}f-{settings.image_size}px-seed{seed}-{tag}"
    folder = cache_root(settings.cache_dir) / name
    generate_moving_objects(
        folder,
        train=train,
        test=test,
        frames=settings.video_frames,
        size=settings.image_size,
        seed=seed,
        textures=textures,
        texture_source=source,
        appearance_pool=pool,
    )
    videos = load_video_folder(folder)
    shared = f", appearance from a pool of {pool} backgrounds and {pool} textures" if pool else ""
    videos.source = (
        f"generated moving-object videos ({train} train / {test} test, {settings.video_frames} frames of "
        f"{settings.image_size}px, 8 directions, textures: {source}{shared}, seed {seed}) in {folder}"
    )
    return videos


@register_dataset(
    "moving_objects",
    task="clips",
    settings=ClipData,
    summary="generated moving-object mp4s (docs/methods/videomoco.md; no download)",
)
def _moving_objects_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> Any:
    return _moving_objects(settings, root, seed, None)


@register_dataset(
    "moving_objects_shared", task="clips", settings=ClipData, summary="the same with 8 shared backgrounds and textures"
)
def _moving_objects_shared_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> Any:
    return _moving_objects(settings, root, seed, 8)
