"""Image datasets as ``uint8 [N, C, H, W]`` arrays: scikit-learn digits and the CIFAR-10 copy in
memory, your own image folder streamed from disk (``ImageFiles``, decoded when indexed).

Views are drawn on whole batches later (``contrastkit.views``). Nothing downloads unless asked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from pydantic import Field, field_validator
from torch import Tensor

from contrastkit.data.errors import DataError
from contrastkit.data.image_files import IMAGE_SUFFIXES, ImageFiles, find_images, folder_labels
from contrastkit.registry import DataSettings, register_dataset

__all__ = [
    "AugmentedData",
    "CIFAR10Data",
    "ImageData",
    "ImageFolderData",
    "ImageSplits",
    "data_root",
    "load_cifar10",
    "load_digits",
    "load_image_folder",
    "stratified_label_subset",
]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass
class ImageSplits:
    """Train and test images (``uint8 [N, C, H, W]``), labels, class names and per-channel stats.

    The images of a folder read from disk are ``ImageFiles``, typed as ``Tensor``: they support
    what the pipeline does with the arrays (``len``, ``shape``, indexing by int, slice or index
    tensor, which decodes those rows). ``classes == ()`` means unlabelled (labels all 0).
    """

    name: str
    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_images.shape[-1])

    def subset(self, train: int | None, test: int | None, seed: int = 0) -> ImageSplits:
        """A stratified random subset (None keeps a split whole)."""
        return ImageSplits(
            self.name,
            *_stratified(self.train_images, self.train_labels, train, seed),
            *_stratified(self.test_images, self.test_labels, test, seed + 1),
            self.classes,
            self.mean,
            self.std,
            self.source + (f"; stratified subset train={train} test={test} (seed {seed})" if train or test else ""),
        )


def _stratified(images: Tensor, labels: Tensor, count: int | None, seed: int) -> tuple[Tensor, Tensor]:
    if count is None or count >= len(labels):
        return images, labels
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=g)
    classes = labels.unique()
    per_class = max(1, count // len(classes))
    keep = torch.cat([order[labels[order] == c][:per_class] for c in classes])
    keep = keep[torch.randperm(len(keep), generator=g)]
    return (images.select(keep) if isinstance(images, ImageFiles) else images[keep]), labels[keep]


def stratified_label_subset(labels: Tensor, fraction: float, generator: torch.Generator) -> Tensor:
    """Indices (sorted) of a random ``fraction`` of each class of ``labels`` ``[N]``, at least one per
    class: a folder's held-out files, and the labelled images of few-label evaluation."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    picked = []
    for c in torch.unique(labels):
        members = torch.nonzero(labels == c).flatten()
        keep = max(1, round(fraction * members.numel()))
        picked.append(members[torch.randperm(members.numel(), generator=generator)[:keep]])
    return torch.cat(picked).sort().values


def _channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = images[:: max(1, len(images) // 10_000)].float().div_(255)  # strided: files may be sorted by class
    return tuple(x.mean(dim=(0, 2, 3)).tolist()), tuple(x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())


def data_root(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """``explicit``, else ``$CONTRASTKIT_DATA``, else None (use data that needs no download)."""
    value = explicit or os.environ.get("CONTRASTKIT_DATA")
    return Path(value).expanduser() if value else None


def load_digits(size: int = 16, test_fraction: float = 0.2, seed: int = 0) -> ImageSplits:
    """scikit-learn's bundled 8x8 digits (1,797 images, no download), upsampled to ``size``.

    Split stratified into train/test with ``test_fraction``; one channel.
    """
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    images = torch.from_numpy(bunch.images).float().div(16.0).unsqueeze(1)  # [N, 1, 8, 8] in [0, 1]
    if size != 8:
        images = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = images.mul(255).round().clamp(0, 255).to(torch.uint8)
    labels = torch.from_numpy(bunch.target).long()
    g = torch.Generator().manual_seed(seed)
    test_mask = torch.zeros(len(labels), dtype=torch.bool)
    for c in range(10):
        idx = (labels == c).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        test_mask[idx[: int(round(len(idx) * test_fraction))]] = True
    mean, std = _channel_stats(images[~test_mask])
    return ImageSplits(
        "digits",
        images[~test_mask],
        labels[~test_mask],
        images[test_mask],
        labels[test_mask],
        tuple(str(i) for i in range(10)),
        mean,
        std,
        f"scikit-learn load_digits (bundled, 8x8 upsampled to {size}x{size}), stratified {1 - test_fraction:.0%} train",
    )


def load_cifar10(root: str | os.PathLike[str] | None, download: bool = False) -> ImageSplits:
    """CIFAR-10 from ``<root>/cifar10/{train,test}.npz`` (the offline copy; keys ``images``
    ``[N, 32, 32, 3]`` uint8 and ``labels``), else torchvision's copy under ``<root>/cifar10``
    when ``download`` is set (needs internet the first time).

    Raises:
        DataError: with the paths looked at when neither is available.
    """
    base = data_root(root)
    if base is None:
        raise DataError("CIFAR-10 needs a data root: pass --data-root DIR or set CONTRASTKIT_DATA")
    folder = base / "cifar10" if (base / "cifar10").is_dir() else base
    train_npz, test_npz = folder / "train.npz", folder / "test.npz"
    if train_npz.is_file() and test_npz.is_file():
        tr_x, tr_y, names = _read_npz(str(train_npz.resolve()))
        te_x, te_y, _ = _read_npz(str(test_npz.resolve()))
        source = f"{train_npz.parent} (npz copy)"
    elif download:
        from torchvision.datasets import CIFAR10

        tr, te = CIFAR10(str(folder), train=True, download=True), CIFAR10(str(folder), train=False, download=True)
        tr_x, tr_y = _from_hwc(tr.data), torch.tensor(tr.targets)
        te_x, te_y = _from_hwc(te.data), torch.tensor(te.targets)
        names, source = tuple(tr.classes), f"{folder} (torchvision CIFAR10)"
    else:
        raise DataError(
            f"CIFAR-10 not found: looked for {train_npz} and {test_npz}; "
            "point --data-root at a folder holding cifar10/train.npz, or set data.download=true"
        )
    mean, std = _channel_stats(tr_x)
    return ImageSplits("cifar10", tr_x, tr_y, te_x, te_y, names, mean, std, source)


def require_cifar10(root: str | os.PathLike[str] | None, why: str) -> ImageSplits:
    """The CIFAR-10 copy under ``root`` for a generated protocol that draws on it; without one,
    a ``DataError`` that starts with ``why`` and says where to point ``--data-root``."""
    base = data_root(root)
    if base is None or not ((base / "cifar10" / "train.npz").is_file() or (base / "train.npz").is_file()):
        raise DataError(f"{why}: point --data-root at a folder holding cifar10/train.npz and cifar10/test.npz")
    return load_cifar10(base)


@lru_cache(maxsize=4)
def _read_npz(path: str) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """Decode an image ``.npz`` once per process (decompressing CIFAR-10 takes seconds)."""
    with np.load(path) as data:
        names = tuple(str(n) for n in data["class_names"]) if "class_names" in data else CIFAR10_CLASSES
        return _from_hwc(data["images"]), torch.from_numpy(data["labels"]).long(), names


def _from_hwc(array: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).contiguous()


def load_image_folder(
    path: str | os.PathLike[str],
    size: int,
    test_fraction: float = 0.2,
    seed: int = 0,
    labels: Literal["auto", "folders", "none"] = "auto",
) -> ImageSplits:
    """Your own images under ``path`` (any nesting, any common format), streamed from disk.

    Labels come from class sub-folders (``folder_labels``); without them the splits are
    unlabelled (``classes == ()``, labels all 0). ``train/`` and ``test/`` sub-folders are used as
    given, else ``test_fraction`` of the files is held out (stratified when labelled, seeded).
    The images are ``ImageFiles`` (decoded when indexed); the channel mean and std are estimated
    on up to 256 training images.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")

    def scan(folder: Path) -> tuple[list[Path], Tensor, tuple[str, ...]]:
        files = find_images(folder)
        if not files:
            raise DataError(f"no images under {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        try:
            found = folder_labels(files, folder, labels)
        except ValueError as err:
            raise DataError(str(err)) from None
        return (files, *found) if found else (files, torch.zeros(len(files), dtype=torch.long), ())

    if (root / "train").is_dir() and (root / "test").is_dir():
        train_files, tr_y, classes = scan(root / "train")
        test_files, te_y, test_classes = scan(root / "test")
        if test_classes != classes:
            raise DataError(f"{root}/train and {root}/test name different classes: {classes} vs {test_classes}")
    else:
        files, y, classes = scan(root)
        if len(files) < 2:
            raise DataError(f"{root} holds one image; training needs more")
        is_test = torch.zeros(len(files), dtype=torch.bool)
        is_test[stratified_label_subset(y, test_fraction, torch.Generator().manual_seed(seed))] = True
        train_files = [f for f, t in zip(files, is_test.tolist(), strict=True) if not t]
        test_files = [f for f, t in zip(files, is_test.tolist(), strict=True) if t]
        tr_y, te_y = y[~is_test], y[is_test]
    train = ImageFiles(train_files, size)
    sample = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:256]
    mean, std = _channel_stats(train[sample])
    kind = f"{len(classes)} classes from sub-folders" if classes else "unlabelled"
    source = f"image folder {root} ({len(train_files)} train / {len(test_files)} test files, {kind}, read from disk)"
    test = ImageFiles(test_files, size)
    return ImageSplits(root.name, cast(Tensor, train), tr_y, cast(Tensor, test), te_y, classes, mean, std, source)


class AugmentedData(DataSettings):
    """Options of datasets whose task draws augmented views: ``image_size`` (pixels of the
    square frames) and ``augmentation`` (a preset of ``views.image``, or ``auto``)."""

    image_size: int = Field(16, gt=0)
    augmentation: str = "auto"

    @field_validator("augmentation")
    @classmethod
    def _preset(cls, name: str) -> str:
        from contrastkit.views.image import PRESETS

        if name != "auto" and name not in PRESETS:
            raise ValueError(f"unknown augmentation {name!r}; presets: auto, {', '.join(PRESETS)}")
        return name


class ImageData(AugmentedData):
    """Options of the ``images`` task's datasets (the task takes the stratified subsets)."""


class CIFAR10Data(ImageData):
    """``download``: fetch CIFAR-10 into the data root when it is not there (never in tests)."""

    download: bool = False


class ImageFolderData(ImageData):
    """``path``: the folder (relative paths resolve against the data root); ``labels``: class
    sub-folders (``folders``), none (``none``) or whichever the folder has (``auto``)."""

    path: str | None = None
    labels: Literal["auto", "folders", "none"] = "auto"


# Registered datasets of the "images" task: ``load(settings, root, seed) -> ImageSplits``.


@register_dataset(
    "digits",
    task="images",
    settings=ImageData,
    summary="scikit-learn's 8x8 digits, upscaled (ships with scikit-learn)",
    reads_root=False,
)
def _digits_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> ImageSplits:
    return load_digits(settings.image_size, seed=seed)


@register_dataset(
    "cifar10", task="images", settings=CIFAR10Data, summary="CIFAR-10 from a data root (npz or the python batches)"
)
def _cifar10_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> ImageSplits:
    return load_cifar10(data_root(root or settings.root), download=settings.download)


@register_dataset(
    "image_folder",
    task="images",
    settings=ImageFolderData,
    summary="your images at data.path (any nesting; class sub-folders optional)",
)
def _image_folder_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> ImageSplits:
    if not settings.path:
        raise DataError("data.dataset=image_folder needs data.path (a folder of images, class sub-folders optional)")
    folder = Path(settings.path)
    base = data_root(root or settings.root)
    if not folder.is_absolute() and base is not None:
        folder = base / folder
    return load_image_folder(folder, settings.image_size, seed=seed, labels=settings.labels)
