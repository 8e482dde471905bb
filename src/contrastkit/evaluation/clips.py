"""Frozen clip features for video evaluation (``videomoco.md`` §6): N uniformly placed clips per
video, their backbone features averaged, optionally with a fraction of every clip's frames
dropped at random (flat per-frame means), and the feature consistency under dropping."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from contrastkit.views.video import random_frame_drop

__all__ = ["clip_consistency", "clip_features", "clip_starts"]


def clip_starts(frames: int, length: int, stride: int, count: int) -> list[int]:
    """``count`` evenly spaced window starts over ``frames`` (one window: 0)."""
    span = (length - 1) * stride + 1
    if span > frames:
        raise ValueError(f"a clip of {length} frames at stride {stride} spans {span} > {frames} frames")
    return torch.linspace(0, frames - span, count).round().long().unique().tolist()


@torch.no_grad()
def clip_features(
    encoder: nn.Module,
    preprocess: Callable[[Tensor], Tensor],
    videos: Tensor,
    *,
    length: int,
    stride: int = 1,
    clips_per_video: int = 4,
    drop_fraction: float = 0.0,
    seed: int = 0,
    batch_size: int = 64,
    desc: str = "clip features",
    progress: bool = False,
) -> Tensor:
    """``[N, D]``: the mean feature of ``clips_per_video`` windows of each of ``videos``
    (``uint8 [N, C, F, H, W]``), with ``round(drop_fraction * length)`` random frames of every
    window dropped. The encoder runs in eval mode (restored afterwards)."""
    was_training = encoder.training
    encoder.eval()
    g = torch.Generator().manual_seed(seed)
    starts = clip_starts(videos.shape[2], length, stride, clips_per_video)
    dropped = round(drop_fraction * length)
    out = []
    try:
        for first in tqdm(range(0, len(videos), batch_size), desc=desc, disable=not progress, leave=False):
            chunk = videos[first : first + batch_size]
            total = torch.zeros(())
            for start in starts:
                x = preprocess(chunk[:, :, start : start + (length - 1) * stride + 1 : stride])
                if dropped:
                    x = random_frame_drop(x, dropped, g)
                total = total + encoder(x).float()
            out.append(total / len(starts))
    finally:
        encoder.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def clip_consistency(
    encoder: nn.Module,
    preprocess: Callable[[Tensor], Tensor],
    videos: Tensor,
    *,
    length: int,
    stride: int = 1,
    drop_fraction: float = 0.25,
    seed: int = 0,
    batch_size: int = 64,
) -> float:
    """Mean ``cos(f(x), f(drop(x)))`` over the first window of each video (1 = dropping frames
    does not move the feature)."""
    clean = clip_features(encoder, preprocess, videos, length=length, stride=stride, clips_per_video=1)
    drop = clip_features(
        encoder,
        preprocess,
        videos,
        length=length,
        stride=stride,
        clips_per_video=1,
        drop_fraction=drop_fraction,
        seed=seed,
        batch_size=batch_size,
    )
    return float(F.cosine_similarity(clean, drop, dim=1).mean())
