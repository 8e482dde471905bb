"""The dark channel prior (He, Sun, Tang, CVPR 2009 / TPAMI 2011) with guided-filter refinement
(He, Sun, Tang, ECCV 2010): the classical reference row for the dehazing benchmarks.

    dark(x)  = min over a patch of min over channels
    A        = per channel, the mean of the input over the 0.1% pixels brightest in dark(I)
    t~       = 1 - omega * dark(I / A)                        (omega = 0.95)
    t        = guided_filter(gray(I), t~, radius, eps)        (replaces soft matting)
    J        = (I - A) / max(t, t0) + A                       (t0 = 0.1)

[design] The paper's patch (15 px) and guided-filter radius (60 px) suit ~600x400 photos; here
they scale with the shorter image side (``patch = 15 * side / 460``, odd, at least 3; radius = 4 x
patch) unless given, so the 64x64 synthetic images get a 3-px patch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DarkChannelPrior", "box_filter", "dark_channel", "guided_filter"]


def dark_channel(images: Tensor, patch: int) -> Tensor:
    """``[B, C, H, W]`` -> ``[B, 1, H, W]``: the minimum over channels and a ``patch`` x ``patch`` window."""
    x = images.amin(dim=1, keepdim=True)
    r = patch // 2
    x = F.pad(x, (r, r, r, r), mode="replicate")
    return -F.max_pool2d(-x, patch, stride=1)


def box_filter(x: Tensor, radius: int) -> Tensor:
    """Mean over a ``(2r+1)^2`` window clipped at the borders, in O(1) per pixel (cumulative sums)."""

    def along(t: Tensor, dim: int) -> Tensor:
        n = t.shape[dim]
        c = torch.cat([torch.zeros_like(t.narrow(dim, 0, 1)), t.cumsum(dim)], dim)
        idx = torch.arange(n, device=t.device)
        hi = (idx + radius + 1).clamp(max=n)
        lo = (idx - radius).clamp(min=0)
        shape = [1] * t.dim()
        shape[dim] = n
        count = (hi - lo).to(t.dtype).reshape(shape)
        return (c.index_select(dim, hi) - c.index_select(dim, lo)) / count

    return along(along(x, -1), -2)


def guided_filter(guide: Tensor, source: Tensor, radius: int, eps: float) -> Tensor:
    """Edge-preserving smoothing of ``source`` ``[B, 1, H, W]`` by a gray ``guide`` ``[B, 1, H, W]``."""
    mean_i, mean_p = box_filter(guide, radius), box_filter(source, radius)
    cov_ip = box_filter(guide * source, radius) - mean_i * mean_p
    var_i = box_filter(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_filter(a, radius) * guide + box_filter(b, radius)


TileRestorer = Callable[[int, int, int, int], Tensor]


def _gray(x: Tensor) -> Tensor:
    """``[B, 3, H, W]`` -> ``[B, 1, H, W]`` luma (ITU-R BT.601)."""
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]


class DarkChannelPrior(nn.Module):
    """Dehazing by the dark channel prior; no parameters. ``[B, 3, H, W]`` in [0, 1] -> same shape.

    Args:
        patch: dark-channel window (None: 15 px per 460 px of the shorter side, odd, >= 3).
        omega: fraction of haze removed (0.95 keeps a little for depth perception).
        t0: lower bound of the transmission.
        radius: guided-filter radius (None: 4 x patch); eps: its regulariser.
        top: fraction of brightest dark-channel pixels that estimate the airlight.
    """

    def __init__(
        self,
        patch: int | None = None,
        omega: float = 0.95,
        t0: float = 0.1,
        radius: int | None = None,
        eps: float = 1e-3,
        top: float = 0.001,
    ) -> None:
        super().__init__()
        self.patch, self.omega, self.t0, self.radius, self.eps, self.top = patch, omega, t0, radius, eps, top

    def sizes(self, height: int, width: int) -> tuple[int, int]:
        patch = self.patch or max(3, round(15 * min(height, width) / 460))
        patch += 1 - patch % 2
        return patch, self.radius or 4 * patch

    def airlight(self, hazy: Tensor, dark: Tensor) -> Tensor:
        """``[B, 3]``: per image, the mean colour of the pixels brightest in the dark channel."""
        flat_dark = dark.flatten(1)
        k = max(1, int(flat_dark.shape[1] * self.top))
        idx = flat_dark.topk(k, dim=1).indices
        pixels = hazy.flatten(2).gather(2, idx[:, None, :].expand(-1, hazy.shape[1], -1))
        return pixels.mean(2).clamp_min(1e-3)

    @torch.no_grad()
    def tile_restorer(self, image: Tensor, coarse_side: int = 512, fine_radius: int = 8) -> TileRestorer:
        """For an image too large to restore whole (``[3, H, W]`` in [0, 1]): the airlight and the
        transmission come from the whole image downscaled to ``coarse_side`` pixels on its shorter
        side (patch and radius scaled alike), the transmission is upsampled and refined per tile by
        a guided filter of ``fine_radius`` on the tile's own pixels. Every tile then sees the same
        airlight and the same coarse transmission, so tiles agree where they meet."""
        x = image.float().clamp(0, 1)[None]
        h, w = x.shape[2:]
        scale = min(1.0, coarse_side / min(h, w))
        small = F.interpolate(x, scale_factor=scale, mode="area") if scale < 1 else x
        patch, radius = self.sizes(h, w)
        small_patch = max(3, round(patch * scale))
        small_patch += 1 - small_patch % 2
        a = self.airlight(small, dark_channel(small, small_patch))[:, :, None, None]
        t = 1 - self.omega * dark_channel(small / a, small_patch)
        t = guided_filter(_gray(small), t, max(1, round(radius * scale)), self.eps)
        t_full = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)

        def restore_tile(top: int, left: int, height: int, width: int) -> Tensor:
            tile = x[:, :, top : top + height, left : left + width]
            t_tile = guided_filter(
                _gray(tile), t_full[:, :, top : top + height, left : left + width], fine_radius, self.eps
            )
            return ((tile - a) / t_tile.clamp_min(self.t0) + a).clamp(0, 1)[0]

        return restore_tile

    @torch.no_grad()
    def forward(self, hazy: Tensor) -> Tensor:
        if hazy.dim() != 4 or hazy.shape[1] != 3:
            raise ValueError(f"hazy must be [B, 3, H, W], got shape {tuple(hazy.shape)}")
        x = hazy.float().clamp(0, 1)
        patch, radius = self.sizes(x.shape[2], x.shape[3])
        a = self.airlight(x, dark_channel(x, patch))[:, :, None, None]
        t = 1 - self.omega * dark_channel(x / a, patch)
        t = guided_filter(_gray(x), t, radius, self.eps)
        return ((x - a) / t.clamp_min(self.t0) + a).clamp(0, 1)
