"""VideoMoCo's moving objects with the class in what moves (``moving_cifar``): each video shows one
CIFAR-10 image of its class, test videos draw from the test split, the motion ignores the class."""

from __future__ import annotations

import csv
from collections import Counter
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("av")

from contrastkit.data.moving_cifar import generate_moving_cifar  # noqa: E402
from contrastkit.data.video_folders import decode_videos, load_video_folder  # noqa: E402

CLASSES = ("dark", "light")


def _cifar():
    """Two classes of solid images, a training and a test shade per class, so a frame tells both
    the class and the split."""
    shades = {"train": (0.1, 0.9), "test": (0.3, 0.7)}

    def split(name):
        values = torch.tensor(shades[name]).repeat(4)  # 8 images, classes alternating
        return (values[:, None, None, None] * 255).expand(8, 3, 32, 32).to(torch.uint8), torch.arange(8) % 2

    (train, train_labels), (test, test_labels) = split("train"), split("test")
    return SimpleNamespace(
        image_size=32,
        classes=CLASSES,
        train_images=train,
        train_labels=train_labels,
        test_images=test,
        test_labels=test_labels,
    )


def test_each_video_shows_an_image_of_its_class_from_its_split(tmp_path):
    folder = generate_moving_cifar(tmp_path, _cifar(), train=16, test=8, frames=8, seed=0)
    videos = load_video_folder(folder)
    assert videos.classes == CLASSES and len(videos.train_files) == 16 and len(videos.test_files) == 8
    for files, labels, shades in (
        (videos.train_files, videos.train_labels, (0.1, 0.9)),
        (videos.test_files, videos.test_labels, (0.3, 0.7)),
    ):
        frames = decode_videos(files, labels, frames=8, size=32).frames.float() / 255  # [N, T, 3, H, W]
        for clip, label in zip(frames, list(labels), strict=True):
            # the object covers half the frame: the most common value is its shade, in every frame
            values = (clip * 20).round().flatten(1).mode(dim=1).values / 20
            assert torch.allclose(values, torch.full_like(values, shades[label]), atol=0.06)
    with open(folder / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    by_class = Counter((r["class"], r["direction"]) for r in rows)
    # directions are drawn apart from the class: both classes move in several directions
    assert all(len({d for c, d in by_class if c == name}) >= 3 for name in CLASSES)


def test_a_complete_folder_is_reused(tmp_path):
    folder = generate_moving_cifar(tmp_path, _cifar(), train=4, test=2, frames=4, seed=0)
    stamp = (folder / "labels.csv").stat().st_mtime_ns
    assert generate_moving_cifar(tmp_path, _cifar(), train=4, test=2, frames=4, seed=0) == folder
    assert (folder / "labels.csv").stat().st_mtime_ns == stamp
