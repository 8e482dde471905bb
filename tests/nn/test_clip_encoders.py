"""Clip encoders and VideoMoCo's frame scorer (videomoco.md §4, §6, oracle 6)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from contrastkit.nn import FrameScorer, TinyClipCNN, VideoResNet, build_backbone, load_backbone_weights
from contrastkit.nn.split_batchnorm import SplitBatchNorm3d, convert_to_split_batchnorm


def test_tiny_clip_cnn_is_the_cards_size_and_pools_clips():
    net = TinyClipCNN(3, 16)
    assert 0.05e6 < sum(p.numel() for p in net.parameters()) < 0.15e6
    assert net(torch.randn(2, 3, 16, 32, 32)).shape == (2, 64)
    assert net.forward_map(torch.randn(2, 3, 16, 32, 32)).shape == (2, 64, 4, 4, 4)


@pytest.mark.parametrize("name,dim", [("r3d_18", 512), ("r2plus1d_18", 512), ("mc3_18", 512), ("s3d", 1024)])
def test_torchvision_video_networks_take_small_clips(name, dim):
    net = build_backbone(name, 3, None, 32)
    assert net.feature_dim == dim
    out = net(torch.randn(2, 3, 8, 32, 32))
    assert out.shape == (2, dim) and torch.isfinite(out).all()


def test_split_bn_converts_a_clip_encoder():
    net = convert_to_split_batchnorm(TinyClipCNN(3, 8), 2)
    assert all(isinstance(m, SplitBatchNorm3d) for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    assert net(torch.randn(4, 3, 4, 16, 16)).shape == (4, 32)


def test_local_torchvision_weights_load_and_match_torchvision(tmp_path):
    from torchvision.models.video import r3d_18

    reference = r3d_18(weights=None).eval()
    path = tmp_path / "r3d_18.pth"
    torch.save(reference.state_dict(), path)
    ours = VideoResNet("r3d_18").eval()
    assert load_backbone_weights(ours, path) == []
    x = torch.randn(1, 3, 4, 32, 32)
    stages = (reference.stem, reference.layer1, reference.layer2, reference.layer3, reference.layer4)
    expected = x
    for stage in stages:
        expected = stage(expected)
    torch.testing.assert_close(ours(x), reference.avgpool(expected).flatten(1))
    torch.save({"unrelated": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="no tensor of .* fits the backbone"):
        load_backbone_weights(ours, tmp_path / "bad.pth")


def test_frame_scorer_is_a_distribution_over_frames_for_any_length():
    """Oracle 6: non-negative scores summing to 1 per clip."""
    scorer = FrameScorer(3, 8)
    for t in (4, 16, 32):
        scores = scorer(torch.randn(3, 3, t, 24, 24))
        assert scores.shape == (3, t) and (scores >= 0).all()
        torch.testing.assert_close(scores.sum(1), torch.ones(3))
