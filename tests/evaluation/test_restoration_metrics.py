"""PSNR / SSIM as the AECR-Net code defines them (aecr.md section 4, oracle 9)."""

from __future__ import annotations

import math

import pytest
import torch

from contrastkit.evaluation.restoration import gaussian_window, psnr, ssim


def ssim_loop(x: torch.Tensor, y: torch.Tensor, size: int = 11, sigma: float = 1.5) -> float:
    """Brute force: every pixel, every channel, an explicit zero-padded Gaussian window."""
    w = gaussian_window(size, sigma).double()
    r = size // 2
    c, h, wd = x.shape
    total = 0.0
    for ch in range(c):
        for i in range(h):
            for j in range(wd):
                sums = dict(mx=0.0, my=0.0, xx=0.0, yy=0.0, xy=0.0)
                for di in range(-r, r + 1):
                    for dj in range(-r, r + 1):
                        ii, jj = i + di, j + dj
                        if 0 <= ii < h and 0 <= jj < wd:
                            k = w[di + r, dj + r].item()
                            a, b = x[ch, ii, jj].item(), y[ch, ii, jj].item()
                            sums["mx"] += k * a
                            sums["my"] += k * b
                            sums["xx"] += k * a * a
                            sums["yy"] += k * b * b
                            sums["xy"] += k * a * b
                mx, my = sums["mx"], sums["my"]
                vx, vy, cov = sums["xx"] - mx * mx, sums["yy"] - my * my, sums["xy"] - mx * my
                c1, c2 = 0.01**2, 0.03**2
                total += ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return total / (c * h * wd)


def test_psnr_oracles() -> None:
    x = torch.rand(2, 3, 8, 8)
    assert psnr(x, x).tolist() == [100.0, 100.0]
    y = torch.full((1, 3, 4, 4), 0.5)
    assert psnr(y + 0.1, y).item() == pytest.approx(20.0, abs=1e-4)
    # inputs are clamped: values beyond [0, 1] count as 0 or 1
    assert psnr(torch.full((1, 3, 4, 4), 1.7), torch.ones(1, 3, 4, 4)).item() == 100.0
    assert psnr(x[0], x[0]).shape == (1,)


def test_ssim_equal_images_is_one_and_matches_the_loop() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 9, 10, generator=g), torch.rand(2, 9, 10, generator=g)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)
    assert ssim(x, y).item() == pytest.approx(ssim_loop(x, y), abs=1e-5)
    assert ssim(x, (0.7 * x + 0.3 * y)).item() > ssim(x, y).item()


def test_window_is_normalised_gaussian() -> None:
    w = gaussian_window()
    assert w.shape == (11, 11) and w.sum().item() == pytest.approx(1.0)
    assert w[5, 4].item() / w[5, 5].item() == pytest.approx(math.exp(-1 / (2 * 1.5**2)), rel=1e-5)


def test_shape_mismatch_is_named() -> None:
    with pytest.raises(ValueError, match="same shape"):
        psnr(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 5))
