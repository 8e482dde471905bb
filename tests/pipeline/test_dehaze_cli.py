"""``contrastkit dehaze``: tiling with blending, formats and modes kept, bad files skipped by name,
inputs never overwritten."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from contrastkit.cli import main
from contrastkit.pipeline.dehaze import dehaze_files, restore_image, tile_starts


def affine(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x + 0.1


def box_blur(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


def test_tile_starts_cover_with_overlap() -> None:
    assert tile_starts(100, 128, 16) == [0]
    starts = tile_starts(1000, 256, 32)
    assert starts[0] == 0 and starts[-1] == 1000 - 256
    assert all(b - a <= 256 - 32 for a, b in zip(starts, starts[1:], strict=False))


def test_tiles_blend_to_the_whole_image_result() -> None:
    image = torch.rand(3, 150, 210)
    tiled = restore_image(affine, image, tile=64, overlap=8, max_pixels=1000)
    assert torch.allclose(tiled, affine(image[None])[0], atol=1e-6)  # a pointwise model: tiles are exact
    whole = box_blur(image[None])[0]
    blurred = restore_image(box_blur, image, tile=64, overlap=8, max_pixels=1000)
    assert (blurred - whole).abs().mean() < 2e-3  # a local model: only the seams differ, blended


def test_no_tile_seam_is_visible() -> None:
    """A tile's border pixels (where a local model sees a cut image) weigh 1 / (overlap + 1) in the
    blend, so no pixel strays far from the whole-image result: here at most 0.026 (hard seams,
    each tile weighing 1, reach 0.117 with a mean error that still passes the test above)."""
    image = torch.rand(3, 150, 210, generator=torch.Generator().manual_seed(0))
    whole = box_blur(image[None])[0]
    blurred = restore_image(box_blur, image, tile=64, overlap=8, max_pixels=1000)
    assert (blurred - whole).abs().max() < 0.04


def _save(path, array, **kw) -> None:
    Image.fromarray(array, **kw).save(path)


def test_formats_modes_and_sizes_are_kept_and_bad_files_skipped(tmp_path) -> None:
    rng = np.random.default_rng(0)
    inputs = tmp_path / "in"
    inputs.mkdir()
    _save(inputs / "a.jpg", rng.integers(0, 255, (70, 90, 3), dtype=np.uint8))
    _save(inputs / "b.png", rng.integers(0, 255, (33, 41), dtype=np.uint8))
    _save(inputs / "c.png", rng.integers(0, 255, (20, 30, 4), dtype=np.uint8), mode="RGBA")
    (inputs / "notes.txt").write_text("hello")
    lines: list[str] = []
    report = dehaze_files(
        [inputs], affine, tmp_path / "out", max_pixels=500, tile=32, overlap=4, progress=False, warn=lines.append
    )
    assert len(report.written) == 3 and [p.name for p, _ in report.skipped] == ["notes.txt"]
    assert lines == [f"skipped {inputs / 'notes.txt'}: not a readable image (UnidentifiedImageError)"]
    for name, mode, fmt in (("a.jpg", "RGB", "JPEG"), ("b.png", "L", "PNG"), ("c.png", "RGBA", "PNG")):
        before, after = Image.open(inputs / name), Image.open(tmp_path / "out" / name)
        assert (after.size, after.mode, after.format) == (before.size, mode, fmt)
    alpha_in = np.asarray(Image.open(inputs / "c.png"))[..., 3]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "c.png"))[..., 3], alpha_in)


def test_never_overwrites_an_input(tmp_path) -> None:
    path = tmp_path / "x.png"
    _save(path, np.zeros((8, 8, 3), dtype=np.uint8))
    before = path.read_bytes()
    report = dehaze_files([path], affine, tmp_path, progress=False, warn=lambda _: None)
    assert not report.written and "would overwrite the input" in report.skipped[0][1]
    assert path.read_bytes() == before


def test_cli_dark_channel_and_run_errors(tmp_path, capsys) -> None:
    path = tmp_path / "x.png"
    _save(path, np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    assert main(["dehaze", str(path), "--dark-channel", "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    assert (tmp_path / "o" / "x.png").is_file()
    assert main(["dehaze", str(path), "--run", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "not a finished run folder" in capsys.readouterr().err
    assert (
        main(["dehaze", str(tmp_path / "missing.png"), "--dark-channel", "--out", str(tmp_path / "o"), "--no-progress"])
        == 2
    )
    with pytest.raises(SystemExit):
        main(["dehaze", str(path), "--out", str(tmp_path / "o")])  # neither --run nor --dark-channel


def test_cli_restores_with_a_trained_run_and_refuses_other_tasks(tmp_path, capsys) -> None:
    runs = tmp_path / "runs"
    args = ["train", "aecr-synthetic", "--smoke", "--runs-dir", str(runs), "--no-progress", "--set", "optim.epochs=1"]
    assert main([*args, "--set", "method.cr_weight=0"]) == 0
    run = next((runs / "aecr-synthetic").iterdir())
    path = tmp_path / "photo.png"
    _save(path, np.random.default_rng(0).integers(0, 255, (50, 66, 3), dtype=np.uint8))
    assert main(["dehaze", str(path), "--run", str(run), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    assert Image.open(tmp_path / "o" / "photo.png").size == (66, 50)
    assert main(["train", "simclr-digits", "--smoke", "--runs-dir", str(runs), "--no-progress"]) == 0
    other = next((runs / "simclr-digits").iterdir())
    capsys.readouterr()
    assert main(["dehaze", str(path), "--run", str(other), "--out", str(tmp_path / "o")]) == 2
    assert "not a dehazing model" in capsys.readouterr().err
