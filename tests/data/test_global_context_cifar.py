"""VCLR's global-context videos with CIFAR-10 objects: the object (the class) stays through three
scenes with cuts; the scenes ignore the class."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("av")

from contrastkit.data.global_context_cifar import (  # noqa: E402
    RADIUS,
    cifar_context_frames,
    generate_global_context_cifar,
)
from contrastkit.data.video_folders import decode_videos, load_video_folder  # noqa: E402

CLASSES = ("apple", "bear", "car")


def _cifar(n: int = 6):
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(n, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    labels = torch.arange(n) % len(CLASSES)
    return SimpleNamespace(
        image_size=32, classes=CLASSES, train_images=images, train_labels=labels, test_images=images, test_labels=labels
    )


def test_the_object_stays_through_the_cuts_and_the_scenes_ignore_it():
    g = torch.Generator().manual_seed(1)
    backgrounds = [torch.rand(3, 32, 32, generator=g) for _ in range(3)]
    texture_a, texture_b = torch.full((3, 32, 32), 0.9), torch.full((3, 32, 32), 0.2)  # two solid objects
    a = cifar_context_frames(texture_a, backgrounds, 12, (16.0, 16.0), 0).float()
    b = cifar_context_frames(texture_b, backgrounds, 12, (16.0, 16.0), 0).float()
    assert a.shape == (12, 32, 32, 3)
    # another object changes the disc and nothing else
    differs = (a - b).abs().sum(-1) > 0
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    far = ((yy - 16) ** 2 + (xx - 16) ** 2).sqrt() > RADIUS * 32 + 3  # well outside the first frame's disc
    assert differs[0].any() and not differs[0][far].any()
    # the background changes at the cuts (frames 3->4, 7->8) and the disc moves only 0.5 px per frame
    corner = a[:, :4, :4].mean(dim=(1, 2, 3))
    steps = (corner[1:] - corner[:-1]).abs()
    assert steps[[3, 7]].min() > 5 * steps[[0, 1, 2, 4, 5, 6, 8, 9, 10]].max()
    ramp = (0.77 + 0.23 * torch.arange(12.0) / 11)[:, None, None, None]
    centre_a, centre_b = (x[:, 12:20, 12:20] / ramp for x in (a, b))
    # the object's colour at the centre through both cuts, far from the other object's
    assert (centre_a - 0.9 * 255).abs().max() < 2 and (centre_b - 0.2 * 255).abs().max() < 2


def test_videos_are_written_by_class_and_reused(tmp_path):
    folder = generate_global_context_cifar(tmp_path, _cifar(), train=6, test=3, frames=12, seed=0)
    videos = load_video_folder(folder)
    assert videos.classes == CLASSES and len(videos.train_files) == 6 and len(videos.test_files) == 3
    decoded = decode_videos(videos.train_files, videos.train_labels, frames=12, size=32).frames
    assert decoded.shape[0] == 6 and decoded.shape[-1] == 32
    stamp = (folder / "labels.csv").stat().st_mtime_ns
    assert generate_global_context_cifar(tmp_path, _cifar(), train=6, test=3, frames=12, seed=0) == folder
    assert (folder / "labels.csv").stat().st_mtime_ns == stamp  # a complete folder is not rewritten
