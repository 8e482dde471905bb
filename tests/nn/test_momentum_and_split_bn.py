"""MomentumEncoder and split BN / ShuffleBN against moco.md §11."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from contrastkit.nn import (
    ConvNetSmall,
    MomentumEncoder,
    SplitBatchNorm2d,
    build_backbone,
    convert_to_split_batchnorm,
    ema_update,
)
from contrastkit.nn.shuffle import shuffled_forward


def test_momentum_copy_starts_equal_and_frozen():
    online = ConvNetSmall(3, 8)
    momentum = MomentumEncoder(online)
    for a, b in zip(online.parameters(), momentum.parameters()):
        assert torch.equal(a, b) and not b.requires_grad


@pytest.mark.parametrize("m", [0.0, 0.5, 0.99, 1.0])
def test_ema_update_is_exact(m):
    online, target = nn.Linear(4, 3), nn.Linear(4, 3)
    before = [p.clone() for p in target.parameters()]
    ema_update(online, target, m)
    for new, old, q in zip(target.parameters(), before, online.parameters()):
        torch.testing.assert_close(new, m * old + (1 - m) * q, rtol=0, atol=1e-7)


def test_ema_rejects_bad_momentum_and_mismatched_modules():
    with pytest.raises(ValueError, match="momentum m"):
        ema_update(nn.Linear(2, 2), nn.Linear(2, 2), 1.5)
    with pytest.raises(ValueError, match="differ"):
        ema_update(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), 0.5)


def test_split_bn_with_identical_splits_equals_plain_bn():
    torch.manual_seed(0)
    plain = nn.BatchNorm2d(3)
    split = SplitBatchNorm2d(3, num_splits=4)
    chunk = torch.randn(5, 3, 4, 4)
    x = chunk.repeat(4, 1, 1, 1)
    torch.testing.assert_close(split(x), plain(x))
    torch.testing.assert_close(split.running_mean, plain.running_mean)
    torch.testing.assert_close(split.running_var, plain.running_var, rtol=1e-3, atol=1e-3)


def test_split_bn_decorrelates_splits_and_is_plain_bn_in_eval():
    split = SplitBatchNorm2d(2, num_splits=2)
    x = torch.randn(8, 2, 3, 3)
    y = x.clone()
    y[1::2] = torch.randn(4, 2, 3, 3) * 5  # change only split 1 (odd samples)
    torch.testing.assert_close(split(x)[0::2], split(y)[0::2])  # split 0 never sees split 1
    plain = nn.BatchNorm2d(2)
    assert not torch.allclose(plain(x)[0::2], plain(y)[0::2])
    split.eval()
    plain.load_state_dict(split.state_dict())
    plain.eval()
    torch.testing.assert_close(split(x), plain(x))


def test_convert_keeps_weights_and_replaces_every_bn():
    net = build_backbone("resnet18", 3, 8)
    convert_to_split_batchnorm(net, 4)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(isinstance(m, SplitBatchNorm2d) for m in bns)
    assert net(torch.randn(8, 3, 16, 16)).shape == (8, 64)


def test_shuffled_forward_is_order_preserving_and_a_no_op_in_eval_mode():
    net = convert_to_split_batchnorm(ConvNetSmall(3, 8), 4)
    x = torch.randn(16, 3, 8, 8)
    net.eval()
    (shuffled,) = shuffled_forward(lambda t: (net(t),), x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(shuffled, net(x))
    net.train()
    (train_mode,) = shuffled_forward(lambda t: (net(t),), x, torch.Generator().manual_seed(0))
    assert not torch.allclose(train_mode, net(x)), "with split BN in training, shuffling must change statistics"


@pytest.mark.parametrize("name,dim", [("convnet_small", 64), ("resnet18", 64), ("resnet50", 256), ("moon_cnn", 84)])
def test_backbones_report_their_width(name, dim):
    net = build_backbone(name, 3, 8 if name != "moon_cnn" else None)
    assert net.feature_dim == dim
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, dim)
    assert net.forward_map(torch.randn(2, 3, 32, 32)).shape[:2] == (2, dim)


def test_unknown_backbone():
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        build_backbone("vgg")


def test_moon_cnn_pool_before_relu_equals_the_official_order():
    """MoonCNN pools before its ReLU; the official order (ReLU, then pool) gives the same output
    and the same gradients."""
    from contrastkit.nn.backbones import MoonCNN

    torch.manual_seed(0)
    net = MoonCNN(3, 32).double()
    f = net.features
    official = torch.nn.Sequential(
        f[0], torch.nn.ReLU(), torch.nn.MaxPool2d(2), f[3], torch.nn.ReLU(), torch.nn.MaxPool2d(2)
    )
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    ours = net(x)
    reference = net.fc(official(x).flatten(1))
    torch.testing.assert_close(ours, reference)
    params = [x, *net.parameters()]
    for g_ours, g_ref in zip(torch.autograd.grad(ours.sum(), params), torch.autograd.grad(reference.sum(), params)):
        torch.testing.assert_close(g_ours, g_ref)


@pytest.mark.parametrize("shape", [(3, 6, 28, 28), (2, 16, 10, 10), (2, 4, 7, 9)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool_2x2_equals_max_pool2d_bit_for_bit(shape, channels_last):
    """The no-autograd pool path (strided maxima) gives exactly ``F.max_pool2d(x, 2)``, odd edges
    dropped as max_pool2d drops them, in either memory layout."""
    from contrastkit.nn.backbones import max_pool_2x2

    x = torch.randn(*shape)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(max_pool_2x2(x), torch.nn.functional.max_pool2d(x, 2))


def test_moon_cnn_pool_paths_agree_and_training_keeps_max_pool2d_gradients():
    """``MaxPool2x2`` uses the strided maxima only without autograd; with it, gradients are
    max_pool2d's (one winner per window, never split)."""
    from contrastkit.nn.backbones import MaxPool2x2

    pool = MaxPool2x2()
    x = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]], requires_grad=True)  # a tie in the window
    pool(x).sum().backward()
    assert x.grad is not None and sorted(x.grad.flatten().tolist()) == [0.0, 0.0, 0.0, 1.0]
    with torch.no_grad():
        assert torch.equal(pool(x), torch.nn.functional.max_pool2d(x, 2))


def test_split_bn_running_statistics_are_the_mean_over_splits():
    """Splits with different statistics: the running mean/var are the average of each split's
    own update (taking split 0's alone, or the whole batch's, fails)."""
    split = SplitBatchNorm2d(2, num_splits=2, momentum=1.0)
    x = torch.randn(8, 2, 3, 3)
    x[1::2] = x[1::2] * 4 + 10  # split 1 (odd samples): other mean and variance
    split(x)
    parts = [x[0::2], x[1::2]]
    mean = torch.stack([p.mean(dim=(0, 2, 3)) for p in parts]).mean(0)
    var = torch.stack([p.var(dim=(0, 2, 3), unbiased=True) for p in parts]).mean(0)
    torch.testing.assert_close(split.running_mean, mean)
    torch.testing.assert_close(split.running_var, var)


@pytest.mark.parametrize("dims", [1, 3])
def test_split_bn_of_other_ranks_matches_per_split_plain_bn(dims):
    """1-D ([N, C]) and 3-D ([N, C, T, H, W]) split BN: each split normalised on its own."""
    from contrastkit.nn import SplitBatchNorm1d, SplitBatchNorm3d

    shape = {1: (8, 3), 3: (8, 3, 2, 3, 3)}[dims]
    split = (SplitBatchNorm1d if dims == 1 else SplitBatchNorm3d)(3, num_splits=2)
    plain = (nn.BatchNorm1d if dims == 1 else nn.BatchNorm3d)(3)
    x = torch.randn(*shape)
    out = split(x)
    torch.testing.assert_close(out[0::2], plain(x[0::2]))
    torch.testing.assert_close(out[1::2], plain(x[1::2]))


def test_convert_handles_batchnorm3d_and_refuses_what_it_cannot_split():
    from contrastkit.nn import SplitBatchNorm1d, SplitBatchNorm3d

    net = nn.Sequential(nn.Conv3d(3, 4, 3), nn.BatchNorm3d(4), nn.ReLU(), nn.Sequential(nn.BatchNorm1d(4)))
    convert_to_split_batchnorm(net, 2)
    assert isinstance(net[1], SplitBatchNorm3d) and isinstance(net[3][0], SplitBatchNorm1d)
    with pytest.raises(ValueError, match="cannot convert '0' \\(SyncBatchNorm\\)"):
        convert_to_split_batchnorm(nn.Sequential(nn.SyncBatchNorm(4)), 2)


def test_backbone_pools_over_every_trailing_dimension():
    from contrastkit.nn import Backbone

    class Clip(Backbone):
        feature_dim = 4

        def forward_map(self, x: torch.Tensor) -> torch.Tensor:
            return x

    fmap = torch.randn(2, 4, 3, 5, 5)  # [B, C, T, H, W]
    torch.testing.assert_close(Clip()(fmap), fmap.mean(dim=(2, 3, 4)))
    torch.testing.assert_close(Clip()(fmap[:, :, 0]), fmap[:, :, 0].mean(dim=(2, 3)))
