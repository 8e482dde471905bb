"""Log-mel features: the filterbank against torchaudio, a tone lands in its band, the real AAC track."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from contrastkit.data.audio import hz_to_mel, log_mel_spectrogram, mel_filterbank, mel_to_hz

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "video"


@pytest.mark.parametrize(
    "n_freqs,f_min,f_max,n_mels,sr", [(513, 50.0, 14000.0, 64, 32000), (201, 0.0, 8000.0, 40, 16000)]
)
def test_the_filterbank_equals_torchaudio(n_freqs, f_min, f_max, n_mels, sr):
    torchaudio = pytest.importorskip("torchaudio")
    theirs = torchaudio.functional.melscale_fbanks(n_freqs, f_min, f_max, n_mels, sr)
    assert torch.allclose(mel_filterbank(n_freqs, f_min, f_max, n_mels, sr), theirs, atol=1e-5)  # theirs in float32


def test_mel_scale_round_trips_and_filters_are_triangles_peaking_at_one():
    hz = torch.tensor([0.0, 440.0, 8000.0], dtype=torch.float64)
    assert torch.allclose(mel_to_hz(hz_to_mel(hz)), hz)
    fb = mel_filterbank(2049, 50.0, 14000.0, 64, 32000)
    assert fb.shape == (2049, 64) and float(fb.min()) == 0.0
    assert (fb.max(0).values > 0.9).all()  # fine bins reach close to each triangle's apex


def test_a_tone_lights_the_band_that_holds_its_frequency():
    sr = 32000
    tone = torch.sin(2 * math.pi * 1000 * torch.arange(sr) / sr)
    spec = log_mel_spectrogram(tone, sr)
    assert spec.shape == (64, 1 + sr // 320)
    band = int(spec.mean(1).argmax())
    edges = mel_to_hz(torch.linspace(float(hz_to_mel(50.0)), float(hz_to_mel(14000.0)), 66))
    assert edges[band] < 1000 < edges[band + 2]


def test_the_real_aac_track_gives_finite_log_mels_of_the_right_length():
    pytest.importorskip("av")
    from contrastkit.data.video_io import probe, read_audio

    path = SHARED / "bigbuckbunny.mp4"
    if not path.is_file():
        pytest.skip(f"no {path}")
    wave = read_audio(path, 32000)
    duration = probe(path).num_frames / 25  # 132 frames at 25 fps
    assert abs(wave.shape[1] / 32000 - duration) < 0.2
    spec = log_mel_spectrogram(wave[0])
    assert spec.shape == (64, 1 + wave.shape[1] // 320) and torch.isfinite(spec).all()
    assert float(spec.std()) > 1.0  # not silence
