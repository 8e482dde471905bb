"""Real loaders and generated data; nothing downloads unless a recipe asks for it."""

from contrastkit.data.images import (
    DataError,
    ImageSplits,
    IndexedImages,
    data_root,
    load_cifar10,
    load_digits,
    load_image_folder,
)

__all__ = [
    "DataError",
    "ImageSplits",
    "IndexedImages",
    "data_root",
    "load_cifar10",
    "load_digits",
    "load_image_folder",
]
from contrastkit.data.module import EpochSampler, ImageDataModule  # noqa: E402

__all__ += ["EpochSampler", "ImageDataModule"]
