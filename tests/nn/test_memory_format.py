"""The 2-D backbones run their convolutions channels-last (faster on CPUs; docs/benchmarks.md) and
give the same features as in NCHW, forward and backward."""

from __future__ import annotations

import pytest
import torch

from contrastkit.nn.backbones import build_backbone


@pytest.mark.parametrize("name,width", [("convnet_small", 8), ("resnet18", 8)])
def test_channels_last_gives_the_nchw_features_and_gradients(name, width):
    torch.manual_seed(0)
    net = build_backbone(name, 3, width, 32)
    x = torch.randn(4, 3, 32, 32)
    assert net.forward_map(x).is_contiguous(memory_format=torch.channels_last)

    def features_and_grads(memory_format):
        net.memory_format = memory_format
        net.zero_grad()
        out = net(x)
        out.square().sum().backward()
        return out.detach(), [p.grad.clone() for p in net.parameters()]

    fast, fast_grads = features_and_grads(torch.channels_last)
    plain, plain_grads = features_and_grads(torch.contiguous_format)
    assert not net.forward_map(x).is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)
    for a, b in zip(fast_grads, plain_grads, strict=True):  # float32 sums in another order: relative to the scale
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4 * float(b.abs().max()))


def test_split_batchnorm_sets_the_backbone_back_to_nchw():
    from contrastkit.nn.split_batchnorm import convert_to_split_batchnorm

    net = convert_to_split_batchnorm(build_backbone("resnet18", 3, 8, 32), 4)
    assert net.memory_format == torch.contiguous_format
    assert net(torch.randn(8, 3, 16, 16)).shape == (8, 64)
