"""AECR-Net's compact dehazing autoencoder (Wu et al., CVPR 2021; ``docs/methods/aecr.md``).

``FastDeconv`` preprocessing (network deconvolution, Ye et al., ICLR 2020) -> three down convs ->
ONE FA block (FFA-Net) applied ``fa_repeats`` times -> ONE deformable 3x3 conv applied twice ->
adaptive mixups with the encoder features -> two transposed convs -> 7x7 conv -> Tanh. Weights
are shared exactly as in the official ``models/AECRNet.py`` (2,614,229 parameters at ngf=64).

Examples:
    >>> net = AECRNet(ngf=8)
    >>> net(torch.rand(2, 3, 32, 32)).shape
    torch.Size([2, 3, 32, 32])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AECRNet", "AdaptiveMix", "DeformableConv", "FABlock", "FastDeconv", "isqrt_newton_schulz"]


def isqrt_newton_schulz(a: Tensor, iterations: int) -> Tensor:
    """``a^(-1/2)`` of a symmetric positive definite ``[n, n]`` matrix by coupled Newton-Schulz."""
    norm = a.norm()
    y = a / norm
    eye = torch.eye(a.shape[0], dtype=a.dtype, device=a.device)
    z = eye
    for _ in range(iterations):
        t = 0.5 * (3.0 * eye - z @ y)
        y = y @ t
        z = t @ z
    return z / norm.sqrt()


class FastDeconv(nn.Conv2d):
    """A conv whose input patches are decorrelated ("network deconvolution", Ye et al. 2020), as
    the official ``models/deconv.py`` (groups = 1): in training the patch covariance of the batch
    (every ``sampling_stride``-th patch) is whitened with ``Cov^(-1/2)`` by Newton-Schulz and folded
    into the conv weight; running averages of the mean and whitening matrix serve in eval.

    Shapes: ``[B, C_in, H, W] -> [B, C_out, H', W']`` like ``nn.Conv2d``.
    """

    running_mean: Tensor
    running_deconv: Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        *,
        block: int = 64,
        eps: float = 1e-5,
        iterations: int = 5,
        momentum: float = 0.1,
        sampling_stride: int = 3,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=True)
        block = in_channels if block > in_channels else math.gcd(block, in_channels)
        self.block = block
        self.num_features = kernel_size**2 * block
        self.eps, self.iterations, self.momentum = eps, iterations, momentum
        self.sampling_stride = sampling_stride * stride
        self.pad = padding
        self.register_buffer("running_mean", torch.zeros(self.num_features))
        self.register_buffer("running_deconv", torch.eye(self.num_features))

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):  # whitening needs float32
            return self._whitened_conv(x.float() if x.dtype in (torch.float16, torch.bfloat16) else x)

    def _whitened_conv(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        if self.training:
            cols = F.unfold(x, self.kernel_size, self.dilation, self.pad, self.sampling_stride).transpose(1, 2)
            cols = cols.reshape(-1, self.num_features, c // self.block).transpose(1, 2).reshape(-1, self.num_features)
            mean = cols.mean(0)
            cols = cols - mean
            eye = torch.eye(self.num_features, dtype=x.dtype, device=x.device)
            cov = self.eps * eye + cols.t() @ cols / cols.shape[0]
            deconv = isqrt_newton_schulz(cov, self.iterations)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_deconv.lerp_(deconv.detach(), self.momentum)
        else:
            mean, deconv = self.running_mean, self.running_deconv
        out_c = self.weight.shape[0]
        w = self.weight.reshape(-1, self.num_features, c // self.block).transpose(1, 2).reshape(-1, self.num_features)
        w = w @ deconv
        assert self.bias is not None
        b = self.bias - (w @ mean.unsqueeze(1)).reshape(out_c, -1).sum(1)
        w = w.reshape(-1, c // self.block, self.num_features).transpose(1, 2).reshape(self.weight.shape)
        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation)


class _ChannelAttention(nn.Sequential):
    def __init__(self, dim: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(dim, dim // 8, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim // 8, dim, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * super().forward(x)


class _PixelAttention(nn.Sequential):
    def __init__(self, dim: int) -> None:
        super().__init__(nn.Conv2d(dim, dim // 8, 1), nn.ReLU(inplace=True), nn.Conv2d(dim // 8, 1, 1), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * super().forward(x)


class FABlock(nn.Module):
    """FFA-Net's feature-attention block: ``r = ReLU(conv(x)) + x; r = PA(CA(conv(r))); r + x``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1)
        self.channel_attention = _ChannelAttention(dim)
        self.pixel_attention = _PixelAttention(dim)

    def forward(self, x: Tensor) -> Tensor:
        r = F.relu(self.conv1(x)) + x
        return self.pixel_attention(self.channel_attention(self.conv2(r))) + x


class DeformableConv(nn.Module):
    """A modulated (DCNv2-style) deformable 3x3 conv: ``torchvision.ops.DeformConv2d`` with its own
    offset+mask conv (``2*9`` offsets + ``9`` mask logits), zero-initialised as in DCNv2 so that it
    starts as a plain conv."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        from torchvision.ops import DeformConv2d

        self.conv = DeformConv2d(dim, dim, 3, padding=1)
        self.offset_mask = nn.Conv2d(dim, 27, 3, padding=1)
        nn.init.zeros_(self.offset_mask.weight)
        assert self.offset_mask.bias is not None
        nn.init.zeros_(self.offset_mask.bias)

    def forward(self, x: Tensor) -> Tensor:
        o1, o2, mask = self.offset_mask(x).chunk(3, dim=1)
        return self.conv(x, torch.cat([o1, o2], dim=1), mask.sigmoid())


class AdaptiveMix(nn.Module):
    """``sigmoid(w) * a + (1 - sigmoid(w)) * b`` with a learnt scalar ``w``."""

    def __init__(self, init: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([float(init)]))

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        s = self.w.sigmoid()
        return a * s + b * (1 - s)


class AECRNet(nn.Module):
    """AECR-Net (``Dehaze(3, 3)`` of the official code).

    Args:
        ngf: channels of the first conv (64 = the paper's 2.61M model; 16 for CPU runs).
        fa_repeats: times the one FA block is applied (6 in the paper).
        deformable: False replaces the deformable conv by a plain 3x3 conv (the official network's count: 2,551,994
            parameters at ngf=64) for machines where ``DeformConv2d`` is slow.
        deconv: False drops the FastDeconv preprocessing.

    Shapes: ``[B, 3, H, W]`` in [0, 1] with ``H, W`` divisible by 4 -> ``[B, 3, H, W]`` in (-1, 1).
    """

    def __init__(self, ngf: int = 64, fa_repeats: int = 6, *, deformable: bool = True, deconv: bool = True) -> None:
        super().__init__()
        if ngf < 2 or ngf % 2:
            raise ValueError(f"ngf must be an even number >= 2, got {ngf}")
        self.ngf, self.fa_repeats = ngf, fa_repeats
        self.deconv = FastDeconv(3, 3, 3, padding=1) if deconv else nn.Identity()
        self.down1 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), nn.ReLU(inplace=True))
        self.down2 = nn.Sequential(nn.Conv2d(ngf, 2 * ngf, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        self.down3 = nn.Sequential(nn.Conv2d(2 * ngf, 4 * ngf, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        self.block = FABlock(4 * ngf)
        self.dcn: nn.Module = DeformableConv(4 * ngf) if deformable else nn.Conv2d(4 * ngf, 4 * ngf, 3, padding=1)
        self.mix1 = AdaptiveMix(-1.0)
        self.mix2 = AdaptiveMix(-0.6)
        self.up1 = nn.Sequential(
            nn.ConvTranspose2d(4 * ngf, 2 * ngf, 3, stride=2, padding=1, output_padding=1), nn.ReLU(inplace=True)
        )
        self.up2 = nn.Sequential(
            nn.ConvTranspose2d(2 * ngf, ngf, 3, stride=2, padding=1, output_padding=1), nn.ReLU(inplace=True)
        )
        self.up3 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh())

    def forward(self, hazy: Tensor) -> Tensor:
        if hazy.dim() != 4 or hazy.shape[1] != 3 or hazy.shape[2] % 4 or hazy.shape[3] % 4:
            raise ValueError(f"hazy must be [B, 3, H, W] with H and W divisible by 4, got shape {tuple(hazy.shape)}")
        d1 = self.down1(self.deconv(hazy))
        d2 = self.down2(d1)
        d3 = self.down3(d2)
        x = d3
        for _ in range(self.fa_repeats):
            x = self.block(x)
        y = self.dcn(self.dcn(x))
        u1 = self.up1(self.mix1(d3, y))
        u2 = self.up2(self.mix2(d2, u1))
        return self.up3(u2)
