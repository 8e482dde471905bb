"""Batched per-sample views."""

from __future__ import annotations

import pytest
import torch

from contrastkit.views import PRESETS, ViewAugmentation, build_augmentation, normalize_images


def _images(n=8, c=3, size=16):
    return torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_shape_and_determinism(name):
    channels = 1 if name == "digits" else 3
    aug = build_augmentation(name, 12, (0.5,) * channels, (0.25,) * channels)
    x = _images(c=channels)
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    assert a.shape == (8, channels, 12, 12) and a.dtype == torch.float32
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, aug(x, torch.Generator().manual_seed(4)))


def test_identity_settings_return_the_normalised_image():
    aug = ViewAugmentation(
        16,
        (0.5, 0.5, 0.5),
        (0.25, 0.25, 0.25),
        crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0),
        flip=False,
        jitter_p=0.0,
        grayscale_p=0.0,
        blur_p=0.0,
    )
    x = _images()
    torch.testing.assert_close(aug(x), normalize_images(x, aug.mean, aug.std), atol=1e-5, rtol=1e-5)


def test_views_are_drawn_per_sample():
    aug = build_augmentation("moco_v2", 16, (0.5,) * 3, (0.25,) * 3)
    x = _images(1).expand(16, -1, -1, -1).contiguous()  # the same image 16 times
    out = aug(x, torch.Generator().manual_seed(0))
    assert len({tuple(v.flatten()[:20].tolist()) for v in out}) == 16


def test_grayscale_always_gives_equal_channels():
    aug = ViewAugmentation(16, (0.0,) * 3, (1.0,) * 3, grayscale_p=1.0, jitter_p=0.0, blur_p=0.0)
    out = aug(_images())
    torch.testing.assert_close(out[:, 0], out[:, 1])
    torch.testing.assert_close(out[:, 1], out[:, 2])


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown augmentation"):
        build_augmentation("autoaugment", 32, (0.5,), (0.5,))


_STILL = dict(
    crop_scale=(1.0, 1.0),
    crop_ratio=(1.0, 1.0),
    flip=False,
    rotation=0.0,
    jitter_p=0.0,
    grayscale_p=0.0,
    blur_p=0.0,
)


def _one_op(**op) -> list[torch.Tensor]:
    """32 views of one RGB image with every random operation off except ``op``."""
    aug = ViewAugmentation(16, (0.0,) * 3, (1.0,) * 3, **(_STILL | op))
    image = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    image = image.expand(32, -1, -1, -1).contiguous()
    return list(aug(image, torch.Generator().manual_seed(0)))


def _distinct(views: list[torch.Tensor]) -> int:
    return len({tuple(v.flatten().mul(1e4).round().tolist()) for v in views})


@pytest.mark.parametrize(
    "op",
    [
        dict(crop_scale=(0.3, 0.3)),  # only the crop centre is random
        dict(crop_scale=(0.2, 1.0), crop_ratio=(0.5, 2.0)),  # area and ratio too
        dict(rotation=30.0),
        dict(jitter=(0.4, 0.0, 0.0, 0.0), jitter_p=1.0),
        dict(jitter=(0.0, 0.4, 0.0, 0.0), jitter_p=1.0),
        dict(jitter=(0.0, 0.0, 0.4, 0.0), jitter_p=1.0),
        dict(jitter=(0.0, 0.0, 0.0, 0.1), jitter_p=1.0),
        dict(blur_p=1.0, blur_sigma=(0.1, 2.0), blur_kernel=5),
    ],
    ids=["crop-centre", "crop-area", "rotation", "brightness", "contrast", "saturation", "hue", "blur-sigma"],
)
def test_each_continuous_draw_is_made_per_sample(op):
    """One draw per batch would give 32 identical views of the identical images."""
    assert _distinct(_one_op(**op)) >= 24


@pytest.mark.parametrize(
    "op",
    [dict(flip=True), dict(grayscale_p=0.5), dict(jitter=(0.4, 0.0, 0.0, 0.0), jitter_p=0.5), dict(blur_p=0.5)],
    ids=["flip", "grayscale", "jitter-apply", "blur-apply"],
)
def test_each_coin_is_tossed_per_sample(op):
    """Both outcomes occur within one batch: some views keep the image, some are changed."""
    views = _one_op(**op)
    untouched = _one_op()[0]
    kept = sum(torch.allclose(v, untouched, atol=1e-6) for v in views)
    assert 4 <= kept <= 28, kept


def test_channel_mixing_equals_a_1x1_convolution():
    """The colour-space maps are weighted sums of channel planes (fast on CPU); a 1x1 conv2d is
    the reference they replace."""
    import torch.nn.functional as F

    from contrastkit.views.image import _GRAY, _RGB_TO_YIQ, _luma, _mix_channels

    x = torch.rand(5, 3, 9, 7, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(_mix_channels(_RGB_TO_YIQ, x), F.conv2d(x, _RGB_TO_YIQ[:, :, None, None]))
    torch.testing.assert_close(_luma(x), F.conv2d(x, _GRAY[None, :, None, None]))
