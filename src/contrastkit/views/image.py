"""Random image views, drawn independently per sample but computed on whole batches.

The pipelines follow the papers — MoCo v2 "aug+" (``docs/methods/moco.md``), MoCo's CIFAR demo, HCL /
SimCLR's CIFAR pipeline (``docs/methods/hcl.md``) — with the parameter ranges and probabilities of
torchvision's ``RandomResizedCrop``, ``ColorJitter``, ``RandomGrayscale``, ``GaussianBlur``
and ``RandomHorizontalFlip``.

[design] Why batched and not torchvision's per-image transforms v2: on the 2-core CPUs this
project is developed on, the v2 pipeline costs about 2 ms per 32x32 view, more than the
encoder's forward and backward; here a batch of 256 views costs a few ms, on any device.
Two deliberate differences from torchvision: the four jitter operations run in a fixed
order (brightness, contrast, saturation, hue) instead of a random one, and the hue shift is
a rotation of the chroma plane in YIQ space rather than a shift in HSV. Geometry (crop,
flip, rotation) is one affine resampling with bilinear interpolation.

Randomness comes from an explicit ``torch.Generator``, so a training step's views are a
function of (seed, step) and a resumed run draws exactly the views it would have drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["PRESETS", "ViewAugmentation", "build_augmentation", "normalize_images", "resolve_preset"]

_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)
_GRAY = torch.tensor([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class ViewAugmentation:
    """Per-sample random crop/flip/rotation, colour jitter, grayscale and blur on ``[B, C, H, W]``.

    Args:
        size: output side length.
        mean, std: per-channel normalisation applied last.
        crop_scale, crop_ratio: ``RandomResizedCrop``'s area fraction and aspect-ratio ranges.
        flip: horizontal flip with probability 0.5.
        rotation: maximum absolute rotation in degrees (0 = none).
        jitter: ``(brightness, contrast, saturation, hue)`` strengths as in ``ColorJitter``.
        jitter_p: probability of applying the jitter.
        grayscale_p: probability of converting to grayscale (3-channel images).
        blur_p: probability of a Gaussian blur with ``sigma ~ U(blur_sigma)``.
        blur_kernel: odd kernel size (0 = 10% of ``size``, rounded to odd, at least 3).

    Examples:
        >>> aug = PRESETS["moco_v2"](32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        >>> images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
        >>> aug(images, torch.Generator().manual_seed(0)).shape
        torch.Size([4, 3, 32, 32])
    """

    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    rotation: float = 0.0
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel: int = 0

    def __call__(
        self,
        images: Tensor,
        generator: torch.Generator | None = None,
        *,
        group: int = 1,
        colour_runs: Sequence[int] | None = None,
    ) -> Tensor:
        """Augment ``images`` (uint8 in [0, 255] or float in [0, 1]) -> normalised float views.

        ``group``: consecutive runs of ``group`` images share every random draw (the frames of one
        clip, ``views.clips``); 1 draws per image. ``colour_runs``: split each group into runs of
        these lengths (summing to ``group``) that draw their colour jitter and grayscale
        separately (several views of one clip with one crop).
        """
        if images.shape[0] % group:
            raise ValueError(f"group {group} does not divide the batch of {images.shape[0]} images")
        colour: int | Tensor = group
        if colour_runs is not None:
            if sum(colour_runs) != group:
                raise ValueError(f"colour_runs {list(colour_runs)} must sum to the group of {group} images")
            colour = torch.tensor(list(colour_runs), device=images.device).repeat(images.shape[0] // group)
        x = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
        x = self._geometry(x, generator, group)
        if self.jitter_p > 0 and any(self.jitter):
            x = self._jitter(x, generator, colour)
        if self.grayscale_p > 0 and x.shape[1] == 3:
            x = self._grayscale(x, generator, colour)
        if self.blur_p > 0:
            x = self._blur(x, generator, group)
        return normalize_images(x, self.mean, self.std)

    def _rand(
        self, n: int, generator: torch.Generator | None, device: torch.device, group: int | Tensor = 1, *rest: int
    ) -> Tensor:
        """``[n, *rest]`` uniform draws, one per run of ``group`` rows (repeated within the run);
        ``group`` may also be the lengths of consecutive runs (a tensor summing to ``n``)."""
        if isinstance(group, Tensor):
            draws = torch.rand(len(group), *rest, generator=generator, device=device)
            return draws.repeat_interleave(group, dim=0)
        draws = torch.rand(n // group, *rest, generator=generator, device=device)
        return draws if group == 1 else draws.repeat_interleave(group, dim=0)

    def _geometry(self, x: Tensor, g: torch.Generator | None, group: int = 1) -> Tensor:
        b, _, h, w = x.shape
        dev = x.device
        attempts = 10
        area = self.crop_scale[0] + (self.crop_scale[1] - self.crop_scale[0]) * self._rand(b, g, dev, group, attempts)
        log_lo, log_hi = math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])
        ratio = torch.exp(log_lo + (log_hi - log_lo) * self._rand(b, g, dev, group, attempts))
        cw = torch.sqrt(area * ratio)  # fractions of the width / height (torchvision rounds to pixels)
        ch = torch.sqrt(area / ratio)
        ok = (cw <= 1) & (ch <= 1)
        first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((b,), -1, device=dev))
        rows = torch.arange(b, device=dev)
        fallback = first < 0
        cw = torch.where(fallback, torch.ones(b, device=dev), cw[rows, first.clamp_min(0)])
        ch = torch.where(fallback, torch.ones(b, device=dev), ch[rows, first.clamp_min(0)])
        cx = (self._rand(b, g, dev, group) * 2 - 1) * (1 - cw)  # centre in [-1, 1] coordinates
        cy = (self._rand(b, g, dev, group) * 2 - 1) * (1 - ch)
        sign = torch.ones(b, device=dev)
        if self.flip:
            sign = torch.where(self._rand(b, g, dev, group) < 0.5, -sign, sign)
        angle = (self._rand(b, g, dev, group) * 2 - 1) * math.radians(self.rotation)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack(
            [
                torch.stack([cw * cos * sign, -ch * sin, cx], dim=1),
                torch.stack([cw * sin * sign, ch * cos, cy], dim=1),
            ],
            dim=1,
        )
        grid = F.affine_grid(theta, [b, x.shape[1], self.size, self.size], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def _jitter(self, x: Tensor, g: torch.Generator | None, group: int | Tensor = 1) -> Tensor:
        b, dev = x.shape[0], x.device
        apply = self._rand(b, g, dev, group) < self.jitter_p

        def factor(strength: float) -> Tensor:
            f = 1 + strength * (2 * self._rand(b, g, dev, group) - 1)
            return torch.where(apply, f.clamp_min(0), torch.ones_like(f))[:, None, None, None]

        bright, contrast, saturation, hue = self.jitter
        if bright:
            x = (x * factor(bright)).clamp_(0, 1)
        if contrast:
            mean = _luma(x).mean(dim=(1, 2, 3), keepdim=True)
            x = ((x - mean) * factor(contrast) + mean).clamp_(0, 1)
        if x.shape[1] != 3:
            return x
        if saturation:
            gray = _luma(x)
            x = ((x - gray) * factor(saturation) + gray).clamp_(0, 1)
        if hue:
            shift = torch.where(apply, hue * (2 * self._rand(b, g, dev, group) - 1), torch.zeros(b, device=dev))
            x = _rotate_hue(x, shift * 2 * math.pi)
        return x

    def _grayscale(self, x: Tensor, g: torch.Generator | None, group: int | Tensor = 1) -> Tensor:
        gray = _luma(x).expand_as(x)
        pick = (self._rand(x.shape[0], g, x.device, group) < self.grayscale_p)[:, None, None, None]
        return torch.where(pick, gray, x)

    def _blur(self, x: Tensor, g: torch.Generator | None, group: int = 1) -> Tensor:
        b, c, h, w = x.shape
        dev = x.device
        k = self.blur_kernel or max(3, (self.size // 10) | 1)
        lo, hi = self.blur_sigma
        sigma = lo + (hi - lo) * self._rand(b, g, dev, group)
        apply = self._rand(b, g, dev, group) < self.blur_p
        offsets = torch.arange(k, device=dev, dtype=x.dtype) - k // 2
        kernel = torch.exp(-(offsets[None, :] ** 2) / (2 * sigma[:, None] ** 2))
        identity = (offsets == 0).to(x.dtype).expand(b, k)
        kernel = torch.where(apply[:, None], kernel / kernel.sum(1, keepdim=True), identity)
        weight = kernel.repeat_interleave(c, dim=0)  # [b*c, k]
        flat = F.pad(x.reshape(1, b * c, h, w), (k // 2, k // 2, k // 2, k // 2), mode="reflect")
        flat = F.conv2d(flat, weight[:, None, :, None], groups=b * c)
        flat = F.conv2d(flat, weight[:, None, None, :], groups=b * c)
        return flat.view(b, c, h, w)


def _mix_channels(matrix: Tensor, x: Tensor) -> Tensor:
    """``out[:, o] = sum_c matrix[o, c] * x[:, c]`` for ``x`` ``[B, C, H, W]``. A weighted sum of channel
    planes: a 1x1 ``conv2d`` computes the same but is an order of magnitude slower on CPUs here
    (``benchmarks/views.py``)."""
    planes = x.unbind(1)
    return torch.stack([sum(w * p for w, p in zip(row.tolist(), planes, strict=True)) for row in matrix], dim=1)


def _luma(x: Tensor) -> Tensor:
    if x.shape[1] != 3:
        return x.mean(dim=1, keepdim=True)
    return _mix_channels(_GRAY[None, :], x)


def _rotate_hue(x: Tensor, angle: Tensor) -> Tensor:
    yiq = _mix_channels(_RGB_TO_YIQ, x)
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], dim=1)
    return _mix_channels(_YIQ_TO_RGB, yiq).clamp_(0, 1)


def normalize_images(x: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """``(x - mean) / std`` per channel; ``uint8`` inputs are scaled to [0, 1] first."""
    if x.dtype == torch.uint8:
        x = x.float().div_(255)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device)[None, :, None, None]
    s = torch.tensor(std, dtype=x.dtype, device=x.device)[None, :, None, None]
    return (x - m) / s


def _moco_v2(size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> ViewAugmentation:
    return ViewAugmentation(size, mean, std)


def _moco_cifar_demo(size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> ViewAugmentation:
    """MoCo's CIFAR-10 demo: default crop scale (0.08, 1), no blur."""
    return ViewAugmentation(size, mean, std, crop_scale=(0.08, 1.0), blur_p=0.0)


def _simclr(size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> ViewAugmentation:
    return ViewAugmentation(size, mean, std, crop_scale=(0.08, 1.0), blur_kernel=3)


def _digits(size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> ViewAugmentation:
    """[design] For one-channel glyphs: mild crops, +-10 degree rotation, no flip, no colour."""
    return ViewAugmentation(
        size,
        mean,
        std,
        crop_scale=(0.5, 1.0),
        crop_ratio=(0.8, 1.25),
        flip=False,
        rotation=10.0,
        jitter=(0.4, 0.4, 0.0, 0.0),
        grayscale_p=0.0,
        blur_sigma=(0.1, 1.0),
        blur_kernel=3,
    )


def _motion(size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> ViewAugmentation:
    """[design] For clips whose label is a direction of motion: no flip (it would turn east into
    west), milder crops, colour jitter and grayscale kept, no blur (frames of 32 px)."""
    return ViewAugmentation(size, mean, std, crop_scale=(0.5, 1.0), flip=False, blur_p=0.0)


PRESETS = {
    "moco_v2": _moco_v2,
    "moco_cifar_demo": _moco_cifar_demo,
    "simclr": _simclr,
    "digits": _digits,
    "motion": _motion,
}


def resolve_preset(name: str, channels: int, size: int) -> str:
    """``auto``: ``digits`` for one-channel images, else a natural-image preset — ``moco_v2``
    (ImageNet-style crops, blur) from 64 px up, ``simclr`` (3x3 blur) below; other names as given."""
    if name != "auto":
        return name
    if channels == 1:
        return "digits"
    return "moco_v2" if size >= 64 else "simclr"


def build_augmentation(
    name: str, size: int, mean: tuple[float, ...], std: tuple[float, ...], **overrides: object
) -> ViewAugmentation:
    """A preset by name (``moco_v2``, ``moco_cifar_demo``, ``simclr``, ``digits``, ``motion``, or
    ``auto``: see ``resolve_preset``), with overrides."""
    name = resolve_preset(name, len(mean), size)
    if name not in PRESETS:
        raise ValueError(f"unknown augmentation {name!r}; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name](size, tuple(mean), tuple(std)), **overrides)  # type: ignore[arg-type]
