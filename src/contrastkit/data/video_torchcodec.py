"""torchcodec as an optional decoding backend of ``read_frames`` (``backend="torchcodec"``,
recipe key ``data.video_backend``): several times PyAV's frames per second on small videos
(``benchmarks/results/video_decode.md``). It needs ``pip install torchcodec`` and FFmpeg's shared
libraries (4 to 7); where either is missing ``read_frames`` warns once and decodes with PyAV.

Frames at native size are identical to PyAV's; resized on decode they differ by a few levels
(another scaler), so the decoded-frame cache keeps the backends apart."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["torchcodec_problem", "torchcodec_frames"]


@functools.cache
def torchcodec_problem() -> str | None:
    """Why torchcodec cannot decode here (not installed, FFmpeg's libraries missing), or None."""
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401  (loads the FFmpeg libraries)
    except (ImportError, OSError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return f"torchcodec cannot load ({first[:160]})"
    return None


def torchcodec_frames(
    path: str | os.PathLike[str],
    indices: Sequence[int] | None,
    start: int,
    stop: int | None,
    target: tuple[int, int] | None,
    threads: int | None,
) -> Tensor:
    """``uint8 [T, H, W, 3]``: ``indices`` (or ``range(start, stop)``), resized to ``target``.

    Raises:
        VideoError: unreadable file, or a frame past the end.
    """
    from torchcodec.decoders import VideoDecoder
    from torchcodec.transforms import Resize

    from contrastkit.data.video_io import VideoError

    transforms = [Resize(target)] if target is not None else None
    try:
        decoder = VideoDecoder(
            str(path), dimension_order="NHWC", num_ffmpeg_threads=threads or 0, transforms=transforms
        )
        count = decoder.metadata.num_frames or 0
        if indices is None:
            end = count if stop is None else stop
            if end > count:
                raise VideoError(f"{path} has fewer than {end} frames (it has {count})")
            return decoder.get_frames_in_range(start, end).data if end > start else _empty(decoder, target)
        if not indices:
            return _empty(decoder, target)
        past = [i for i in indices if i >= count]
        if past:
            raise VideoError(f"{path} has no frame {min(past)} (it has {count})")
        return decoder.get_frames_at(list(indices)).data
    except (RuntimeError, ValueError) as err:
        raise VideoError(f"cannot decode video {path}: {str(err).splitlines()[0]}") from None


def _empty(decoder: object, target: tuple[int, int] | None) -> Tensor:
    meta = decoder.metadata  # type: ignore[attr-defined]
    h, w = target or (meta.height, meta.width)
    return torch.empty(0, h, w, 3, dtype=torch.uint8)
