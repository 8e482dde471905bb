"""Decoding the four real clips of shared/data/video with PyAV (data README's table)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("av")

from contrastkit.data.video_io import VideoError, probe, read_audio, read_frames  # noqa: E402

VIDEO = Path(__file__).resolve().parents[3] / "shared" / "data" / "video"
pytestmark = pytest.mark.skipif(not VIDEO.is_dir(), reason=f"no real clips under {VIDEO}")

TABLE = {  # data/README.md: frames, fps, H x W, audio
    "bigbuckbunny.mp4": (132, 25.0, 720, 1280, True),
    "bikes.mp4": (250, 25.0, 272, 640, False),
    "carphone_pristine.mp4": (120, 29.97, 144, 176, False),
    "carphone_distorted.mp4": (120, 29.97, 144, 176, False),
}


@pytest.mark.parametrize("name", sorted(TABLE))
def test_probe_matches_the_data_readme(name):
    frames, fps, h, w, audio = TABLE[name]
    info = probe(VIDEO / name)
    assert (info.num_frames, info.height, info.width) == (frames, h, w)
    assert info.fps == pytest.approx(fps, abs=0.01)
    assert (info.audio_rate is not None) == audio


@pytest.mark.parametrize("name", ["bikes.mp4", "carphone_pristine.mp4"])
def test_random_access_equals_sequential_decode(name):
    everything = read_frames(VIDEO / name)
    assert everything.shape == (TABLE[name][0], TABLE[name][2], TABLE[name][3], 3) and everything.dtype == torch.uint8
    last = TABLE[name][0] - 1
    wanted = [last, 3, 3, 60, 61, 0, last - 110]  # unordered, repeated, far apart (re-seeks)
    assert torch.equal(read_frames(VIDEO / name, wanted), everything[wanted])
    assert torch.equal(read_frames(VIDEO / name, start=50, stop=58), everything[50:58])
    assert torch.equal(read_frames(VIDEO / name, torch.tensor([7])), everything[[7]])


def test_one_decoding_thread_gives_the_same_frames():
    everything = read_frames(VIDEO / "bikes.mp4", start=0, stop=40)
    assert torch.equal(read_frames(VIDEO / "bikes.mp4", start=0, stop=40, threads=1), everything)


def test_resize_on_decode():
    clip = read_frames(VIDEO / "bikes.mp4", [0, 10], size=68)  # shorter side 68, aspect kept
    assert clip.shape == (2, 68, 160, 3)
    assert read_frames(VIDEO / "bikes.mp4", [0], size=(32, 48)).shape == (1, 32, 48, 3)
    full = read_frames(VIDEO / "bikes.mp4", [0]).permute(0, 3, 1, 2).float()
    small = torch.nn.functional.interpolate(full, size=(68, 160), mode="bilinear", antialias=True)
    assert (clip[:1].permute(0, 3, 1, 2).float() - small).abs().mean() < 6


def test_aac_track_decodes_to_a_waveform_of_the_videos_duration():
    wave = read_audio(VIDEO / "bigbuckbunny.mp4", 16000)
    assert wave.shape[0] == 1 and wave.dtype == torch.float32
    assert wave.shape[1] / 16000 == pytest.approx(132 / 25, abs=0.1)  # 5.28 s
    assert 0 < float(wave.abs().max()) <= 1.0 and float(wave.std()) > 1e-3
    stereo = read_audio(VIDEO / "bigbuckbunny.mp4", 8000, mono=False)
    assert stereo.shape[0] == 6 and stereo.shape[1] == pytest.approx(wave.shape[1] / 2, abs=200)
    with pytest.raises(VideoError, match="has no audio track"):
        read_audio(VIDEO / "bikes.mp4")


def test_clean_and_compressed_carphone_decode_to_close_frames():
    clean = read_frames(VIDEO / "carphone_pristine.mp4", [0, 40, 80]).float()
    compressed = read_frames(VIDEO / "carphone_distorted.mp4", [0, 40, 80]).float()
    other = read_frames(VIDEO / "bikes.mp4", [0, 40, 80], size=(144, 176)).float()
    same_scene = (clean - compressed).abs().mean()
    assert same_scene < 15, float(same_scene)
    assert same_scene < 0.5 * (clean - other).abs().mean()


def test_bad_files_raise_one_error_naming_the_file(tmp_path):
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes((VIDEO / "bikes.mp4").read_bytes()[:2000])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    for path in (truncated, garbage):
        with pytest.raises(VideoError, match=path.name):
            read_frames(path, [0, 1])
    with pytest.raises(VideoError, match="does not exist"):
        probe(tmp_path / "missing.mp4")
    copy = tmp_path / "bikes.mp4"
    shutil.copy(VIDEO / "bikes.mp4", copy)
    with pytest.raises(VideoError, match="has no frame 250"):
        read_frames(copy, [249, 250])
