"""Paired hazy/clear images for dehazing (AECR-Net, ``docs/methods/aecr.md``).

- ``haze``: the atmospheric scattering model ``I = J t + A (1 - t)``, ``t = exp(-b d)``.
- ``synthetic_haze``: the default data, no download: 64x64 crops of real photos shipped by
  scikit-image (``skimage.data``: five colour photos and five grayscale ones, replicated to RGB,
  for texture variety) and scikit-learn (``load_sample_images``), hazed with a smooth depth field
  (vertical ramp + blurred noise); crops of ``stereo_motorcycle`` use its real disparity as depth.
  Training crops come from the left 3/4 of every photo, test crops from the right 1/4: disjoint
  pixels, the same kinds of scene. (Held-out *photos* made a test set of brighter scenes with
  lighter haze than any training photo: 17.9 dB hazy PSNR against 12.9 dB in training.)
- ``paired_folder``: a RESIDE-style folder ``hazy/`` + ``clear/`` (or ``gt/``) where several hazy
  images share one clear image by the SOTS/ITS naming ``<scene>_<k>[_<beta>].png`` -> ``<scene>.png``.
- ``PairedCrops``: random crops of file pairs, read lazily (a RESIDE ITS folder does not fit in
  memory); flips and 90° rotations are applied to both images alike by the method, on the batch.

Images stay in [0, 1] without normalisation (the official code feeds them so, to the network and
to VGG).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from contrastkit.data.errors import DataError
from contrastkit.data.images import data_root
from contrastkit.registry import DataSettings, register_dataset

__all__ = [
    "DEHAZE_TASK",
    "IMAGE_SUFFIXES",
    "DehazeSet",
    "PairedCrops",
    "haze",
    "paired_folder",
    "check_pair_sizes",
    "read_image",
    "read_pair",
    "smooth_depth",
    "sots_pairs",
    "synthetic_haze",
]

DEHAZE_TASK = "dehaze"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
PHOTOS = (
    "astronaut",
    "coffee",
    "rocket",
    "chelsea",
    "motorcycle_left",
    "china.jpg",
    "flower.jpg",
    "camera",
    "grass",
    "gravel",
    "brick",
    "coins",
)
TRAIN_FRACTION = 0.75


@dataclass
class DehazeSet:
    """Training pairs (in memory ``uint8 [N, 3, c, c]`` or lazily read ``PairedCrops``) and test
    pairs at full size (lists of ``uint8 [3, H, W]``), with names for the report."""

    name: str
    train: dict[str, Tensor] | PairedCrops
    test_hazy: list[Tensor]
    test_clear: list[Tensor]
    test_names: list[str]
    source: str
    extra_tests: dict[str, tuple[list[Tensor], list[Tensor], list[str]]] = field(default_factory=dict)


def haze(clear: Tensor, depth: Tensor, scattering: Tensor | float, airlight: Tensor | float) -> Tensor:
    """``I = J t + A (1 - t)`` with ``t = exp(-scattering * depth)``, clamped to [0, 1].

    Args:
        clear: ``[..., 3, H, W]`` in [0, 1]; depth: ``[..., 1, H, W]`` (or broadcastable) >= 0.
        scattering: the coefficient ``b`` (per image ``[..., 1, 1, 1]`` or a float).
        airlight: ``A`` (per image and channel ``[..., 3, 1, 1]`` or a float).
    """
    t = torch.exp(-torch.as_tensor(scattering, dtype=clear.dtype) * depth)
    return (clear * t + torch.as_tensor(airlight, dtype=clear.dtype) * (1 - t)).clamp(0, 1)


def smooth_depth(n: int, size: int, g: torch.Generator, sigma: float = 8.0) -> Tensor:
    """``[n, 1, size, size]`` in [0, 1]: a vertical ramp (far at the top) plus Gaussian-blurred noise."""
    ramp = torch.linspace(1, 0, size)[None, None, :, None].expand(n, 1, size, size)
    radius = int(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = k / k.sum()
    noise = torch.randn(n, 1, size + 2 * radius, size + 2 * radius, generator=g)
    noise = F.conv2d(F.conv2d(noise, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
    noise = noise / noise.flatten(1).std(1).clamp_min(1e-6)[:, None, None, None]
    d = ramp + 0.3 * noise
    lo, hi = d.flatten(1).amin(1)[:, None, None, None], d.flatten(1).amax(1)[:, None, None, None]
    return (d - lo) / (hi - lo).clamp_min(1e-6)


def _photo(name: str) -> np.ndarray:
    if name.endswith(".jpg"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)
    try:
        import skimage.data
    except ImportError:
        raise DataError(
            "the synthetic dehazing data crops photos shipped by scikit-image: pip install 'contrastkit[restoration]'"
        ) from None
    if name == "motorcycle_left":
        return skimage.data.stereo_motorcycle()[0]
    image = getattr(skimage.data, name)()
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


def _motorcycle_depth() -> np.ndarray:
    """Depth in [0, 1] from the real disparity of ``stereo_motorcycle`` (depth ~ 1 / disparity)."""
    import skimage.data

    _, _, disparity = skimage.data.stereo_motorcycle()
    d = np.asarray(disparity, dtype=np.float64)
    valid = np.isfinite(d) & (d > 0)
    depth = np.where(valid, 1.0 / np.where(valid, d, 1.0), np.nan)
    lo, hi = np.nanpercentile(depth, 1), np.nanpercentile(depth, 99)
    depth = np.clip((depth - lo) / (hi - lo), 0, 1)
    return np.nan_to_num(depth, nan=1.0).astype(np.float32)


@functools.cache  # training and test crops (and every seed) share one decode
def _photo_tensor(name: str, scale: float, min_width: int = 0) -> tuple[Tensor, Tensor | None]:
    """The photo in [0, 1], downscaled by ``scale`` but kept at least ``min_width`` px wide; its depth if real."""
    image = torch.from_numpy(np.array(_photo(name))).permute(2, 0, 1).float()[None] / 255
    depth = torch.from_numpy(_motorcycle_depth())[None, None] if name == "motorcycle_left" else None
    scale = min(1.0, max(scale, min_width / image.shape[3]))
    size = (round(image.shape[2] * scale), round(image.shape[3] * scale))
    image = F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)
    if depth is not None:
        depth = F.interpolate(depth, size=size, mode="bilinear", align_corners=False)
    return image[0], None if depth is None else depth[0]


def _hazy_crops(
    photos: tuple[str, ...], n: int, size: int, scale: float, region: tuple[float, float], g: torch.Generator
) -> tuple[Tensor, Tensor]:
    """``n`` hazy/clear crops, photo after photo, each inside the columns ``region`` (fractions of the width)."""
    narrowest = min(TRAIN_FRACTION, 1 - TRAIN_FRACTION)  # both regions of a photo fit a crop at one scale
    loaded = [_photo_tensor(p, scale, int(np.ceil(size / narrowest)) + 1) for p in photos]
    clear = torch.empty(n, 3, size, size)
    depth = smooth_depth(n, size, g)
    for i in range(n):
        image, real_depth = loaded[i % len(loaded)]
        lo, hi = int(region[0] * image.shape[2]), int(region[1] * image.shape[2])
        if hi - lo < size or image.shape[1] < size:
            raise DataError(f"photo {photos[i % len(loaded)]} is too small for {size}px crops in columns {lo}-{hi}")
        top = int(torch.randint(image.shape[1] - size + 1, (1,), generator=g))
        left = lo + int(torch.randint(hi - lo - size + 1, (1,), generator=g))
        clear[i] = image[:, top : top + size, left : left + size]
        if real_depth is not None:
            depth[i] = real_depth[:, top : top + size, left : left + size]
    scattering = 0.6 + 1.2 * torch.rand(n, 1, 1, 1, generator=g)
    airlight = (0.7 + 0.3 * torch.rand(n, 1, 1, 1, generator=g)) + 0.05 * (2 * torch.rand(n, 3, 1, 1, generator=g) - 1)
    hazy = haze(clear, depth, scattering, airlight.clamp(0, 1))
    return _to_uint8(hazy), _to_uint8(clear)


def _to_uint8(x: Tensor) -> Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def synthetic_haze(
    seed: int = 0, *, train: int = 2000, test: int = 200, size: int = 64, scale: float = 0.5
) -> DehazeSet:
    """Our AECR protocol on real photos (see the module docstring): ``train`` and ``test``
    crops of ``size`` px from photos downscaled by ``scale``, training crops from the left
    ``TRAIN_FRACTION`` of each photo's width and test crops from the rest (disjoint pixels, the same
    kinds of scene); b ~ U[0.6, 1.8], A ~ U[0.7, 1] +/- 0.05 per channel."""
    g = torch.Generator().manual_seed(seed)
    train_hazy, train_clear = _hazy_crops(PHOTOS, train, size, scale, (0.0, TRAIN_FRACTION), g)
    g_test = torch.Generator().manual_seed(10_000 + seed)
    test_hazy, test_clear = _hazy_crops(PHOTOS, test, size, scale, (TRAIN_FRACTION, 1.0), g_test)
    names = [f"{PHOTOS[i % len(PHOTOS)].split('.')[0]}#{i}" for i in range(test)]
    return DehazeSet(
        "synthetic_haze",
        {"hazy": train_hazy, "clear": train_clear},
        list(test_hazy),
        list(test_clear),
        names,
        f"synthetic haze I = J t + A (1 - t) on {size}px crops of {len(PHOTOS)} real photos ({', '.join(PHOTOS)}; "
        f"motorcycle with its real stereo disparity as depth), training crops from the left {TRAIN_FRACTION:.0%} of "
        f"each photo, test crops from the rest; {train} train / {test} test pairs, seed {seed}",
    )


def read_image(path: str | os.PathLike[str]) -> Tensor:
    """``uint8 [3, H, W]`` RGB of an image file (grayscale and RGBA converted); ``DataError`` if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1).contiguous()
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(f"{path} is not a readable image ({type(err).__name__})") from None


_SCENE = re.compile(r"^([^_]+)_")


def _subfolder(root: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise DataError(f"{root} has no {' or '.join(n + '/' for n in names)} folder")


def paired_folder(root: str | os.PathLike[str]) -> list[tuple[Path, Path]]:
    """``(hazy, clear)`` file pairs of a RESIDE-style folder: ``hazy/`` (or ``haze/``) and ``clear/``
    (or ``gt/``); a hazy file ``<scene>.<ext>`` or ``<scene>_<k>[...].<ext>`` pairs with
    ``<scene>.<any image ext>``. ``DataError`` names a hazy image without its clear one."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"paired image folder {root} not found")
    hazy_dir, clear_dir = _subfolder(root, ("hazy", "haze")), _subfolder(root, ("clear", "gt", "GT"))
    clear = {p.stem: p for p in clear_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    pairs = []
    for h in sorted(p for p in hazy_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        match = clear.get(h.stem)
        if match is None and (m := _SCENE.match(h.stem)):
            match = clear.get(m.group(1))
        if match is None:
            raise DataError(f"{h} has no clear image {clear_dir}/{h.stem.split('_')[0]}.* (RESIDE naming)")
        pairs.append((h, match))
    if not pairs:
        raise DataError(f"{hazy_dir} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return pairs


def _border(hazy_path: Path, hazy_wh: tuple[int, int], clear_path: Path, clear_wh: tuple[int, int]) -> tuple[int, int]:
    """``(dh, dw)`` by which the clear image is larger: official SOTS ground truths carry a 10-px
    white border (even margins up to 20 px are accepted); any other mismatch is a ``DataError``."""
    dw, dh = clear_wh[0] - hazy_wh[0], clear_wh[1] - hazy_wh[1]
    if (dh, dw) != (0, 0) and not (0 <= dh <= 20 and 0 <= dw <= 20 and dh % 2 == 0 and dw % 2 == 0):
        raise DataError(
            f"pair sizes differ: {hazy_path} is {hazy_wh[0]}x{hazy_wh[1]}, {clear_path} is {clear_wh[0]}x{clear_wh[1]}"
        )
    return dh, dw


def read_pair(hazy_path: Path, clear_path: Path) -> tuple[Tensor, Tensor]:
    """Both images ``uint8 [3, H, W]``, the clear one centre-cropped to the hazy size (``_border``)."""
    hazy, clear = read_image(hazy_path), read_image(clear_path)
    h, w = hazy.shape[1:]
    dh, dw = _border(hazy_path, (w, h), clear_path, (clear.shape[2], clear.shape[1]))
    return hazy, clear[:, dh // 2 : dh // 2 + h, dw // 2 : dw // 2 + w]


def check_pair_sizes(pairs: list[tuple[Path, Path]]) -> None:
    """``read_pair``'s size rule from the file headers only (no decoding): ``DataError`` names the first bad pair."""
    from PIL import Image

    for hazy_path, clear_path in pairs:
        try:
            with Image.open(hazy_path) as h, Image.open(clear_path) as c:
                hazy_wh, clear_wh = h.size, c.size
        except OSError as err:
            raise DataError(f"{hazy_path} or {clear_path} is not a readable image ({type(err).__name__})") from None
        _border(hazy_path, hazy_wh, clear_path, clear_wh)


class PairedCrops(torch.utils.data.Dataset):
    """Random ``crop`` x ``crop`` crops of file pairs, the same window in both images, read lazily.

    ``__getitems__`` returns a dictionary batch ``{"hazy", "clear": uint8 [B, 3, crop, crop],
    "index"}`` like ``ArrayDataset``. Images smaller than ``crop`` are reflect-padded.
    """

    def __init__(self, pairs: list[tuple[Path, Path]], crop: int, seed: int = 0) -> None:
        self.pairs, self.crop = pairs, crop
        self.g = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.pairs)

    def _one(self, index: int) -> tuple[Tensor, Tensor]:
        hazy, clear = read_pair(*self.pairs[index])
        both = torch.cat([hazy, clear]).float()
        h, w = both.shape[1:]
        if h < self.crop or w < self.crop:
            ph, pw = max(0, self.crop - h), max(0, self.crop - w)
            both = F.pad(both[None], (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")[0]
            h, w = both.shape[1:]
        top = int(torch.randint(h - self.crop + 1, (1,), generator=self.g))
        left = int(torch.randint(w - self.crop + 1, (1,), generator=self.g))
        window = both[:, top : top + self.crop, left : left + self.crop].to(torch.uint8)
        return window[:3], window[3:]

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        hazy, clear = zip(*(self._one(i) for i in indices), strict=True)
        return {"hazy": torch.stack(hazy), "clear": torch.stack(clear), "index": torch.as_tensor(indices)}


def sots_pairs(root: str | os.PathLike[str] | None) -> tuple[list[Tensor], list[Tensor], list[str]] | None:
    """The 5 SOTS-indoor pairs kept under ``<data root>/dehaze/sots_indoor_d4`` (None if absent)."""
    base = data_root(root)
    folder = base / "dehaze" / "sots_indoor_d4" if base is not None else None
    if folder is None or not folder.is_dir():
        return None
    files = paired_folder(folder)
    pairs = [read_pair(h, c) for h, c in files]
    return [p[0] for p in pairs], [p[1] for p in pairs], [h.stem for h, _ in files]


def _with_sots(data: DehazeSet, root: str | os.PathLike[str] | None) -> DehazeSet:
    sots = sots_pairs(root)
    if sots is not None:
        data.extra_tests["sots"] = sots
    return data


class DehazeData(DataSettings):
    """``image_size``: the side of the random training crops."""

    image_size: int = Field(16, gt=0)


class ResideData(DehazeData):
    """``path``: a RESIDE-style folder with ``train/`` and ``test/``."""

    path: str | None = None


@register_dataset(
    "synthetic_haze", task=DEHAZE_TASK, settings=DehazeData, summary="haze model on real photos of scikit-image/-learn"
)
def _synthetic_haze_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> DehazeSet:
    base = data_root(root)
    if base is not None and not (base / "dehaze" / "sots_indoor_d4").is_dir():
        raise DataError(
            f"{base} holds no dehaze/sots_indoor_d4/ (the SOTS pairs synthetic_haze scores beside its bundled "
            "photos); point --data-root at the folder that holds dehaze/, or leave it out to use the photos alone"
        )
    train = settings.train_subset or 2000
    test = settings.test_subset or 200
    return _with_sots(synthetic_haze(seed, train=train, test=test, size=settings.image_size), root)


@register_dataset(
    "reside", task=DEHAZE_TASK, settings=ResideData, summary="your RESIDE-style folder: <path>/train and <path>/test"
)
def _reside_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> DehazeSet:
    if not settings.path:
        raise DataError("dataset reside needs data.path: a folder with train/{hazy,clear} and test/{hazy,clear}")
    path = Path(settings.path).expanduser()
    train_pairs = paired_folder(path / "train")
    test_pairs = paired_folder(path / "test")
    if settings.train_subset:
        train_pairs = train_pairs[: settings.train_subset]
    if settings.test_subset:
        test_pairs = test_pairs[: settings.test_subset]
    check_pair_sizes(train_pairs)  # a mismatch fails now, naming the pair, not mid-epoch
    test = [read_pair(h, c) for h, c in test_pairs]
    return DehazeSet(
        "reside",
        PairedCrops(train_pairs, settings.image_size, seed),
        [h for h, _ in test],
        [c for _, c in test],
        [h.stem for h, _ in test_pairs],
        f"RESIDE-style pairs from {path} ({len(train_pairs)} train / {len(test_pairs)} test, "
        f"random {settings.image_size}px training crops)",
    )
