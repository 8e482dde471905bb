"""Dehazing data: the haze model (aecr.md oracle 8), the synthetic protocol, RESIDE-style folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from contrastkit.data.dehaze import (
    PHOTOS,
    PairedCrops,
    haze,
    paired_folder,
    read_pair,
    smooth_depth,
    synthetic_haze,
)
from contrastkit.data.errors import DataError


def test_haze_model_oracles() -> None:
    clear = torch.rand(2, 3, 8, 8) * 0.6
    depth = torch.rand(2, 1, 8, 8)
    assert torch.allclose(haze(clear, depth, 0.0, 0.8), clear)  # t = 1
    assert torch.allclose(haze(clear, torch.full_like(depth, 1e4), 1.0, 0.8), torch.full_like(clear, 0.8))  # t = 0
    lighter, heavier = haze(clear, depth, 0.5, 0.8), haze(clear, depth, 1.5, 0.8)
    assert (heavier >= lighter - 1e-6).all()  # J < A: more haze (smaller t) moves every pixel toward A


def test_smooth_depth_is_normalised_and_far_at_the_top() -> None:
    d = smooth_depth(4, 32, torch.Generator().manual_seed(0))
    assert d.shape == (4, 1, 32, 32)
    assert d.min() == 0 and d.max() == 1
    assert (d[:, :, :4].mean() > d[:, :, -4:].mean()).item()


def test_synthetic_haze_is_seeded_with_disjoint_photos() -> None:
    a, b = synthetic_haze(0, train=20, test=6), synthetic_haze(0, train=20, test=6)
    assert torch.equal(a.train["hazy"], b.train["hazy"]) and torch.equal(a.test_hazy[0], b.test_hazy[0])
    assert a.train["hazy"].shape == (20, 3, 64, 64) and a.train["hazy"].dtype == torch.uint8
    assert "motorcycle_left" in PHOTOS and "real stereo disparity" in a.source
    assert not torch.equal(synthetic_haze(1, train=20, test=6).train["hazy"], a.train["hazy"])
    assert (a.train["hazy"].float().mean() > a.train["clear"].float().mean()).item()  # haze brightens


def test_training_and_test_crops_come_from_disjoint_columns(monkeypatch) -> None:
    from contrastkit.data import dehaze

    image = torch.zeros(3, 80, 256)
    image[:, :, 192:] = 1.0  # the right quarter of the width is white
    monkeypatch.setattr(dehaze, "_photo_tensor", lambda name, scale, min_width=0: (image, None))
    data = dehaze.synthetic_haze(0, train=30, test=10, size=32)
    assert (data.train["clear"] == 0).all()
    assert all((c == 255).all() for c in data.test_clear)


def _png(path, array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def test_reside_naming_pairs_several_hazy_images_with_one_clear(tmp_path) -> None:
    rng = np.random.default_rng(0)
    _png(tmp_path / "clear" / "1400.png", rng.integers(0, 255, (12, 16, 3)))
    _png(tmp_path / "clear" / "7.png", rng.integers(0, 255, (12, 16, 3)))
    for name in ("1400_1.png", "1400_2.png", "7_3_0.84.png", "7.png"):
        _png(tmp_path / "hazy" / name, rng.integers(0, 255, (12, 16, 3)))
    (tmp_path / "hazy" / "notes.txt").write_text("not an image")
    pairs = paired_folder(tmp_path)
    assert [(h.name, c.name) for h, c in pairs] == [
        ("1400_1.png", "1400.png"),
        ("1400_2.png", "1400.png"),
        ("7.png", "7.png"),
        ("7_3_0.84.png", "7.png"),
    ]


def test_missing_clear_and_mismatched_sizes_name_the_file(tmp_path) -> None:
    _png(tmp_path / "hazy" / "3_1.png", np.zeros((12, 16, 3)))
    (tmp_path / "gt").mkdir()
    with pytest.raises(DataError, match="3_1.png has no clear image"):
        paired_folder(tmp_path)
    _png(tmp_path / "gt" / "3.png", np.zeros((12, 15, 3)))
    ((h, c),) = paired_folder(tmp_path)
    with pytest.raises(DataError, match="pair sizes differ: .*3_1.png is 16x12, .*3.png is 15x12"):
        read_pair(h, c)


def test_official_sots_white_border_is_cropped(tmp_path) -> None:
    clear = np.full((32, 36, 3), 255, dtype=np.uint8)
    clear[10:22, 10:26] = 7
    _png(tmp_path / "hazy" / "1_1.png", np.zeros((12, 16, 3)))
    _png(tmp_path / "clear" / "1.png", clear)
    hazy, gt = read_pair(*paired_folder(tmp_path)[0])
    assert gt.shape == hazy.shape and (gt == 7).all()


def test_paired_crops_take_the_same_window_from_both(tmp_path) -> None:
    image = np.random.default_rng(1).integers(0, 255, (40, 50, 3))
    _png(tmp_path / "hazy" / "1.png", image)
    _png(tmp_path / "clear" / "1.png", image)
    _png(tmp_path / "hazy" / "2.png", image[:20, :20])  # smaller than the crop: padded
    _png(tmp_path / "clear" / "2.png", image[:20, :20])
    crops = PairedCrops(paired_folder(tmp_path), crop=24, seed=0)
    batch = crops.__getitems__([0, 1, 0])
    assert batch["hazy"].shape == (3, 3, 24, 24) and torch.equal(batch["hazy"], batch["clear"])
    assert not torch.equal(batch["hazy"][0], batch["hazy"][2])  # a fresh window each draw


def test_sots_pairs_of_the_shared_data_when_present() -> None:
    from pathlib import Path

    from contrastkit.data.dehaze import sots_pairs

    root = Path(__file__).resolve().parents[3] / "shared" / "data"
    if not (root / "dehaze").is_dir():
        pytest.skip("../shared/data/dehaze is not beside the checkout")
    hazy, clear, names = sots_pairs(root)
    assert names == ["1400", "1402", "1403", "1404", "1405"]
    assert hazy[0].shape == clear[0].shape == (3, 460, 620)
