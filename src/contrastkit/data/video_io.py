"""Video and audio decoding with PyAV (FFmpeg inside its wheel; the ``video`` extra).

- ``probe(path)``: frame count, frame rate, size, duration, audio track.
- ``read_frames(path, indices)`` / ``read_frames(path, start=, stop=)``: ``uint8 [T, H, W, C]``
  RGB frames, resized on decode if asked. Random access seeks to the key frame before the
  first wanted frame and decodes forward, seeking again across long gaps, so a sparse set of
  indices (N uniform clips) costs a few GOPs, not the whole file. Frame ``i`` is the frame
  whose timestamp is ``i / fps`` after the stream's start: the same frame a sequential decode
  yields as its ``i``-th.
- ``read_audio(path, sample_rate)``: the first audio track as a float waveform ``[C, N]`` in
  [-1, 1], resampled by FFmpeg.

A file FFmpeg cannot read raises ``VideoError`` naming it (datasets catch it, skip the file
with a warning and count it).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from contrastkit.data.errors import DataError

__all__ = ["VideoError", "VideoInfo", "probe", "read_audio", "read_frames"]

_RESEEK_GAP = 96
"""Re-seek instead of decoding forward when the next wanted frame is this many frames ahead."""


class VideoError(DataError):
    """A video file is missing, unreadable or has no video stream; the message names the file."""


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` reads from a file's header (frame count by decoding when the header has none)."""

    path: str
    num_frames: int
    fps: float
    height: int
    width: int
    duration: float
    audio_rate: int | None
    audio_channels: int | None


def _av() -> Any:
    try:
        import av
    except ImportError as err:  # pragma: no cover - depends on the installed extras
        raise ImportError("video decoding needs PyAV: pip install 'contrastkit[video]'") from err
    return av


@contextmanager
def _open(path: str | os.PathLike[str]) -> Iterator[Any]:
    av = _av()
    file = Path(path)
    if not file.is_file():
        raise VideoError(f"video {file} does not exist")
    try:
        container = av.open(str(file))
    except av.FFmpegError as err:
        raise VideoError(f"cannot read video {file}: {err}") from None
    try:
        if not container.streams.video:
            raise VideoError(f"{file} has no video stream")
        yield container
    except av.FFmpegError as err:
        raise VideoError(f"cannot decode video {file}: {err}") from None
    finally:
        container.close()


def _fps(stream: Any) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise VideoError(f"video stream {stream} has no frame rate")
    return Fraction(rate)


def _index(frame: Any, stream: Any, fps: Fraction) -> int:
    start = stream.start_time or 0
    return round((frame.pts - start) * stream.time_base * fps)


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Header facts of a video file (the frame count is counted by decoding if the header lacks it)."""
    with _open(path) as container:
        stream = container.streams.video[0]
        fps = _fps(stream)
        frames = int(stream.frames or 0)
        if frames <= 0:
            frames = sum(1 for _ in container.decode(stream))
        audio = container.streams.audio[0] if container.streams.audio else None
        return VideoInfo(
            str(path),
            frames,
            float(fps),
            int(stream.codec_context.height),
            int(stream.codec_context.width),
            frames / float(fps),
            int(audio.rate) if audio is not None else None,
            int(audio.channels) if audio is not None else None,
        )


def _target_size(size: int | tuple[int, int] | None, height: int, width: int) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int):  # the shorter side becomes ``size``, aspect ratio kept
        scale = size / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))
    return int(size[0]), int(size[1])


def read_frames(
    path: str | os.PathLike[str],
    indices: Sequence[int] | Tensor | None = None,
    *,
    start: int = 0,
    stop: int | None = None,
    size: int | tuple[int, int] | None = None,
    threads: int | None = None,
    backend: str = "pyav",
) -> Tensor:
    """Decode frames to ``uint8 [T, H, W, 3]`` (RGB).

    Args:
        path: a video file FFmpeg reads (mp4, avi, webm, ...).
        indices: frame numbers to return, in this order (repeats allowed); None takes
            ``range(start, stop)``.
        start, stop: the range when ``indices`` is None (``stop`` None = to the end).
        size: resize on decode: an int sets the shorter side (aspect kept), ``(H, W)`` is exact.
        threads: FFmpeg decoding threads for this file (None: FFmpeg's choice, every core).
        backend: ``pyav``, or ``torchcodec`` (recipe key ``data.video_backend``; PyAV, with one warning,
            where torchcodec cannot load).

    Raises:
        VideoError: unreadable file, or an index past the last frame.

    Examples:
        >>> clip = read_frames("bikes.mp4", [0, 8, 16, 24], size=64)  # doctest: +SKIP
        >>> clip.shape
        torch.Size([4, 64, 151, 3])
    """
    if indices is None:
        wanted_list: list[int] | None = None
    else:
        wanted_list = [int(i) for i in (indices.tolist() if isinstance(indices, Tensor) else indices)]
        if any(i < 0 for i in wanted_list):
            raise ValueError(f"frame indices must be >= 0, got {min(wanted_list)}")
    if backend not in ("pyav", "torchcodec"):
        raise ValueError(f"backend must be 'pyav' or 'torchcodec', got {backend!r}")
    if backend == "torchcodec" and _torchcodec_usable():
        from contrastkit.data.video_torchcodec import torchcodec_frames

        if not Path(path).is_file():
            raise VideoError(f"video {path} does not exist")
        info = probe(path) if size is not None else None
        target = _target_size(size, info.height, info.width) if info is not None else None
        return torchcodec_frames(path, wanted_list, start, stop, target, threads)
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if threads is not None:
            stream.codec_context.thread_count = threads
        fps = _fps(stream)
        target = _target_size(size, stream.codec_context.height, stream.codec_context.width)
        if wanted_list is None:
            last = stop - 1 if stop is not None else None
            frames = _decode_range(container, stream, fps, start, last, target)
            if stop is not None and len(frames) < stop - start:
                raise VideoError(f"{path} has fewer than {stop} frames (decoded up to {start + len(frames)})")
            return _stack(frames, target, stream)
        if not wanted_list:
            return _stack([], target, stream)
        unique = sorted(set(wanted_list))
        found = _decode_set(container, stream, fps, unique, target)
        missing = [i for i in unique if i not in found]
        if missing:
            raise VideoError(f"{path} has no frame {missing[0]} (it has {len(found) and max(found) + 1} or fewer)")
        return _stack([found[i] for i in wanted_list], target, stream)


def _torchcodec_usable() -> bool:
    from contrastkit.data.video_torchcodec import torchcodec_problem

    problem = torchcodec_problem()
    if problem is not None and not _WARNED:
        _WARNED.append(problem)
        warnings.warn(f"{problem}; decoding with PyAV instead", stacklevel=3)
    return problem is None


_WARNED: list[str] = []


def _array(frame: Any, target: tuple[int, int] | None) -> np.ndarray:
    if target is None:
        return frame.to_ndarray(format="rgb24")
    return frame.reformat(width=target[1], height=target[0], format="rgb24", interpolation="BILINEAR").to_ndarray()


def _stack(frames: list[np.ndarray], target: tuple[int, int] | None, stream: Any) -> Tensor:
    if not frames:
        h, w = target or (stream.codec_context.height, stream.codec_context.width)
        return torch.empty(0, h, w, 3, dtype=torch.uint8)
    return torch.from_numpy(np.stack(frames))


def _seek(container: Any, stream: Any, fps: Fraction, index: int) -> None:
    start = stream.start_time or 0
    container.seek(int(start + Fraction(index) / fps / stream.time_base), stream=stream, backward=True)


def _decode_range(
    container: Any, stream: Any, fps: Fraction, first: int, last: int | None, target: tuple[int, int] | None
) -> list[np.ndarray]:
    if first > 0:
        _seek(container, stream, fps, first)
    out = []
    for frame in container.decode(stream):
        i = _index(frame, stream, fps)
        if i < first:
            continue
        if last is not None and i > last:
            break
        out.append(_array(frame, target))
    return out


def _decode_set(
    container: Any, stream: Any, fps: Fraction, wanted: list[int], target: tuple[int, int] | None
) -> dict[int, np.ndarray]:
    found: dict[int, np.ndarray] = {}
    position = 0  # next entry of ``wanted`` to find
    while position < len(wanted):
        _seek(container, stream, fps, wanted[position])
        progressed = False
        for frame in container.decode(stream):
            i = _index(frame, stream, fps)
            while position < len(wanted) and wanted[position] < i:  # a frame the stream does not have
                position += 1
            if position >= len(wanted):
                break
            if i == wanted[position]:
                found[i] = _array(frame, target)
                position += 1
                progressed = True
                if position < len(wanted) and wanted[position] - i > _RESEEK_GAP:
                    break
        else:
            break  # end of stream: the rest are past the last frame
        if not progressed and position < len(wanted) and wanted[position] not in found:
            position += 1
    return found


def read_audio(path: str | os.PathLike[str], sample_rate: int = 16000, *, mono: bool = True) -> Tensor:
    """The first audio track as float32 ``[C, N]`` in [-1, 1] at ``sample_rate`` (``C = 1`` if ``mono``).

    Raises:
        VideoError: unreadable file or no audio track.
    """
    av = _av()
    with _open(path) as container:
        if not container.streams.audio:
            raise VideoError(f"{path} has no audio track")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout="mono" if mono else stream.layout.name, rate=sample_rate)
        chunks = []
        for frame in container.decode(stream):
            chunks += [out.to_ndarray() for out in resampler.resample(frame)]
        chunks += [out.to_ndarray() for out in resampler.resample(None)]
    if not chunks:
        raise VideoError(f"{path}: the audio track decodes to nothing")
    return torch.from_numpy(np.concatenate(chunks, axis=1).astype(np.float32))
