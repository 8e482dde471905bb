"""Clip views and frame dropping for video methods (``docs/methods/videomoco.md``).

Clips are ``[B, C, T, H, W]`` (torchvision's video layout): uint8 in [0, 255] or float in [0, 1]
before augmentation, normalised float after.

- ``ClipAugmentation``: an image ``ViewAugmentation`` applied to every frame, with the *same*
  draw (crop, flip, jitter, grayscale, blur) for all frames of a clip by default — the
  temporally consistent choice — or an independent draw per frame (``per_frame=True``), which
  is what VideoMoCo's official code does (kornia on ``B * T`` flattened frames).
- ``drop_frames``: replace chosen frames by their own mean over (C, H, W): a flat frame, ``T``
  unchanged (as the official code does).
- ``random_frame_drop``: ``k`` frames per clip drawn uniformly (the control arm, and the
  evaluation's dropped-frame tests).
- ``adversarial_frame_drop``: drop the ``k`` frames with the smallest generator scores, with
  the official straight-through gradient (its ``VideoTopk``): the forward is the hard drop,
  the backward gives every frame's score the sum of the loss gradient over that frame's pixels
  and gives the pixels nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from contrastkit.views.image import ViewAugmentation, normalize_images

__all__ = [
    "ClipAugmentation",
    "temporal_crop",
    "adversarial_frame_drop",
    "drop_frames",
    "frame_drop_mask",
    "normalize_clips",
    "random_frame_drop",
]


def _check_clips(name: str, clips: Tensor) -> None:
    if clips.dim() != 5:
        raise ValueError(f"{name} must be [B, C, T, H, W], got shape {tuple(clips.shape)}")


def _frames(clips: Tensor) -> Tensor:
    """``[B, C, T, H, W]`` -> ``[B * T, C, H, W]`` (frames of a clip consecutive)."""
    b, c, t, h, w = clips.shape
    return clips.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


def _clips(frames: Tensor, batch: int) -> Tensor:
    bt, c, h, w = frames.shape
    return frames.view(batch, bt // batch, c, h, w).permute(0, 2, 1, 3, 4)


def normalize_clips(clips: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """Per-channel ``(x - mean) / std`` of ``[B, C, T, H, W]`` clips (uint8 scaled to [0, 1] first)."""
    _check_clips("clips", clips)
    return _clips(normalize_images(_frames(clips), mean, std), clips.shape[0])


@dataclass(frozen=True)
class ClipAugmentation:
    """Per-clip (or per-frame) random views of ``[B, C, T, H, W]`` clips.

    Args:
        frames: the image augmentation applied to each frame (its ``size``, ``mean``, ``std``).
        per_frame: draw the augmentation independently for every frame (the official VideoMoCo
            pipeline) instead of once per clip.

    Examples:
        >>> from contrastkit.views import build_augmentation
        >>> aug = ClipAugmentation(build_augmentation("moco_v2", 32, (0.5,) * 3, (0.25,) * 3))
        >>> clips = torch.randint(0, 256, (2, 3, 8, 40, 40), dtype=torch.uint8)
        >>> aug(clips, torch.Generator().manual_seed(0)).shape
        torch.Size([2, 3, 8, 32, 32])
    """

    frames: ViewAugmentation
    per_frame: bool = False

    @property
    def mean(self) -> tuple[float, ...]:
        return self.frames.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.frames.std

    def __call__(
        self, clips: Tensor, generator: torch.Generator | None = None, *, colour_runs: Sequence[int] | None = None
    ) -> Tensor:
        """Views of ``clips``; ``colour_runs`` (frame counts summing to ``T``): consecutive parts of
        each clip that share its crop but draw their own colour jitter and grayscale."""
        _check_clips("clips", clips)
        if self.per_frame and colour_runs is not None:
            raise ValueError("colour_runs splits a clip's draws; per_frame already draws per frame")
        group = 1 if self.per_frame else clips.shape[2]
        return _clips(self.frames(_frames(clips), generator, group=group, colour_runs=colour_runs), clips.shape[0])


def temporal_crop(clips: Tensor, length: int, stride: int = 1, generator: torch.Generator | None = None) -> Tensor:
    """A random window of ``length`` frames at ``stride`` from each of ``[B, C, F, H, W]`` clips
    (start drawn uniformly per clip); the input itself when it is exactly one window long."""
    _check_clips("clips", clips)
    span = (length - 1) * stride + 1
    frames = clips.shape[2]
    if span > frames:
        raise ValueError(f"a clip of {length} frames at stride {stride} spans {span} > the {frames} frames given")
    if span == frames and stride == 1:
        return clips
    starts = torch.randint(frames - span + 1, (clips.shape[0],), generator=generator, device=clips.device)
    index = starts[:, None] + stride * torch.arange(length, device=clips.device)  # [B, T]
    b, c, _, h, w = clips.shape
    return clips.gather(2, index[:, None, :, None, None].expand(b, c, length, h, w))


def frame_drop_mask(indices: Tensor, frames: int) -> Tensor:
    """``[B, T]`` bool, True at the ``[B, k]`` frame ``indices`` (repeats count once)."""
    mask = torch.zeros(indices.shape[0], frames, dtype=torch.bool, device=indices.device)
    return mask.scatter_(1, indices, True)


def drop_frames(clips: Tensor, dropped: Tensor) -> Tensor:
    """Replace the frames where ``dropped`` (``[B, T]`` bool) is True by their mean over (C, H, W).

    Args:
        clips: ``[B, C, T, H, W]`` float clips (normalised or not).
        dropped: ``[B, T]`` bool mask of frames to flatten.
    """
    _check_clips("clips", clips)
    if dropped.shape != (clips.shape[0], clips.shape[2]):
        raise ValueError(f"dropped must be [B, T] = {[clips.shape[0], clips.shape[2]]}, got {tuple(dropped.shape)}")
    flat = clips.mean(dim=(1, 3, 4), keepdim=True).expand_as(clips)
    return torch.where(dropped[:, None, :, None, None], flat, clips)


def random_frame_drop(clips: Tensor, count: int, generator: torch.Generator | None = None) -> Tensor:
    """``drop_frames`` of ``count`` frames per clip, drawn uniformly without replacement per clip."""
    _check_clips("clips", clips)
    b, t = clips.shape[0], clips.shape[2]
    if not 0 <= count <= t:
        raise ValueError(f"count must lie in [0, T={t}], got {count}")
    if count == 0:
        return clips
    order = torch.rand(b, t, generator=generator, device=clips.device).argsort(dim=1)
    return drop_frames(clips, frame_drop_mask(order[:, :count], t))


class _StraightThroughDrop(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, clips: Tensor, scores: Tensor, count: int) -> Tensor:
        lowest = scores.topk(count, dim=1, largest=False).indices
        return drop_frames(clips, frame_drop_mask(lowest, clips.shape[2]))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor, None]:
        return None, grad.sum(dim=(1, 3, 4)), None


def adversarial_frame_drop(clips: Tensor, scores: Tensor, count: int) -> Tensor:
    """Drop the ``count`` frames with the smallest ``scores`` (``[B, T]``), straight-through.

    Forward: ``drop_frames`` of the ``count`` lowest-scored frames of each clip. Backward
    (``docs/methods/videomoco.md``): ``dL/ds_j = sum_{c,h,w} dL/dx~[:, c, j]`` for every frame
    ``j``, dropped or not, and no gradient reaches ``clips``.
    """
    _check_clips("clips", clips)
    if scores.shape != (clips.shape[0], clips.shape[2]):
        raise ValueError(f"scores must be [B, T] = {[clips.shape[0], clips.shape[2]]}, got {tuple(scores.shape)}")
    if not 0 <= count <= clips.shape[2]:
        raise ValueError(f"count must lie in [0, T={clips.shape[2]}], got {count}")
    out: Tensor = _StraightThroughDrop.apply(clips.detach(), scores, count)
    return out
