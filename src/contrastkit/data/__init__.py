"""Real loaders and generated data; nothing downloads unless a recipe asks for it.

``ArrayDataModule`` / ``EpochSampler`` import Lightning, so they load on first use: code that
only needs the loaders (a federated party, a graph script) does not pay for Lightning.
"""

from typing import Any

from contrastkit.data.errors import DataError
from contrastkit.data.images import (
    ImageSplits,
    data_root,
    load_cifar10,
    load_digits,
    load_image_folder,
)

__all__ = [
    "ArrayDataModule",
    "ArrayDataset",
    "DataError",
    "EpochSampler",
    "ImageSplits",
    "data_root",
    "load_cifar10",
    "load_digits",
    "load_image_folder",
]


def __getattr__(name: str) -> Any:
    if name in ("ArrayDataModule", "ArrayDataset", "EpochSampler"):
        from contrastkit.data import module

        return getattr(module, name)
    raise AttributeError(f"module 'contrastkit.data' has no attribute {name!r}")
