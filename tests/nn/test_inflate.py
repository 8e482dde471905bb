"""I3D inflation: a 2-D ConvNetSmall inflated into ConvNetSmall3d gives, on a clip of identical
frames, the image encoder's map at every time step and its features."""

from __future__ import annotations

import pytest
import torch

from contrastkit.nn import ConvNetSmall
from contrastkit.nn.backbones import build_backbone
from contrastkit.nn.inflate import ConvNetSmall3d, inflate, inflate_state_dict


def _trained_looking(encoder: torch.nn.Module) -> torch.nn.Module:
    """Random BatchNorm statistics and affine terms, so no layer is an identity."""
    g = torch.Generator().manual_seed(1)
    for m in encoder.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return encoder.eval()


@pytest.mark.parametrize("frames,time_kernel", [(8, 3), (5, 3), (4, 5), (1, 3)])
def test_a_clip_of_identical_frames_gives_the_image_encoders_output(frames, time_kernel):
    torch.manual_seed(0)
    image = _trained_looking(ConvNetSmall(3, 4).double())
    clip_encoder = inflate(image, time_kernel).double().eval()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    clip = x[:, :, None].expand(-1, -1, frames, -1, -1).contiguous()
    with torch.no_grad():
        want, got = image.forward_map(x), clip_encoder.forward_map(clip)
        assert got.shape[:2] == want.shape[:2] and got.shape[3:] == want.shape[2:]
        for t in range(got.shape[2]):
            torch.testing.assert_close(got[:, :, t], want, atol=1e-6, rtol=0)
        torch.testing.assert_close(clip_encoder(clip), image(x), atol=1e-6, rtol=0)


def test_moving_frames_are_not_the_image_output_and_weights_must_fit():
    image = _trained_looking(ConvNetSmall(3, 4))
    clip_encoder = inflate(image).eval()
    clip = torch.randn(1, 3, 4, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(clip_encoder(clip), image(clip[:, :, 0]), atol=1e-3)
    wider = ConvNetSmall3d(3, 8)
    with pytest.raises(
        ValueError, match=r"body.0.weight: the 2-D tensor \(4, 3, 3, 3\) does not inflate to \(8, 3, 3, 3, 3\)"
    ):
        inflate_state_dict(image.state_dict(), wider)
    state = dict(image.state_dict())
    state["head.weight"] = state.pop("body.0.weight")
    with pytest.raises(ValueError, match="missing body.0.weight; unexpected head.weight"):
        inflate_state_dict(state, ConvNetSmall3d(3, 4))


def test_the_clip_counterpart_is_a_registered_backbone():
    backbone = build_backbone("convnet_small3d", 3, 8, 32)
    assert isinstance(backbone, ConvNetSmall3d) and backbone.feature_dim == 64
    assert backbone(torch.randn(2, 3, 8, 32, 32)).shape == (2, 64)
    with pytest.raises(ValueError, match="time_kernel must be odd"):
        ConvNetSmall3d(3, 8, time_kernel=2)
