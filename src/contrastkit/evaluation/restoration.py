"""PSNR and SSIM exactly as the AECR-Net / FFA-Net code computes them (``docs/methods/aecr.md``).

Both clamp their inputs to [0, 1]. PSNR is ``20 log10(1 / RMSE)`` over one image (100 when the
images are equal). SSIM uses an 11x11 Gaussian window (sigma 1.5), ``C1 = 0.01^2``,
``C2 = 0.03^2``, per channel, with the window zero-padded at the borders and the map averaged
over every pixel and channel — the official ``metrics.py``. torchmetrics' SSIM pads by
reflection and crops the border, which moves the number at small image sizes; we keep the
paper's definition so our numbers compare with its table, and test it against a loop reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gaussian_window", "psnr", "ssim"]


def _check_pair(prediction: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction and target must have the same shape, got {tuple(prediction.shape)} and {tuple(target.shape)}"
        )
    if prediction.dim() == 3:
        prediction, target = prediction[None], target[None]
    if prediction.dim() != 4:
        raise ValueError(f"images must be [C, H, W] or [B, C, H, W], got shape {tuple(prediction.shape)}")
    return prediction.float().clamp(0, 1), target.float().clamp(0, 1)


def psnr(prediction: Tensor, target: Tensor) -> Tensor:
    """Per-image PSNR in dB: ``[B, C, H, W]`` (or ``[C, H, W]``) pairs -> ``[B]``.

    Examples:
        >>> x = torch.rand(1, 3, 8, 8)
        >>> psnr(x, x).item()
        100.0
    """
    p, t = _check_pair(prediction, target)
    mse = (p - t).pow(2).flatten(1).mean(1)
    out = 10 * torch.log10(1 / mse.clamp_min(1e-30))
    return torch.where(mse == 0, torch.full_like(out, 100.0), out)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    """``[size, size]`` normalised Gaussian window."""
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).float()


def ssim(prediction: Tensor, target: Tensor, window_size: int = 11, sigma: float = 1.5) -> Tensor:
    """Per-image SSIM: ``[B, C, H, W]`` (or ``[C, H, W]``) pairs -> ``[B]``; 1 for equal images."""
    p, t = _check_pair(prediction, target)
    c = p.shape[1]
    window = gaussian_window(window_size, sigma).to(p.device).expand(c, 1, window_size, window_size)

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, window, padding=window_size // 2, groups=c)

    mu_p, mu_t = blur(p), blur(t)
    var_p = blur(p * p) - mu_p**2
    var_t = blur(t * t) - mu_t**2
    cov = blur(p * t) - mu_p * mu_t
    c1, c2 = 0.01**2, 0.03**2
    index = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    return index.flatten(1).mean(1)
