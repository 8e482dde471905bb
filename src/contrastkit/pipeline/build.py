"""Turn a validated recipe into data and a method."""

from __future__ import annotations

from pathlib import Path

from contrastkit.config import Recipe
from contrastkit.data.images import DataError, ImageSplits, data_root, load_cifar10, load_digits, load_image_folder
from contrastkit.methods.base import ContrastiveMethod, OptimizerSettings
from contrastkit.methods.densecl import DenseCL
from contrastkit.methods.mochi import MoCHi
from contrastkit.methods.moco import MoCo
from contrastkit.methods.simclr import SimCLR
from contrastkit.nn.backbones import build_backbone
from contrastkit.views.image import build_augmentation

__all__ = ["build_data", "build_method"]

METHODS: dict[str, type[ContrastiveMethod]] = {"simclr": SimCLR, "moco": MoCo, "mochi": MoCHi, "densecl": DenseCL}


def build_data(recipe: Recipe, root: str | Path | None = None) -> ImageSplits:
    """Load the recipe's dataset (``root`` overrides ``data.root`` and ``$CONTRASTKIT_DATA``)."""
    cfg = recipe.data
    if cfg.dataset == "digits":
        splits = load_digits(cfg.image_size, seed=recipe.trainer.seed)
    elif cfg.dataset == "cifar10":
        splits = load_cifar10(data_root(root or cfg.root), download=cfg.download)
    else:
        if not cfg.path:
            raise DataError("data.dataset=image_folder needs data.path (a folder of class sub-folders)")
        folder = Path(cfg.path)
        base = data_root(root or cfg.root)
        if not folder.is_absolute() and base is not None:
            folder = base / folder
        splits = load_image_folder(folder, cfg.image_size, seed=recipe.trainer.seed)
    if cfg.image_size != splits.image_size:
        raise DataError(
            f"data.image_size={cfg.image_size} but {splits.name} images are {splits.image_size}x{splits.image_size}"
        )
    return splits.subset(cfg.train_subset, cfg.test_subset, recipe.trainer.seed)


def build_method(recipe: Recipe, splits: ImageSplits) -> ContrastiveMethod:
    """The recipe's method with a fresh backbone (seed the RNG first for reproducible weights)."""
    params = recipe.method.model_dump()
    name = params.pop("name")
    backbone = build_backbone(recipe.model.backbone, splits.channels, recipe.model.width, splits.image_size)
    augmentation = build_augmentation(recipe.data.augmentation, splits.image_size, splits.mean, splits.std)
    o = recipe.optim
    optimizer = OptimizerSettings(o.optimizer, o.lr, o.momentum, o.weight_decay, o.warmup_epochs, o.cosine)
    return METHODS[name](
        backbone,
        augmentation,
        optimizer=optimizer,
        num_classes=splits.num_classes,
        knn_k=recipe.eval.knn_k,
        knn_temperature=recipe.eval.knn_temperature,
        seed=recipe.trainer.seed,
        **params,
    )
