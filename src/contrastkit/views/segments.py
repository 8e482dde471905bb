"""Segment and long/short samplers for video-level methods (``docs/methods/vclr.md``, ``docs/methods/longshort.md``).

All samplers work on frame *indices* (``[B, ...]`` long tensors) and draw from an explicit
generator; ``gather_frames`` turns indices into frames of decoded videos ``[B, C, F, H, W]``.

VCLR (``segment_pair``, ``order_shuffles``):

- a video of ``F`` frames is cut into ``S`` contiguous segments of ``F // S`` frames, the last
  one taking the remainder;
- from every segment two *distinct* start frames are drawn: the first goes to the key tuple,
  the second to the query tuple, so the two tuples never share a frame;
- an order shuffle is a permutation of the ``S`` positions that is neither the identity nor the
  reversal (the official ``shuffle_list`` loop); for ``S = 3`` that leaves 4 of the 6.

Long/short views (``long_short_indices``): a long view of ``T_L`` frames at stride ``r_L``
from a random start, and ``K`` ordered, disjoint windows splitting its span, each sampled
densely with ``T_S`` frames at stride ``r_S`` from the window's start (``docs/methods/longshort.md``).

``shuffled_orders`` draws the long/short method's shuffled order of the short views (its hard
negative) and ``shift_views`` moves each short view by its own circular shift.

Videos too short for a sampler (fewer than ``2 S`` frames for VCLR, or than the long view's
span) raise ``ValueError``: the data side decodes every video to the same ``F`` frames,
looping a short video from its start (``contrastkit.data.video_folders``), so this is the one rule.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "SegmentTuples",
    "TupleViews",
    "allowed_shuffles",
    "draw_segment_tuples",
    "gather_frames",
    "long_short_indices",
    "order_shuffles",
    "segment_bounds",
    "segment_pair",
    "segment_tuple_views",
    "shift_views",
    "shuffled_orders",
    "tuple_elements",
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
    and ``r_S = r_L`` the short view is the long view (``docs/methods/longshort.md``).
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

    Examples:
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


@dataclass(frozen=True)
class SegmentTuples:
    """One draw of VCLR's tuples for ``B`` videos of ``S`` segments.

    Attributes:
        key_starts, query_starts: ``[B, S]`` first frame of each element of the two tuples.
        order_q, order_k: ``[B, S]`` the order each tuple is presented in (identity or a shuffle).
        order_label: ``[B]`` ``1[q shuffled] + 2 * 1[k shuffled]`` in ``{0, 1, 2, 3}``.
        end: ``[B]`` the SeCo anchor's segment, ``0`` or ``S - 1``.
    """

    key_starts: Tensor
    query_starts: Tensor
    order_q: Tensor
    order_k: Tensor
    order_label: Tensor
    end: Tensor


def draw_segment_tuples(
    batch: int,
    frames: int,
    segments: int,
    generator: torch.Generator | None = None,
    *,
    span: int = 1,
    shuffle_probability: float = 0.5,
) -> SegmentTuples:
    """Key and query tuples (``segment_pair``), an order shuffle of each (``order_shuffles``;
    none for ``S < 3``, which has no allowed shuffle) and a random end segment per video."""
    key_starts, query_starts = segment_pair(batch, frames, segments, generator, span=span)
    if segments < 3:
        identity = torch.arange(segments).expand(batch, segments)
        unshuffled = torch.zeros(batch, dtype=torch.bool)
        (order_q, shuffled_q), (order_k, shuffled_k) = (identity, unshuffled), (identity, unshuffled)
    else:
        order_q, shuffled_q = order_shuffles(batch, segments, generator, shuffle_probability)
        order_k, shuffled_k = order_shuffles(batch, segments, generator, shuffle_probability)
    end = torch.where(torch.rand(batch, generator=generator) < 0.5, 0, segments - 1)
    label = shuffled_q.long() + 2 * shuffled_k.long()
    return SegmentTuples(key_starts, query_starts, order_q, order_k, label, end)


def tuple_elements(videos: Tensor, starts: Tensor, length: int = 1, stride: int = 1) -> Tensor:
    """Elements ``[B, S, C, T, H, W]`` of ``length`` frames at ``stride`` from ``starts`` ``[B, S]``
    in decoded videos ``[B, C, F, H, W]``."""
    offsets = stride * torch.arange(length)
    return gather_frames(videos, starts[..., None] + offsets).transpose(1, 2)


@dataclass(frozen=True)
class TupleViews:
    """VCLR's augmented inputs for ``B`` videos (elements ``[C, T, H, W]``, one draw each).

    Attributes:
        query, key: ``[B, S, C, T, H, W]`` the two tuples in natural order.
        anchor: ``[B, C, T, H, W]`` the query tuple's element of the end segment, re-augmented.
        others: ``[B, S - 1, C, T, H, W]`` the query tuple's other elements (as augmented in ``query``).
    """

    query: Tensor
    key: Tensor
    anchor: Tensor
    others: Tensor


def segment_tuple_views(
    videos: Tensor,
    draw: SegmentTuples,
    augment: Callable[[Tensor, torch.Generator], Tensor],
    generator: torch.Generator,
    length: int = 1,
    stride: int = 1,
) -> TupleViews:
    """The elements of ``draw`` in ``videos`` ``[B, C, F, H, W]``, each augmented by its own draw of
    ``augment`` (``[N, C, T, H, W]`` -> the same): query tuple, key tuple, then the anchor."""
    b, s = draw.query_starts.shape

    def augmented(elements: Tensor) -> Tensor:
        out = augment(elements.flatten(0, 1), generator)
        return out.view(elements.shape[0], elements.shape[1], *out.shape[1:])

    raw_q = tuple_elements(videos, draw.query_starts, length, stride)
    query = augmented(raw_q)
    key = augmented(tuple_elements(videos, draw.key_starts, length, stride))
    rows = torch.arange(b)
    anchor = augmented(raw_q[rows, draw.end][:, None])[:, 0]
    others = torch.tensor([[j for j in range(s) if j != e] for e in draw.end.tolist()], dtype=torch.long)
    return TupleViews(query, key, anchor, query[rows[:, None], others])


def shuffled_orders(batch: int, views: int, generator: torch.Generator | None = None) -> Tensor:
    """``[B, K]``: one random non-identity order of the ``K`` short views per video."""
    perms = [p for p in itertools.permutations(range(views)) if p != tuple(range(views))]
    if not perms:
        raise ValueError("one short view has no other order; order_negative needs short_views >= 2")
    table = torch.tensor(perms, dtype=torch.long)
    return table[torch.randint(len(perms), (batch,), generator=generator)]


def shift_views(views: Tensor, largest: int, generator: torch.Generator | None = None) -> Tensor:
    """``[B, K, C, T, H, W]`` with each of the ``B K`` views circularly shifted by its own
    ``(dy, dx)``, each drawn uniformly from ``[-largest, largest]``."""
    b, k = views.shape[:2]
    offsets = torch.randint(-largest, largest + 1, (b * k, 2), generator=generator).tolist()
    flat = views.flatten(0, 1)
    shifted = [torch.roll(v, shifts=(dy, dx), dims=(-2, -1)) for v, (dy, dx) in zip(flat, offsets, strict=True)]
    return torch.stack(shifted).view_as(views)
