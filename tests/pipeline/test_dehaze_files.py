"""``contrastkit dehaze`` keeps what a photo carries and loses no output (issue 32, items 1 and 5):
EXIF (orientation, camera) and ICC profile copied, modes kept, sub-folders mirrored, colliding
names kept apart, every refused input one line, nothing written when nothing can be restored."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageCms

from contrastkit.cli import main
from contrastkit.pipeline.dehaze import dehaze_files


def affine(x):
    return x * 0.9 + 0.05


def _photo(path, mode="RGB", size=(40, 30), **save):
    rng = np.random.default_rng(len(str(path)))
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65535, size[::-1], dtype=np.uint16))
    else:
        image = Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8), "RGB")
        image = image.quantize(64) if mode == "P" else image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **save)
    return path


def _restore(inputs, out, **kw):
    lines: list[str] = []
    report = dehaze_files(inputs, affine, out, progress=False, warn=lines.append, **kw)
    return report, lines


@pytest.mark.parametrize("name", ["portrait.jpg", "portrait.png"])
def test_exif_orientation_camera_and_icc_profile_are_kept(name, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to display
    exif[0x010F] = "ACME"  # camera make
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = _photo(tmp_path / "in" / name, exif=exif.tobytes(), icc_profile=icc)
    report, lines = _restore([source], tmp_path / "out")
    assert not lines and len(report.written) == 1
    with Image.open(tmp_path / "out" / name) as after, Image.open(source) as before:
        assert after.getexif()[0x0112] == 6 and after.getexif()[0x010F] == "ACME"
        assert after.info.get("icc_profile") == icc
        assert after.size == before.size  # pixels stay in stored orientation: a viewer rotates both alike


@pytest.mark.parametrize(
    "name,mode,save",
    [("depth.png", "I;16", {}), ("palette.png", "P", {}), ("print.jpg", "CMYK", {}), ("bw.png", "1", {})],
)
def test_modes_come_back_as_they_went_in(name, mode, save, tmp_path):
    source = _photo(tmp_path / name, mode, **save)
    with Image.open(source) as before:
        mode_in = before.mode
    report, lines = _restore([source], tmp_path / "out")
    assert not lines and len(report.written) == 1
    with Image.open(tmp_path / "out" / name) as after:
        assert after.mode == mode_in and after.size == (40, 30)
        if mode == "I;16":  # 16 bits survive: the restored values are not multiples of 257
            values = np.asarray(after).astype(np.int64)
            assert values.max() > 255 and (values % 257 != 0).mean() > 0.5


def test_a_mode_that_cannot_be_kept_is_one_line(tmp_path):
    source = tmp_path / "float.tif"
    Image.fromarray(np.random.default_rng(0).random((10, 12)).astype(np.float32), "F").save(source)
    report, lines = _restore([source], tmp_path / "out")
    assert not report.written and lines == [
        f"skipped {source}: images of mode F are not supported; save it as RGB, grayscale or CMYK first"
    ]
    assert not (tmp_path / "out").exists()  # nothing to write, nothing made


def test_sub_folders_are_walked_and_mirrored_and_names_never_collide(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for path in (a / "x.png", a / "trip" / "day1" / "x.png", b / "x.png", a / ".hidden" / "y.png"):
        _photo(path)
    report, lines = _restore([a / "x.png", b / "x.png"], tmp_path / "files")
    assert sorted(t.name for _, t in report.written) == ["x-2.png", "x.png"]
    assert lines == [f"{b / 'x.png'} is written as x-2.png: another input already writes x.png"]
    report, lines = _restore([a], tmp_path / "one")
    assert sorted(str(t.relative_to(tmp_path / "one")) for _, t in report.written) == ["trip/day1/x.png", "x.png"]
    report, _ = _restore([a, b], tmp_path / "two")
    assert sorted(str(t.relative_to(tmp_path / "two")) for _, t in report.written) == [
        "a/trip/day1/x.png",
        "a/x.png",
        "b/x.png",
    ]


def test_missing_paths_and_empty_folders_are_one_line_each_and_leave_nothing(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    args = ["dehaze", str(tmp_path / "missing.png"), str(tmp_path / "empty"), "--dark-channel", "--out", str(out)]
    assert main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"contrastkit: skipped {tmp_path / 'missing.png'}: no such file or folder",
        f"contrastkit: skipped {tmp_path / 'empty'}: an empty folder",
        "contrastkit: error: nothing restored: 2 input(s) refused (above)",
    ]
    assert not out.exists()


def test_out_naming_a_file_is_one_line(tmp_path, capsys):
    source = _photo(tmp_path / "x.png")
    (tmp_path / "taken.png").write_bytes(b"")
    assert main(["dehaze", str(source), "--dark-channel", "--out", str(tmp_path / "taken.png"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file" in err[0]


def test_a_failed_write_leaves_no_part_file(tmp_path, monkeypatch):
    source = _photo(tmp_path / "x.png")

    def broken_save(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        _restore([source], tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


def _hazy_photo(height: int, width: int):
    import torch
    import torch.nn.functional as F
    from skimage import data

    image = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float() / 255
    image = F.interpolate(image[None], size=(height, width), mode="bilinear", align_corners=False)[0]
    t = torch.linspace(0.3, 0.9, height)[:, None].expand(height, width)  # thicker haze at the top
    return image * t + 0.85 * (1 - t)


def _border_error(tiled, whole, height: int, width: int, tile: int, overlap: int) -> float:
    """Largest difference, in 1/255, on the pixels where tiles meet (the edges of each overlap band)."""
    from contrastkit.pipeline.dehaze import tile_starts

    diff = (tiled - whole).abs().amax(0)
    border = np.zeros(diff.shape, dtype=bool)
    for s in tile_starts(height, tile, overlap)[1:]:
        border[s - 2 : s + 2] = border[s + overlap - 2 : s + overlap + 2] = True
    for s in tile_starts(width, tile, overlap)[1:]:
        border[:, s - 2 : s + 2] = border[:, s + overlap - 2 : s + overlap + 2] = True
    return float(diff[torch_from(border)].max() * 255)


def torch_from(array):
    import torch

    return torch.from_numpy(array)


def test_the_dark_channel_prior_leaves_no_seam_on_a_tiled_12_megapixel_photo():
    """Per-tile airlight and transmission left light rectangles (83/255 off at tile borders on a
    2 MP photo); with both taken from the whole image, tiling a 12 MP photo changes no pixel where
    tiles meet by more than 1/255, with dehaze's default tiles."""
    from contrastkit.nn.dark_channel import DarkChannelPrior
    from contrastkit.pipeline.dehaze import restore_image

    hazy, prior = _hazy_photo(3000, 4000), DarkChannelPrior()
    untiled = prior.tile_restorer(hazy)(0, 0, 3000, 4000)  # the same estimate, one tile
    tiled = restore_image(prior, hazy)  # 512-px tiles overlapping by 32, as dehaze does above 1 MP
    assert _border_error(tiled, untiled, 3000, 4000, 512, 32) < 1.0


def test_the_tiled_prior_stays_close_to_the_exact_prior():
    from contrastkit.nn.dark_channel import DarkChannelPrior
    from contrastkit.pipeline.dehaze import restore_image

    hazy, prior = _hazy_photo(768, 1024), DarkChannelPrior()
    tiled = restore_image(prior, hazy, tile=256, overlap=32, max_pixels=1000)
    whole = prior(hazy[None])[0]  # the prior on the whole image at full resolution
    assert float((tiled - whole).abs().mean() * 255) < 4


def test_network_tiles_blend_without_a_seam_on_a_photo():
    import torch

    from contrastkit.nn.dehaze import AECRNet
    from contrastkit.pipeline.dehaze import restore_image

    torch.manual_seed(0)
    net = AECRNet(ngf=16).eval()
    hazy = _hazy_photo(512, 768)
    with torch.no_grad():
        whole = net(hazy[None])[0].clamp(0, 1)
        tiled = restore_image(net, hazy, tile=256, overlap=32, max_pixels=1000)
    assert _border_error(tiled, whole, 512, 768, 256, 32) < 1.0
