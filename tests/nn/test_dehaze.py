"""AECR-Net's network (aecr.md section 3) against the card's oracles (section 8: 5, 6, 7)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from contrastkit.nn.dehaze import AdaptiveMix, AECRNet, DeformableConv, FastDeconv, isqrt_newton_schulz


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_match_the_card() -> None:
    full = AECRNet()
    assert count(full) == 2_614_229
    assert count(full.block) == 1_205_089
    assert count(full.dcn) == 652_315
    assert count(full.deconv) == 84
    assert count(AECRNet(deformable=False)) == 2_551_994


def test_blocks_are_shared() -> None:
    net = AECRNet(ngf=8, fa_repeats=6)
    calls = []
    net.block.register_forward_hook(lambda *_: calls.append("fa"))
    net.dcn.register_forward_hook(lambda *_: calls.append("dcn"))
    net(torch.rand(1, 3, 16, 16))
    assert calls.count("fa") == 6 and calls.count("dcn") == 2


def test_mixup_initial_values_and_formula() -> None:
    net = AECRNet(ngf=8)
    assert net.mix1.w.sigmoid().item() == pytest.approx(0.268941, abs=1e-6)
    assert net.mix2.w.sigmoid().item() == pytest.approx(0.354344, abs=1e-6)
    mix = AdaptiveMix(-1.0)
    a, b = torch.rand(2, 4), torch.rand(2, 4)
    s = torch.sigmoid(torch.tensor(-1.0))
    assert torch.allclose(mix(a, b), s * a + (1 - s) * b)


def test_shapes_and_output_range() -> None:
    net = AECRNet(ngf=8, fa_repeats=2)
    out = net(torch.rand(2, 3, 20, 28))
    assert out.shape == (2, 3, 20, 28)
    assert out.abs().max() < 1
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.rand(1, 3, 18, 20))


def test_deformable_conv_starts_as_a_plain_conv_with_half_mask() -> None:
    dcn = DeformableConv(4)
    x = torch.rand(2, 4, 6, 6)
    plain = F.conv2d(x, dcn.conv.weight, None, padding=1)
    assert torch.allclose(dcn(x), 0.5 * plain + dcn.conv.bias[None, :, None, None], atol=1e-5)


def test_newton_schulz_inverse_square_root() -> None:
    a = torch.randn(6, 6, dtype=torch.float64)
    spd = a @ a.t() + 6 * torch.eye(6, dtype=torch.float64)
    z = isqrt_newton_schulz(spd, 30)
    assert torch.allclose(z @ spd @ z, torch.eye(6, dtype=torch.float64), atol=1e-6)


def test_fast_deconv_equals_whitened_patches_times_weight() -> None:
    conv = FastDeconv(3, 3, 3, padding=1, sampling_stride=1, iterations=30).double()
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    out = conv(x)  # training mode: whitening from this batch
    cols = F.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, 27)
    mean = cols.mean(0)
    centred = cols - mean
    cov = centred.t() @ centred / len(cols) + 1e-5 * torch.eye(27, dtype=torch.float64)
    evals, evecs = torch.linalg.eigh(cov)
    whiten = evecs @ torch.diag(evals.rsqrt()) @ evecs.t()
    expected = (centred @ whiten) @ conv.weight.reshape(3, 27).t() + conv.bias
    expected = expected.reshape(2, 36, 3).transpose(1, 2).reshape(2, 3, 6, 6)
    assert torch.allclose(out, expected, atol=1e-5)
    # eval uses the running averages (updated once with momentum 0.1)
    assert torch.allclose(conv.running_mean, 0.1 * mean, atol=1e-12)
    conv.eval()
    assert conv(x).shape == (2, 3, 6, 6)
