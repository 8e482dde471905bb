"""Log-mel features of waveforms (CCL's audio side, ``docs/methods/ccl.md``), in plain torch: ``torch.stft``
and a triangular mel filterbank (HTK mel scale, no area normalisation: torchaudio's
``melscale_fbanks`` defaults, against which it is tested).

The defaults are PANNs CNN14's front end (the audio teacher of the official code): 32 kHz,
1024-sample Hann windows, hop 320 (10 ms), 64 mel bands from 50 Hz to 14 kHz, ``log(mel + 1e-10)``.
Waveforms come from ``contrastkit.data.video_io.read_audio`` (any file FFmpeg reads).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["hz_to_mel", "log_mel_spectrogram", "mel_filterbank", "mel_to_hz"]


def hz_to_mel(hz: Tensor | float) -> Tensor:
    """HTK mel scale: ``2595 log10(1 + f / 700)``."""
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(hz, dtype=torch.float64) / 700.0)


def mel_to_hz(mel: Tensor) -> Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> Tensor:
    """``[n_freqs, n_mels]`` triangular filters on the STFT bins ``linspace(0, sr / 2, n_freqs)``,
    centred on ``n_mels`` points evenly spaced in mel between ``f_min`` and ``f_max``."""
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got {f_min}, {f_max}, {sample_rate}")
    bins = torch.linspace(0, sample_rate // 2, n_freqs, dtype=torch.float64)
    edges = mel_to_hz(torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2, dtype=torch.float64))
    widths = edges[1:] - edges[:-1]  # [n_mels + 1]
    slopes = edges[None, :] - bins[:, None]  # [n_freqs, n_mels + 2]
    rising = -slopes[:, :-2] / widths[:-1]
    falling = slopes[:, 2:] / widths[1:]
    return torch.clamp(torch.minimum(rising, falling), min=0).float()


def log_mel_spectrogram(
    waveform: Tensor,
    sample_rate: int = 32000,
    *,
    n_fft: int = 1024,
    hop_length: int = 320,
    n_mels: int = 64,
    f_min: float = 50.0,
    f_max: float = 14000.0,
    eps: float = 1e-10,
) -> Tensor:
    """``[..., n_mels, frames]`` ``log(mel power + eps)`` of ``waveform`` ``[..., N]``.

    Frames are centred (reflect padding), so ``frames = 1 + N // hop_length``.

    Examples:
        >>> import math
        >>> tone = torch.sin(2 * math.pi * 440 * torch.arange(32000) / 32000)
        >>> log_mel_spectrogram(tone).shape
        torch.Size([64, 101])
    """
    if waveform.shape[-1] < n_fft // 2 + 1:
        raise ValueError(f"a waveform of {waveform.shape[-1]} samples is shorter than half a window ({n_fft // 2 + 1})")
    lead = waveform.shape[:-1]
    flat = waveform.reshape(-1, waveform.shape[-1]).float()
    window = torch.hann_window(n_fft, device=flat.device)
    spec = torch.stft(flat, n_fft, hop_length, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = spec.abs().pow(2)  # [B, n_fft // 2 + 1, frames]
    fb = mel_filterbank(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate).to(flat.device)
    mel = torch.einsum("bft,fm->bmt", power, fb)
    return torch.log(mel + eps).reshape(*lead, n_mels, mel.shape[-1])
