"""Quadrant probe for dense features (``docs/methods/densecl.md``): a CPU-sized stand-in for detection
and segmentation transfer.

Four random images are tiled into a 2x2 mosaic; the frozen backbone's map of the mosaic is
average-pooled to 2x2 and one linear classifier must name the image in each quadrant. Global
pooling cannot solve this; only spatially faithful local features can.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit.evaluation.linear_probe import linear_probe

__all__ = ["make_mosaics", "quadrant_probe"]


def make_mosaics(images: Tensor, labels: Tensor, count: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``count`` mosaics ``[count, C, 2H, 2W]`` of random images and their labels ``[count, 4]``
    (quadrant order: top-left, top-right, bottom-left, bottom-right)."""
    g = torch.Generator().manual_seed(seed)
    pick = torch.randint(len(labels), (count, 4), generator=g)
    tiles = images[pick]  # [count, 4, C, H, W]
    top = torch.cat([tiles[:, 0], tiles[:, 1]], dim=-1)
    bottom = torch.cat([tiles[:, 2], tiles[:, 3]], dim=-1)
    return torch.cat([top, bottom], dim=-2), labels[pick]


@torch.no_grad()
def _quadrant_features(
    feature_map: Callable[[Tensor], Tensor], preprocess: Callable[[Tensor], Tensor], mosaics: Tensor, batch: int = 256
) -> Tensor:
    out = []
    for start in range(0, len(mosaics), batch):
        fmap = feature_map(preprocess(mosaics[start : start + batch]))
        pooled = F.adaptive_avg_pool2d(fmap, 2)  # [b, C, 2, 2]
        out.append(pooled.flatten(2).transpose(1, 2).reshape(-1, fmap.shape[1]).float())  # quadrant-major rows
    return torch.cat(out)


def quadrant_probe(
    feature_map: Callable[[Tensor], Tensor],
    preprocess: Callable[[Tensor], Tensor],
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    num_classes: int,
    *,
    train_mosaics: int = 5000,
    test_mosaics: int = 2000,
    epochs: int = 50,
    seed: int = 0,
) -> float:
    """Quadrant classification accuracy (percent) of a linear probe on pooled 2x2 map cells.

    Args:
        feature_map: ``images -> [B, C, h, w]`` (a backbone's ``forward_map``), frozen.
        preprocess: normalisation applied to uint8 mosaics.
        train, test: ``(images uint8 [N, C, H, W], labels [N])`` to build mosaics from.
        num_classes: number of classes.
    """
    train_x, train_y = make_mosaics(*train, train_mosaics, seed)
    test_x, test_y = make_mosaics(*test, test_mosaics, seed + 1)
    f_train = _quadrant_features(feature_map, preprocess, train_x)
    f_test = _quadrant_features(feature_map, preprocess, test_x)
    return linear_probe(f_train, train_y.reshape(-1), f_test, test_y.reshape(-1), num_classes, epochs=epochs, seed=seed)
