"""Frozen clip features for video evaluation (``docs/methods/videomoco.md``): N uniformly placed clips per
video, their backbone features averaged, optionally with a fraction of every clip's frames
dropped at random (flat per-frame means), and the feature consistency under dropping."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from contrastkit.views.clips import random_frame_drop

__all__ = [
    "clip_consistency",
    "clip_features",
    "clip_starts",
    "order_accuracy",
    "temporal_variance",
    "window_features",
    "window_indices",
]


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


def window_indices(frames: int, window: int, frame_stride: int = 1) -> Tensor:
    """``[F', window]`` frame indices of a ``window``-frame window centred on every
    ``frame_stride``-th frame, clamped at the ends of the video (``docs/methods/longshort.md``)."""
    centres = torch.arange(0, frames, frame_stride)
    offsets = torch.arange(window) - window // 2
    return (centres[:, None] + offsets).clamp(0, frames - 1)


@torch.no_grad()
def window_features(
    encoder: nn.Module,
    preprocess: Callable[[Tensor], Tensor],
    videos: Tensor,
    *,
    window: int = 8,
    frame_stride: int = 1,
    batch_size: int = 512,
    desc: str = "window features",
    progress: bool = False,
) -> Tensor:
    """``[N, F', D]``: features of the window around every ``frame_stride``-th frame of each of
    ``videos`` (``uint8 [N, C, F, H, W]``), encoder in eval mode (restored afterwards)."""
    was_training = encoder.training
    encoder.eval()
    index = window_indices(videos.shape[2], window, frame_stride)  # [F', W]
    per_video = index.shape[0]
    chunk_videos = max(1, batch_size // per_video)
    out = []
    try:
        for first in tqdm(range(0, len(videos), chunk_videos), desc=desc, disable=not progress, leave=False):
            chunk = videos[first : first + chunk_videos]  # [b, C, F, H, W]
            clips = chunk[:, :, index.flatten()]  # [b, C, F' W, H, W]
            b, c, _, h, w = clips.shape
            clips = clips.view(b, c, per_video, window, h, w).transpose(1, 2).reshape(b * per_video, c, window, h, w)
            out.append(encoder(preprocess(clips)).float().view(b, per_video, -1))
    finally:
        encoder.train(was_training)
    return torch.cat(out)


def temporal_variance(features: Tensor) -> float:
    """Share (%) of the total variance of ``[N, T, D]`` window features that lies within videos
    over time: ``mean_n sum_d var_t / sum_d var_(n, t)`` x 100 (0 = constant over each video)."""
    within = features.var(dim=1, unbiased=False).sum(-1).mean()
    total = features.flatten(0, 1).var(dim=0, unbiased=False).sum()
    return float(100 * within / total.clamp_min(1e-12))


@torch.no_grad()
def order_accuracy(
    model: nn.Module,
    predict: Callable[[Tensor, torch.Generator], tuple[Tensor, Tensor]],
    videos: Tensor,
    seed: int = 0,
    batch_size: int = 64,
) -> float:
    """Accuracy (%) of an order classifier on held-out ``videos`` ``[N, C, F, H, W]``:
    ``predict(chunk, generator) -> (logits [n, classes], labels [n])`` draws its own (seeded)
    tuples; ``model`` is put in eval mode meanwhile."""
    was = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    correct = 0
    try:
        for first in range(0, len(videos), batch_size):
            logits, labels = predict(videos[first : first + batch_size], g)
            correct += int((logits.argmax(1) == labels.to(logits.device)).sum())
    finally:
        model.train(was)
    return 100.0 * correct / len(videos)
