"""How positive pairs are made: image views (video and graph views follow)."""

from contrastkit.views.image import PRESETS, ViewAugmentation, build_augmentation, normalize_images

__all__ = ["PRESETS", "ViewAugmentation", "build_augmentation", "normalize_images"]
