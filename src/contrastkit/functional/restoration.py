"""Contrastive regularisation for image restoration (AECR-Net, Wu et al., CVPR 2021, ``docs/methods/aecr.md``).

In the feature space of a frozen extractor the restored image (anchor) is pulled toward the
clear image (positive) and pushed away from the hazy input (negative), as a ratio of L1
distances per layer:

    CR(O, J, I) = sum_i w_i * D(G_i(O), G_i(J)) / (D(G_i(O), G_i(I)) + 1e-7),   D = mean |a - b|

Positive and negative features are detached (official ``models/CR.py``), so gradients reach only
the restored image. ``negatives=False`` is the paper's ablation: ``sum_i w_i D(G_i(O), G_i(J))``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from contrastkit.functional._validation import check_finite as check_finite_inputs

__all__ = ["AECR_LAYER_WEIGHTS", "contrastive_regularization"]

AECR_LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
"""The official per-layer weights for VGG-19 relu1_1 .. relu5_1."""

Extractor = Callable[[Tensor], Sequence[Tensor]]


def _check_images(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor) or not torch.is_floating_point(x):
        raise ValueError(f"{name} must be a floating-point torch.Tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    if x.dim() != 4:
        raise ValueError(f"{name} must be [B, C, H, W], got shape {tuple(x.shape)}")


def contrastive_regularization(
    restored: Tensor,
    clear: Tensor,
    hazy: Tensor | None,
    extractor: Extractor,
    weights: Sequence[float] = AECR_LAYER_WEIGHTS,
    *,
    negatives: bool = True,
    eps: float = 1e-7,
    check_finite: bool | None = None,
) -> Tensor:
    """AECR-Net's contrastive regularisation (a scalar).

    Args:
        restored: ``[B, C, H, W]`` network output O (the anchor; gradients flow here only).
        clear: ``[B, C, H, W]`` ground truth J (positive, detached).
        hazy: ``[B, C, H, W]`` network input I (negative, detached); may be None when
            ``negatives=False``.
        extractor: a frozen callable returning one feature map per layer (e.g.
            ``contrastkit.nn.dehaze.VGGFeatures``); images enter it as given (the official code
            feeds [0, 1] images without ImageNet normalisation).
        weights: one weight per returned layer.
        negatives: False gives the ablation without negatives (a weighted perceptual L1).
        eps: the official ``1e-7`` added to the negative distance.
        check_finite: as ``info_nce``.

    Returns:
        ``sum_i w_i * D_i(O, J) / (D_i(O, I) + eps)``, or ``sum_i w_i * D_i(O, J)`` without negatives.

    Examples:
        >>> o, j, i = torch.rand(3, 2, 3, 8, 8).unbind(0)
        >>> identity = lambda x: [x]
        >>> cr = contrastive_regularization(o, j, i, identity, weights=[1.0])
        >>> torch.allclose(cr, (o - j).abs().mean() / ((o - i).abs().mean() + 1e-7))
        True
    """
    _check_images("restored", restored)
    _check_images("clear", clear)
    if restored.shape != clear.shape:
        raise ValueError(
            f"restored and clear must have the same shape, got {tuple(restored.shape)} and {tuple(clear.shape)}"
        )
    if negatives:
        if hazy is None:
            raise ValueError("hazy is None; pass the network input, or negatives=False for the ablation")
        _check_images("hazy", hazy)
        if hazy.shape != restored.shape:
            raise ValueError(
                f"hazy and restored must have the same shape, got {tuple(hazy.shape)} and {tuple(restored.shape)}"
            )
    check_finite_inputs(check_finite, restored=restored, clear=clear, hazy=hazy)
    anchor = list(extractor(restored))
    with torch.no_grad():
        positive = [f.detach() for f in extractor(clear)]
        negative = [f.detach() for f in extractor(hazy)] if negatives and hazy is not None else None
    if len(weights) != len(anchor):
        raise ValueError(f"weights has {len(weights)} entries but the extractor returned {len(anchor)} layers")
    total = restored.new_zeros(())
    for i, (w, a, p) in enumerate(zip(weights, anchor, positive, strict=True)):
        d_pos = (a - p).abs().mean()
        if negative is None:
            total = total + w * d_pos
        else:
            total = total + w * d_pos / ((a - negative[i]).abs().mean() + eps)
    return total
