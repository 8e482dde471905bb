"""Contrastive regularisation (aecr.md section 2) against its card oracles (section 8) and a loop reference."""

from __future__ import annotations

import pytest
import torch

from contrastkit.functional.restoration import AECR_LAYER_WEIGHTS, contrastive_regularization
from contrastkit.nn.extractors import random_vgg19_features

VGG = random_vgg19_features(seed=0, width_divisor=8)


def images(seed: int = 0, size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(2, 3, size, size, generator=g) for _ in range(3))  # type: ignore[return-value]


def loop_reference(o, j, i, extractor, weights, negatives=True):
    total = 0.0
    for w, a, p, n in zip(weights, extractor(o), extractor(j), extractor(i), strict=True):
        d_pos = sum(abs(x - y) for x, y in zip(a.flatten().tolist(), p.flatten().tolist(), strict=True)) / a.numel()
        if not negatives:
            total += w * d_pos
            continue
        d_neg = sum(abs(x - y) for x, y in zip(a.flatten().tolist(), n.flatten().tolist(), strict=True)) / a.numel()
        total += w * d_pos / (d_neg + 1e-7)
    return total


def test_zero_when_restored_equals_clear_and_never_negative() -> None:
    o, j, i = images()
    assert contrastive_regularization(j, j, i, VGG).item() == 0.0
    for seed in range(5):
        assert contrastive_regularization(*images(seed), VGG).item() >= 0


def test_matches_loop_reference_with_and_without_negatives() -> None:
    o, j, i = images(1, 16)
    for negatives in (True, False):
        ours = contrastive_regularization(o, j, i, VGG, negatives=negatives).item()
        assert ours == pytest.approx(loop_reference(o, j, i, VGG, AECR_LAYER_WEIGHTS, negatives), rel=1e-4)


def test_ablation_is_the_weighted_perceptual_l1() -> None:
    o, j, _ = images(2)
    expected = sum(w * (a - p).abs().mean() for w, a, p in zip(AECR_LAYER_WEIGHTS, VGG(o), VGG(j), strict=True))
    ours = contrastive_regularization(o, j, None, VGG, negatives=False)
    assert ours.item() == pytest.approx(expected.item(), rel=1e-6)
    assert AECR_LAYER_WEIGHTS == (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def test_identity_extractor_is_hand_computable() -> None:
    o = torch.zeros(1, 1, 1, 2)
    j = torch.tensor([[[[1.0, 1.0]]]])
    i = torch.tensor([[[[2.0, 4.0]]]])
    cr = contrastive_regularization(o, j, i, lambda x: [x], weights=[1.0])
    assert cr.item() == pytest.approx(1.0 / (3.0 + 1e-7))


def test_gradients_reach_only_the_restored_image_and_the_extractor_is_frozen() -> None:
    o, j, i = (x.clone().requires_grad_(True) for x in images(3))
    contrastive_regularization(o, j, i, VGG).backward()
    assert o.grad is not None and o.grad.abs().sum() > 0
    assert j.grad is None and i.grad is None
    assert all(not p.requires_grad and p.grad is None for p in VGG.parameters())
    VGG.train()
    assert not VGG.training  # stays in eval mode


def test_errors_name_the_argument() -> None:
    o, j, i = images()
    with pytest.raises(ValueError, match="restored and clear"):
        contrastive_regularization(o, j[:, :, :8], i, VGG)
    with pytest.raises(ValueError, match="hazy is None"):
        contrastive_regularization(o, j, None, VGG)
    with pytest.raises(ValueError, match="weights has 2 entries"):
        contrastive_regularization(o, j, i, VGG, weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="B, C, H, W"):
        contrastive_regularization(o[0], j[0], i[0], VGG)
