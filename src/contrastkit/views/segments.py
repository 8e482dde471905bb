"""Segment and long/short samplers for video-level methods (``vclr.md`` §2, ``longshort.md`` §3).

All samplers work on frame *indices* (``[B, ...]`` long tensors) and draw from an explicit
generator; ``gather_frames`` turns indices into frames of decoded videos ``[B, C, F, H, W]``.

VCLR (``segment_pair``, ``order_shuffles``):

- a video of ``F`` frames is cut into ``S`` contiguous segments of ``F // S`` frames, the last
  one taking the remainder (oracle 1);
- from every segment two *distinct* start frames are drawn: the first goes to the key tuple,
  the second to the query tuple, so the two tuples never share a frame;
- an order shuffle is a permutation of the ``S`` positions that is neither the identity nor the
  reversal (the official ``shuffle_list`` loop); for ``S = 3`` that leaves 4 of the 6.

Long/short views (``long_short_indices``): a long view of ``T_L`` frames at stride ``r_L``
from a random start, and ``K`` ordered, disjoint windows splitting its span, each sampled
densely with ``T_S`` frames at stride ``r_S`` from the window's start (``longshort.md`` §3).

Videos too short for a sampler (fewer than ``2 S`` frames for VCLR, or than the long view's
span) raise ``ValueError``: the data side decodes every video to the same ``F`` frames,
looping a short video from its start (``contrastkit.data.videos``), so this is the one rule.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

__all__ = [
    "allowed_shuffles",
    "gather_frames",
    "long_short_indices",
    "order_shuffles",
    "segment_bounds",
    "segment_pair",
]


def segment_bounds(frames: int, segments: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of ``segments`` contiguous parts of ``range(frames)``: each
    ``frames // segments`` long, the last one taking the remainder."""
    if segments < 1:
        raise ValueError(f"segments must be >= 1, got {segments}")
    size = frames // segments
    if size < 2:
        raise ValueError(f"{frames} frames cannot give {segments} segments of at least 2 frames (two draws each)")
    return [(s * size, (s + 1) * size if s < segments - 1 else frames) for s in range(segments)]


def segment_pair(
    batch: int, frames: int, segments: int, generator: torch.Generator | None = None, *, span: int = 1
) -> tuple[Tensor, Tensor]:
    """Key and query tuples ``([B, S], [B, S])`` of start frames, one per segment per tuple,
    distinct within a segment.

    Args:
        batch: number of videos ``B``.
        frames: frames per video ``F``.
        segments: ``S``.
        generator: randomness.
        span: frames each drawn element covers (1: single frames; a clip's span otherwise):
            starts are drawn so that ``start + span <= F``, inside their segment.
    """
    bounds = segment_bounds(frames, segments)
    keys, queries = [], []
    for start, stop in bounds:
        stop = min(stop, frames - span + 1)
        count = stop - start
        if count < 2:
            raise ValueError(f"segment [{start}, {stop}) of {frames} frames has room for < 2 elements of span {span}")
        first = torch.randint(count, (batch,), generator=generator)
        second = torch.randint(count - 1, (batch,), generator=generator)
        second = second + (second >= first).long()  # uniform over the other count - 1 frames
        keys.append(start + first)
        queries.append(start + second)
    return torch.stack(keys, 1), torch.stack(queries, 1)


def allowed_shuffles(segments: int) -> Tensor:
    """``[P, S]`` every permutation of ``S`` positions except the identity and the reversal."""
    identity = tuple(range(segments))
    perms = [p for p in itertools.permutations(identity) if p != identity and p != identity[::-1]]
    if not perms:
        raise ValueError(f"{segments} segments have no order other than forward and reversed; use S >= 3")
    return torch.tensor(perms, dtype=torch.long)


def order_shuffles(
    batch: int, segments: int, generator: torch.Generator | None = None, probability: float = 0.5
) -> tuple[Tensor, Tensor]:
    """Per video: with ``probability`` a permutation from ``allowed_shuffles``, else the identity.

    Returns:
        ``(order [B, S], shuffled [B] bool)``; ``tuple.gather(1, order)`` applies it.
    """
    perms = allowed_shuffles(segments)
    shuffled = torch.rand(batch, generator=generator) < probability
    pick = torch.randint(len(perms), (batch,), generator=generator)
    identity = torch.arange(segments).expand(batch, segments)
    return torch.where(shuffled[:, None], perms[pick], identity), shuffled


def long_short_indices(
    batch: int,
    frames: int,
    generator: torch.Generator | None = None,
    *,
    long_length: int = 16,
    long_stride: int = 4,
    short_views: int = 4,
    short_length: int = 8,
    short_stride: int = 2,
) -> tuple[Tensor, Tensor]:
    """Frame indices of a long view ``[B, T_L]`` and of its ``K`` short views ``[B, K, T_S]``.

    The long view starts at a random frame and spans ``(T_L - 1) r_L + 1`` frames; its span is
    cut into ``K`` equal, disjoint windows (in temporal order) and each short view takes ``T_S``
    frames at stride ``r_S`` from its window's start (clamped inside the window, so a window
    shorter than ``(T_S - 1) r_S + 1`` repeats its last frame). With ``K = 1``, ``T_S = T_L``
    and ``r_S = r_L`` the short view is the long view (``longshort.md`` oracle 2).
    """
    span = (long_length - 1) * long_stride + 1
    if span > frames:
        raise ValueError(f"a long view of {long_length} frames at stride {long_stride} spans {span} > {frames} frames")
    if short_views < 1 or short_views > span:
        raise ValueError(f"short_views must lie in [1, {span}], got {short_views}")
    starts = torch.randint(frames - span + 1, (batch,), generator=generator)
    long = starts[:, None] + long_stride * torch.arange(long_length)
    window = span // short_views
    offsets = (short_stride * torch.arange(short_length)).clamp(max=window - 1)  # [T_S]
    window_starts = window * torch.arange(short_views)  # [K]
    short = starts[:, None, None] + window_starts[None, :, None] + offsets[None, None, :]
    return long, short


def gather_frames(videos: Tensor, indices: Tensor) -> Tensor:
    """Frames of ``videos`` ``[B, C, F, H, W]`` at ``indices`` ``[B, ...]`` -> ``[B, C, *idx, H, W]``.

    Example:
        >>> videos = torch.arange(2 * 5).view(2, 1, 5, 1, 1)
        >>> gather_frames(videos, torch.tensor([[4, 0], [1, 1]])).flatten(1).tolist()
        [[4, 0], [6, 6]]
    """
    b, c, _, h, w = videos.shape
    if indices.shape[0] != b:
        raise ValueError(f"indices must start with the batch size {b}, got shape {tuple(indices.shape)}")
    flat = indices.reshape(b, -1).to(videos.device)
    out = videos.gather(2, flat[:, None, :, None, None].expand(b, c, flat.shape[1], h, w))
    return out.view(b, c, *indices.shape[1:], h, w)
