"""torchcodec as a decoding backend: PyAV's frames at native size, close ones resized, PyAV with
one warning where torchcodec cannot load, and a decoded-frame cache of its own."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

pytest.importorskip("av")

from contrastkit.data import video_io  # noqa: E402
from contrastkit.data.moving_objects import generate_moving_objects  # noqa: E402
from contrastkit.data.video_folders import decode_videos  # noqa: E402
from contrastkit.data.video_io import read_frames  # noqa: E402
from contrastkit.data.video_torchcodec import torchcodec_problem  # noqa: E402

VIDEO = Path(__file__).resolve().parents[3] / "shared" / "data" / "video"
needs_torchcodec = pytest.mark.skipif(
    torchcodec_problem() is not None, reason=f"{torchcodec_problem()} (pip install torchcodec; FFmpeg's libraries)"
)


@pytest.fixture(scope="module")
def small_mp4s(tmp_path_factory):
    root = generate_moving_objects(tmp_path_factory.mktemp("mp4"), train=4, test=0, frames=20, size=32, seed=0)
    return sorted(root.rglob("*.mp4"))


@needs_torchcodec
def test_native_size_frames_are_pyavs(small_mp4s):
    for path in [*small_mp4s, *sorted(VIDEO.glob("carphone_*.mp4"))]:
        wanted = [5, 0, 0, 19, 7]
        assert torch.equal(read_frames(path, wanted, backend="torchcodec"), read_frames(path, wanted))
        assert torch.equal(read_frames(path, start=3, stop=9, backend="torchcodec"), read_frames(path, start=3, stop=9))


@needs_torchcodec
@pytest.mark.skipif(not VIDEO.is_dir(), reason="no real clips")
def test_resized_frames_have_pyavs_shape_and_are_close():
    ours = read_frames(VIDEO / "bikes.mp4", [0, 30], size=56)
    theirs = read_frames(VIDEO / "bikes.mp4", [0, 30], size=56, backend="torchcodec")
    assert theirs.shape == ours.shape == (2, 56, 132, 3)
    assert (theirs.float() - ours.float()).abs().mean() < 2.0  # another scaler: a few levels apart


@needs_torchcodec
def test_a_frame_past_the_end_is_one_error_naming_the_file(small_mp4s):
    with pytest.raises(video_io.VideoError, match=str(small_mp4s[0].name)):
        read_frames(small_mp4s[0], [25], backend="torchcodec")


def test_without_torchcodec_pyav_decodes_after_one_warning(small_mp4s, monkeypatch):
    monkeypatch.setattr("contrastkit.data.video_torchcodec.torchcodec_problem", lambda: "torchcodec cannot load (test)")
    monkeypatch.setattr(video_io, "_WARNED", [])
    with pytest.warns(UserWarning, match="torchcodec cannot load .test.; decoding with PyAV instead"):
        first = read_frames(small_mp4s[0], [1, 2], backend="torchcodec")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once is enough
        read_frames(small_mp4s[1], [1], backend="torchcodec")
    assert torch.equal(first, read_frames(small_mp4s[0], [1, 2]))
    with pytest.raises(ValueError, match="backend must be"):
        read_frames(small_mp4s[0], [1], backend="opencv")


def test_each_backend_has_its_own_decoded_cache(small_mp4s, tmp_path, monkeypatch):
    monkeypatch.setattr("contrastkit.data.video_torchcodec.torchcodec_problem", lambda: "torchcodec cannot load (test)")
    monkeypatch.setattr(video_io, "_WARNED", ["already said"])
    labels = [0] * len(small_mp4s)
    decode_videos(small_mp4s, labels, frames=8, size=32, cache_dir=tmp_path, workers=1)
    decode_videos(small_mp4s, labels, frames=8, size=32, cache_dir=tmp_path, workers=1, backend="torchcodec")
    assert len(list(tmp_path.glob("frames-*"))) == 2
