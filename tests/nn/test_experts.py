"""Frozen frame experts: features pooled over stretches of time, in order, from the weights given."""

from __future__ import annotations

import pytest
import torch

from contrastkit.nn.backbones import ConvNetSmall
from contrastkit.nn.experts import frame_expert, pooled_clip_features
from contrastkit.views.image import normalize_images

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


@pytest.fixture
def expert(tmp_path):
    torch.manual_seed(0)
    net = ConvNetSmall(3, 8)
    net.train()(torch.randn(16, 3, 32, 32))  # running statistics that differ from the defaults
    torch.save(net.state_dict(), tmp_path / "expert.pt")
    return net.eval(), frame_expert(str(tmp_path / "expert.pt"))


def test_the_expert_is_the_saved_network_frozen(expert):
    net, loaded = expert
    assert loaded.body[0].out_channels == 8 and not any(p.requires_grad for p in loaded.parameters())
    loaded.train()  # frozen experts stay in eval mode
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(loaded(x), net(x))


def test_each_stretch_is_the_mean_of_its_frames_in_time_order(expert):
    net, loaded = expert
    g = torch.Generator().manual_seed(1)
    clips = torch.randint(0, 256, (2, 3, 7, 32, 32), generator=g, dtype=torch.uint8)
    features = pooled_clip_features(loaded, clips, MEAN, STD, segments=3)
    per_frame = torch.stack([net(normalize_images(clips[:, :, t], MEAN, STD)) for t in range(7)], dim=1)
    stretches = [(0, 2), (2, 5), (5, 7)]  # 7 frames in 3 stretches: rounded bounds 0, 2, 5, 7
    expected = torch.cat([per_frame[:, a:b].mean(1) for a, b in stretches], dim=1)
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-5)
    reversed_clips = clips.flip(2)
    assert not torch.allclose(pooled_clip_features(loaded, reversed_clips, MEAN, STD), features)


def test_weights_of_another_architecture_are_refused(tmp_path):
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="convnet_small"):
        frame_expert(str(tmp_path / "other.pt"))
