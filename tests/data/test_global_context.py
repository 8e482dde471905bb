"""The global-context videos of vclr.md §6, written as mp4 and read back."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("av")

from contrastkit.data.global_context import GLYPHS, generate_global_context, global_context_frames  # noqa: E402
from contrastkit.data.video_folders import decode_videos, load_video_folder  # noqa: E402


def _decoded(root, **kw):
    folder = generate_global_context(root, train=8, test=8, frames=12, size=32, seed=2, **kw)
    videos = load_video_folder(folder)
    return videos, decode_videos(videos.train_files, videos.train_labels, frames=12, size=32).frames.float()


def test_three_scenes_with_hard_cuts_and_a_brightness_ramp(tmp_path):
    videos, frames = _decoded(tmp_path / "ramp")
    assert videos.classes == tuple(sorted(GLYPHS)) and len(videos.train_files) == 8
    step = (frames[:, :, 1:] - frames[:, :, :-1]).abs().mean(dim=(0, 1, 3, 4))  # [11] mean change per frame
    cuts = step[[3, 7]]  # frames 3->4 and 7->8 cross the scene boundaries (12 frames, 3 scenes)
    within = step[[0, 1, 2, 4, 5, 6, 8, 9, 10]]
    assert cuts.min() > 5 * within.max()
    brightness = frames.mean(dim=(0, 1, 3, 4))
    assert brightness[3] > brightness[0] and brightness[11] > brightness[8]  # rising inside a scene


def test_without_the_ramp_a_scene_keeps_its_brightness(tmp_path):
    _, frames = _decoded(tmp_path / "flat", ramp=False)
    brightness = frames.mean(dim=(0, 1, 3, 4))
    for start in (0, 4, 8):
        scene = brightness[start : start + 4]
        assert float(scene.max() - scene.min()) < 1.0


def test_the_glyph_is_static_and_the_background_ignores_the_class():
    g = torch.Generator().manual_seed(0)
    backgrounds = [torch.rand(3, 32, 32, generator=g)] * 3
    a = global_context_frames(0, backgrounds, 6, (4, 4), (0.0, 0.0), ramp=False).float()
    b = global_context_frames(5, backgrounds, 6, (4, 4), (0.0, 0.0), ramp=False).float()
    assert torch.equal(a[0], a[5])  # no drift, no ramp, one background: every frame the same
    differs = (a[0] - b[0]).abs().sum(-1) > 0
    assert differs[:4].sum() == 0 and differs[4:13, 4:13].any() and differs[13:].sum() == 0  # only the glyph


def test_glyph_contrast_sets_how_far_the_glyph_stands_out(tmp_path):
    """The ``contrast`` option reaches the written videos: the same seed at 0.7 differs from 0.35
    strongly where the glyph is and hardly elsewhere (the backgrounds are the same draws)."""
    _, low = _decoded(tmp_path / "low")
    _, high = _decoded(tmp_path / "high", contrast=0.7)
    difference = (high - low).abs().amax(1)  # [videos, frames, H, W], uint8 scale
    assert difference.amax(dim=(2, 3)).mean() > 30  # every frame's glyph moved by a large step
    assert float((difference > 20).float().mean()) < 0.1  # the glyph covers a few pixels of each frame
    assert generate_global_context(tmp_path / "low", train=8, test=8, frames=12, size=32, seed=2) == tmp_path / "low"
