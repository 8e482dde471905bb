"""Motion phases with CIFAR-10 objects: the object moves 1 px per frame in its frame's phase
direction (the move into frame t is frame t's label), and each video shows its class's image."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("av")

from contrastkit.data.motion_phases import VELOCITY  # noqa: E402
from contrastkit.data.motion_phases_cifar import (  # noqa: E402
    generate_motion_phases_cifar,
    phase_object_frames,
)
from contrastkit.data.video_folders import load_video_folder  # noqa: E402


def _centre(frame):
    """The centroid (x, y) of the bright object on a black background."""
    mask = frame.float().sum(-1) > 300
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return xs.float().mean(), ys.float().mean()


def test_the_object_moves_one_pixel_in_each_frames_phase():
    labels = torch.tensor([0] * 5 + [2] * 4 + [1] * 6 + [3] * 5)  # right, up, left, down
    texture, background = torch.ones(3, 8, 8), torch.zeros(3, 32, 32)
    frames = phase_object_frames(texture, background, labels, (16.0, 16.0), 5.0)
    assert frames.shape == (20, 32, 32, 3)
    for t in range(1, 20):
        (x0, y0), (x1, y1) = _centre(frames[t - 1]), _centre(frames[t])
        dy, dx = VELOCITY[int(labels[t])]
        assert abs(float(x1 - x0) - dx) < 0.01 and abs(float(y1 - y0) - dy) < 0.01, t


def test_videos_carry_their_class_and_a_phase_per_frame(tmp_path):
    images = torch.stack([torch.full((3, 32, 32), v) for v in (20, 230, 25, 225)]).to(torch.uint8)
    cifar = SimpleNamespace(
        image_size=32,
        classes=("dark", "light"),
        train_images=images,
        train_labels=torch.arange(4) % 2,
        test_images=images,
        test_labels=torch.arange(4) % 2,
    )
    folder = generate_motion_phases_cifar(tmp_path, cifar, train=4, test=2, frames=20, min_phase=4, seed=0)
    videos = load_video_folder(folder)
    assert videos.classes == ("dark", "light") and len(videos.train_files) == 4
    phases = json.loads((folder / "frame_labels.json").read_text())
    runs = [1 + sum(a != b for a, b in zip(p, p[1:])) for p in phases.values()]
    assert len(phases) == 6 and all(len(p) == 20 for p in phases.values()) and runs == [4] * 6  # 4 phases each
