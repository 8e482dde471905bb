"""Clip features: N evenly spaced windows per video, averaged; dropped frames; consistency."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from contrastkit.evaluation.clips import clip_consistency, clip_features, clip_starts


class FrameMean(nn.Module):
    """Feature = per-channel mean over the clip: easy to compute by hand."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3, 4))


def test_starts_are_evenly_spaced_windows():
    assert clip_starts(32, 16, 1, 3) == [0, 8, 16]
    assert clip_starts(16, 16, 1, 4) == [0]
    assert clip_starts(20, 4, 2, 2) == [0, 13]
    with pytest.raises(ValueError, match="spans 31 > 20 frames"):
        clip_starts(20, 16, 2, 1)


def test_features_average_the_windows_and_dropping_changes_them():
    videos = torch.randint(0, 256, (5, 3, 12, 4, 4), dtype=torch.uint8)
    pre = lambda v: v.float()  # noqa: E731
    got = clip_features(FrameMean(), pre, videos, length=4, stride=2, clips_per_video=2, batch_size=2)
    windows = [videos[:, :, s : s + 7 : 2].float().mean(dim=(2, 3, 4)) for s in (0, 5)]
    torch.testing.assert_close(got, (windows[0] + windows[1]) / 2)
    whole = lambda x: x.mean(dim=(1, 2, 3, 4))[:, None]  # noqa: E731
    encoder = nn.Module()
    encoder.forward = whole  # type: ignore[method-assign]
    dropped = clip_features(encoder, pre, videos, length=4, clips_per_video=1, drop_fraction=0.5)
    clean = clip_features(encoder, pre, videos, length=4, clips_per_video=1)
    torch.testing.assert_close(dropped, clean)  # a frame's mean over (C, H, W) replaces it: the clip's mean stays
    per_channel = clip_features(FrameMean(), pre, videos, length=4, clips_per_video=1, drop_fraction=0.5)
    assert not torch.allclose(per_channel, clip_features(FrameMean(), pre, videos, length=4, clips_per_video=1))
    assert clip_consistency(encoder, pre, videos, length=4) == pytest.approx(1.0)
    conv = nn.Sequential(nn.Conv3d(3, 4, (2, 1, 1)), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten())
    assert clip_consistency(conv, pre, videos, length=4, drop_fraction=0.5) < 1.0
