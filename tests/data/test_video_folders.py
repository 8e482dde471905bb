"""Video folders (class folders, train/test, UCF101 split files), the decoded-frame cache, bad
files, and the generated moving-object set."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

pytest.importorskip("av")

from contrastkit.data.errors import DataError  # noqa: E402
from contrastkit.data.moving_objects import DIRECTIONS, _write_mp4, generate_moving_objects  # noqa: E402
from contrastkit.data.video_folders import decode_videos, load_video_folder  # noqa: E402


def _video(path: Path, frames: int = 6, value: int = 0) -> Path:
    g = torch.Generator().manual_seed(value)
    clip = torch.randint(0, 256, (frames, 16, 24, 3), dtype=torch.uint8, generator=g)
    _write_mp4(path, clip)
    return path


def _ucf_tree(root: Path) -> Path:
    for cls in ("ApplyEyeMakeup", "Archery"):
        for g in (1, 2):
            _video(root / cls / f"v_{cls}_g0{g}_c01.avi", value=g)
    (root / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    (root / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\nArchery/v_Archery_g01_c01.avi 2\n"
    )
    (root / "testlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi\nArchery/v_Archery_g02_c01.avi\n")
    return root


def test_ucf101_split_files(tmp_path):
    videos = load_video_folder(_ucf_tree(tmp_path))
    assert videos.classes == ("ApplyEyeMakeup", "Archery")
    assert [f.name for f in videos.train_files] == ["v_ApplyEyeMakeup_g01_c01.avi", "v_Archery_g01_c01.avi"]
    assert videos.train_labels == [0, 1] and videos.test_labels == [0, 1]


def test_a_split_file_naming_a_missing_video_is_one_error_naming_it(tmp_path):
    root = _ucf_tree(tmp_path)
    (root / "testlist01.txt").write_text("Archery/v_Archery_g09_c01.avi\n")
    with pytest.raises(DataError, match=r"testlist01.txt:1 names Archery/v_Archery_g09_c01.avi"):
        load_video_folder(root)


def test_class_folders_with_and_without_a_train_test_split(tmp_path):
    for split in ("train", "test"):
        for cls in ("a", "b"):
            _video(tmp_path / "tt" / split / cls / "x.mp4")
    videos = load_video_folder(tmp_path / "tt")
    assert videos.classes == ("a", "b") and len(videos.train_files) == len(videos.test_files) == 2
    for cls in ("a", "b"):
        for i in range(5):
            _video(tmp_path / "flat" / cls / f"{i}.mp4", value=i)
    flat = load_video_folder(tmp_path / "flat", test_fraction=0.2, seed=0)
    assert sorted(flat.test_labels) == [0, 1] and len(flat.train_files) == 8
    assert not set(flat.train_files) & set(flat.test_files)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no videos in class sub-folders of .*empty"):
        load_video_folder(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        load_video_folder(tmp_path / "nowhere")


def test_decode_caches_skips_bad_files_and_loops_short_videos(tmp_path):
    good = [_video(tmp_path / "v" / f"{i}.mp4", frames=12, value=i) for i in range(3)]
    short = _video(tmp_path / "v" / "short.mp4", frames=3, value=9)
    bad = tmp_path / "v" / "bad.mp4"
    bad.write_bytes(b"\x00" * 500)
    files, labels = [*good, short, bad], [0, 1, 0, 1, 0]
    with pytest.warns(UserWarning, match="skipping unreadable video: .*bad.mp4"):
        decoded = decode_videos(files, labels, frames=6, size=16, cache_dir=tmp_path / "cache")
    assert decoded.frames.shape == (4, 3, 6, 16, 16) and decoded.frames.dtype == torch.uint8
    assert decoded.labels.tolist() == [0, 1, 0, 1] and decoded.skipped == [str(bad)]
    assert torch.equal(decoded.frames[3][:, 3:], decoded.frames[3][:, :3])  # 3 frames looped to 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the cache is read, nothing decoded again
        again = decode_videos(files, labels, frames=6, size=16, cache_dir=tmp_path / "cache")
    assert torch.equal(again.frames, decoded.frames) and again.skipped == decoded.skipped


def test_threaded_decoding_keeps_the_order_of_the_files(tmp_path):
    files = [_video(tmp_path / "v" / f"{i}.mp4", frames=5, value=20 * i) for i in range(6)]
    bad = tmp_path / "v" / "bad.mp4"
    bad.write_bytes(b"\x00" * 500)
    files.insert(2, bad)
    labels = list(range(len(files)))
    with pytest.warns(UserWarning, match="bad.mp4"):
        one = decode_videos(files, labels, frames=4, size=16, workers=1)
    with pytest.warns(UserWarning, match="bad.mp4"):
        three = decode_videos(files, labels, frames=4, size=16, workers=3)
    assert torch.equal(one.frames, three.frames) and one.files == three.files
    assert three.labels.tolist() == [0, 1, 3, 4, 5, 6] and three.skipped == [str(bad)]
    with pytest.raises(ValueError, match="workers"):
        decode_videos(files, labels, frames=4, size=16, workers=0)


def test_moving_objects_are_written_once_as_class_folders(tmp_path):
    root = generate_moving_objects(tmp_path / "mo", train=16, test=8, frames=8, size=16, seed=3)
    videos = load_video_folder(root)
    assert videos.classes == tuple(sorted(DIRECTIONS)) and len(videos.train_files) == 16
    stamp = (root / "labels.csv").stat().st_mtime_ns
    generate_moving_objects(tmp_path / "mo", train=16, test=8, frames=8, size=16, seed=3)
    assert (root / "labels.csv").stat().st_mtime_ns == stamp  # reused, not rewritten
    decoded = decode_videos(videos.train_files, videos.train_labels, frames=8, size=16)
    # the disc moves: consecutive frames differ, and not by noise alone
    motion = (decoded.frames[:, :, 1:].float() - decoded.frames[:, :, :-1].float()).abs().mean()
    assert motion > 2


def test_a_shared_appearance_pool_reuses_backgrounds_across_videos(tmp_path):
    root = generate_moving_objects(tmp_path / "pool", train=8, test=2, frames=6, size=16, seed=1, appearance_pool=2)
    videos = load_video_folder(root)
    decoded = decode_videos(videos.train_files, videos.train_labels, frames=6, size=16).frames.float()
    backgrounds = decoded.median(dim=2).values  # the disc moves, the background stays: [N, 3, H, W]
    groups: list[torch.Tensor] = []
    for b in backgrounds:
        if not any((b - g).abs().mean() < 12 for g in groups):
            groups.append(b)
    assert len(groups) <= 2 < len(backgrounds)
