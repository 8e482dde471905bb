"""Your own images, streamed from disk: any folder tree of common image files, labelled by
class sub-folders or not labelled at all.

``ImageFiles`` behaves like a ``uint8 [N, 3, S, S]`` array whose rows are decoded when they are
indexed, so a training batch is read (by the DataLoader's worker processes) and nothing is held
in memory between steps. Each file is decoded to RGB, its shorter side resized to ``S`` and
centre-cropped; JPEGs are decoded at a reduced scale first when they are much larger than ``S``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

__all__ = ["IMAGE_SUFFIXES", "ImageFiles", "decode_image", "find_images", "folder_labels"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})


def find_images(root: str | os.PathLike[str]) -> list[Path]:
    """Image files anywhere under ``root`` (any nesting; hidden files and folders skipped), sorted."""
    base = Path(root)
    out = []
    for dirpath, dirnames, filenames in os.walk(base, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [
            Path(dirpath) / f for f in filenames if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES
        ]
    return sorted(out)


def folder_labels(
    files: Sequence[Path], root: Path, mode: Literal["auto", "folders", "none"] = "auto"
) -> tuple[Tensor, tuple[str, ...]] | None:
    """Labels from the first sub-folder under ``root`` of each file, or None (unlabelled).

    ``auto`` labels only when every file lies inside a sub-folder and there are at least two of
    them (the ImageFolder layout); ``folders`` insists on that layout; ``none`` never labels.
    """
    if mode == "none":
        return None
    parts = [f.relative_to(root).parts for f in files]
    layout = bool(parts) and all(len(p) >= 2 for p in parts) and len({p[0] for p in parts}) >= 2
    if not layout:
        if mode == "folders":
            raise ValueError(f"data.labels=folders needs every image of {root} inside one of two or more class folders")
        return None
    classes = tuple(sorted({p[0] for p in parts}))
    index = {c: i for i, c in enumerate(classes)}
    return torch.tensor([index[p[0]] for p in parts]), classes


def decode_image(path: Path, size: int) -> Tensor:
    """``uint8 [3, size, size]``: RGB, shorter side resized to ``size`` (antialiased), centre crop."""
    from PIL import Image

    with Image.open(path) as im:
        im.draft("RGB", (size, size))  # JPEG: decode at the smallest scale still >= size
        rgb = im.convert("RGB")
    w, h = rgb.size
    scale = size / min(w, h)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    rgb = rgb.resize(new, Image.Resampling.BILINEAR, reducing_gap=2.0)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    rgb = rgb.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1)


class ImageFiles:
    """A lazily decoded ``uint8 [N, 3, size, size]`` array of image files.

    Indexing with an int gives one image ``[3, S, S]``; with a slice, list or index tensor a
    batch ``[n, 3, S, S]``, decoded then. ``select`` gives a lazy subset. A file that cannot be
    decoded is replaced by the next readable one, with a warning naming it (a damaged file
    never ends a run hours in).
    """

    def __init__(self, files: Sequence[Path], size: int) -> None:
        if not files:
            raise ValueError("ImageFiles needs at least one file")
        self.files = list(files)
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.files), 3, self.size, self.size)

    def select(self, index: Tensor | Sequence[int]) -> ImageFiles:
        rows = torch.as_tensor(index, dtype=torch.long).tolist()
        return ImageFiles([self.files[i] for i in rows], self.size)

    def _read(self, i: int) -> Tensor:
        for step in range(len(self.files)):
            path = self.files[(i + step) % len(self.files)]
            try:
                return decode_image(path, self.size)
            except (OSError, ValueError, SyntaxError) as err:  # what PIL raises for damaged files
                warnings.warn(f"skipped unreadable image {path}: {err}", stacklevel=2)
        raise ValueError("none of the image files can be decoded")

    def __getitem__(self, index: int | slice | Tensor | Sequence[int]) -> Tensor:
        if isinstance(index, int):
            return self._read(index)
        if isinstance(index, slice):
            rows = list(range(len(self.files)))[index]
        else:
            rows = torch.as_tensor(index, dtype=torch.long).reshape(-1).tolist()
        if not rows:
            return torch.empty(0, 3, self.size, self.size, dtype=torch.uint8)
        return torch.stack([self._read(i) for i in rows])
