"""The dark channel prior baseline: its parts against brute force, and recovery of known haze."""

from __future__ import annotations

import torch

from contrastkit.data.dehaze import haze
from contrastkit.nn.dark_channel import DarkChannelPrior, box_filter, dark_channel, guided_filter


def test_dark_channel_is_the_patch_minimum_over_channels() -> None:
    x = torch.rand(1, 3, 7, 9)
    d = dark_channel(x, 3)
    m = x.amin(1)[0]
    for i in range(7):
        for j in range(9):
            window = m[max(0, i - 1) : i + 2, max(0, j - 1) : j + 2]
            assert d[0, 0, i, j] == window.min()


def test_box_filter_is_the_clipped_window_mean() -> None:
    x = torch.rand(1, 1, 6, 8, dtype=torch.float64)
    out = box_filter(x, 2)
    for i in range(6):
        for j in range(8):
            expected = x[0, 0, max(0, i - 2) : i + 3, max(0, j - 2) : j + 3].mean()
            assert torch.isclose(out[0, 0, i, j], expected)


def test_guided_filter_keeps_the_guide_when_it_is_the_source() -> None:
    x = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    assert torch.allclose(guided_filter(x, x, 3, 1e-8), x, atol=1e-4)


def test_recovers_haze_on_a_scene_obeying_the_prior() -> None:
    g = torch.Generator().manual_seed(0)
    clear = torch.rand(1, 3, 64, 64, generator=g) * 0.8
    clear[:, 0, ::2, ::2] = 0.0  # a dark pixel in every 3x3 patch: the prior holds exactly
    depth = torch.linspace(0.2, 1, 64).view(1, 1, 64, 1).expand(1, 1, 64, 64)
    hazy = haze(clear, depth, 1.0, 0.9)
    hazy[:, :, :8, :8] = 0.9  # the airlight shows somewhere (sky)
    restored = DarkChannelPrior(patch=3, omega=1.0, radius=2, eps=1e-6)(hazy)
    before = (hazy - clear).abs()[..., 10:, 10:].mean()
    after = (restored - clear).abs()[..., 10:, 10:].mean()
    assert after < 0.1 * before
