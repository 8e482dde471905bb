"""Your own image folder (issue 21 item 5): any nesting and format, labels optional, read from
disk batch by batch (by DataLoader workers), a natural-image preset for RGB by default."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from contrastkit.cli import main
from contrastkit.data.errors import DataError
from contrastkit.data.image_files import ImageFiles, decode_image, find_images, folder_labels
from contrastkit.data.images import load_image_folder
from contrastkit.views.image import resolve_preset


def _photo(path: Path, size: tuple[int, int], seed: int, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)


def _unlabelled_tree(root: Path, count: int = 24) -> None:
    """Nested folders, four formats, odd sizes, a grayscale and an RGBA file, hidden files."""
    suffixes = [".png", ".jpg", ".bmp", ".webp"]
    for i in range(count):
        folder = root / f"trip{i % 3}" / ("day" if i % 2 else "night") if i % 4 else root
        _photo(
            folder / f"img{i}{suffixes[i % 4]}",
            (40 + 3 * i, 30 + 2 * i),
            i,
            "L" if i == 5 else "RGBA" if i == 6 else "RGB",
        )
    (root / ".hidden.png").write_bytes(b"not scanned")
    (root / "notes.txt").write_text("not an image")


def test_find_images_walks_any_nesting_and_skips_other_files(tmp_path):
    _unlabelled_tree(tmp_path)
    files = find_images(tmp_path)
    assert len(files) == 24
    assert files == sorted(files)
    assert {f.suffix for f in files} == {".png", ".jpg", ".bmp", ".webp"}


def test_labels_come_from_class_folders_only_when_the_layout_says_so(tmp_path):
    for c in ("cat", "dog"):
        for i in range(3):
            _photo(tmp_path / c / "deeper" / f"{i}.png", (20, 20), i)
    files = find_images(tmp_path)
    labels, classes = folder_labels(files, tmp_path)
    assert classes == ("cat", "dog") and labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert folder_labels(files, tmp_path, "none") is None
    _photo(tmp_path / "loose.png", (20, 20), 9)
    assert folder_labels(find_images(tmp_path), tmp_path) is None  # a loose file: unlabelled
    with pytest.raises(ValueError, match="class folders"):
        folder_labels(find_images(tmp_path), tmp_path, "folders")


def test_decode_resizes_the_shorter_side_and_centre_crops(tmp_path):
    path = tmp_path / "wide.png"
    pixels = np.zeros((20, 60, 3), dtype=np.uint8)
    pixels[:, 20:40] = 255  # a white centre third
    Image.fromarray(pixels).save(path)
    out = decode_image(path, 10)
    assert out.shape == (3, 10, 10) and out.dtype == torch.uint8
    assert out.float().mean() > 240  # the crop is the white middle, not the black sides
    _photo(tmp_path / "gray.png", (30, 50), 1, "L")
    assert decode_image(tmp_path / "gray.png", 16).shape == (3, 16, 16)


def test_image_files_decode_only_the_rows_asked_for(tmp_path, monkeypatch):
    _unlabelled_tree(tmp_path, 8)
    images = ImageFiles(find_images(tmp_path), 16)
    assert images.shape == (8, 3, 16, 16) and len(images) == 8
    calls = []
    real = decode_image
    monkeypatch.setattr("contrastkit.data.image_files.decode_image", lambda p, s: calls.append(p) or real(p, s))
    batch = images[torch.tensor([5, 1])]
    assert batch.shape == (2, 3, 16, 16) and len(calls) == 2
    assert torch.equal(images[2:4][1], images[3])
    assert images.select(torch.tensor([7, 0])).files == [images.files[7], images.files[0]]


def test_a_damaged_file_is_replaced_by_the_next_with_a_warning_naming_it(tmp_path):
    _unlabelled_tree(tmp_path, 4)
    files = find_images(tmp_path)
    files[1].write_bytes(b"\x89PNG truncated")
    images = ImageFiles(files, 16)
    with pytest.warns(UserWarning, match=files[1].name):
        row = images[1]
    assert torch.equal(row, images[2])


def test_unlabelled_folder_splits_hold_files_not_pixels(tmp_path):
    _unlabelled_tree(tmp_path)
    splits = load_image_folder(tmp_path, 24, seed=0)
    assert splits.classes == () and isinstance(splits.train_images, ImageFiles)
    assert len(splits.train_images) + len(splits.test_images) == 24 and len(splits.test_images) == 5
    assert not set(splits.train_images.files) & set(splits.test_images.files)
    assert len(splits.mean) == 3 and all(0 < s for s in splits.std)
    assert "unlabelled" in splits.source
    assert resolve_preset("auto", 3, 24) == "simclr" and resolve_preset("auto", 3, 96) == "moco_v2"
    assert resolve_preset("auto", 1, 16) == "digits" and resolve_preset("motion", 3, 16) == "motion"


def test_errors_name_the_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "nowhere", 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images under"):
        load_image_folder(tmp_path / "empty", 16)


def _train(tmp_path: Path, folder: Path, *extra: str) -> dict:
    code = main(
        [
            "train",
            "simclr-folder",
            "--smoke",
            "--no-progress",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--set",
            f"data.path={folder}",
            "--set",
            "data.image_size=24",
            "--set",
            "data.batch_size=8",
            "--set",
            "model.width=8",
            *extra,
        ]
    )
    assert code == 0
    (run,) = (tmp_path / "runs" / "simclr-folder").iterdir()
    return json.loads((run / "results.json").read_text())


def test_training_on_an_unlabelled_folder_reports_view_similarities(tmp_path):
    _unlabelled_tree(tmp_path / "photos", 40)
    results = _train(tmp_path, tmp_path / "photos", "--set", "data.num_workers=2")
    assert [m["key"] for m in results["metrics"]] == ["view_cosine_positive", "view_cosine_negative"]
    for numbers in (results["final"], results["random_init"]):
        assert -1 <= numbers["view_cosine_negative"] <= 1 and -1 <= numbers["view_cosine_positive"] <= 1
    assert "simclr preset (data.augmentation=auto)" in results["protocol"]


def test_training_on_a_labelled_folder_keeps_knn_and_few_labels(tmp_path):
    for c in ("a", "b", "c"):
        for i in range(14):
            _photo(tmp_path / "photos" / c / f"{i}.jpg", (32, 28), ord(c) * 100 + i)
    results = _train(tmp_path, tmp_path / "photos")
    keys = [m["key"] for m in results["metrics"]]
    assert keys[0] == "knn_top1" and "knn_top1_10pct_labels" in keys
    assert 0 <= results["final"]["knn_top1"] <= 100
