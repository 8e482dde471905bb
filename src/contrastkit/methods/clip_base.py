"""The contract between a clip method and the ``clips`` task: what the task gives every clip
method and what a method may provide for the clip evaluation, each with a default.

The task builds the method with ``backbone`` (a clip encoder, or an image encoder for
frame-level methods), ``augmentation`` (a ``ClipAugmentation``), ``optimizer``, ``num_classes``,
``knn_k``, ``knn_temperature``, ``seed`` and the evaluation window ``clip_length`` /
``clip_stride`` (``data.clip_length`` / ``data.clip_stride``). Batches are
``{"input": uint8 [B, 3, F, S, S], "label": [B], "index": [B]}`` (plus ``"frame_label"``
``[B, F]`` where the dataset has per-frame labels): whole decoded videos, from which the method
takes its own windows.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from contrastkit.methods.base import ContrastiveMethod
from contrastkit.nn.backbones import Backbone
from contrastkit.nn.clip_encoders import FramewiseEncoder

__all__ = ["ClipMethod"]

MONITOR_FRAMES = 8
"""Evenly spaced frames a frame-level method's kNN monitor averages per video."""


class ClipMethod(ContrastiveMethod):
    """Base of the methods of the ``clips`` task (VideoMoCo, VCLR, long/short views).

    Override what applies; the defaults are right for a method that trains ``backbone`` as a
    clip encoder and has nothing more to report.

    Args:
        backbone, augmentation, **base: see ``ContrastiveMethod``.
        clip_length, clip_stride: the window the evaluation encodes (None: the input whole);
            a method may sample its training windows from it or ignore it.
    """

    def __init__(
        self,
        backbone: Backbone,
        augmentation: Any,
        *,
        clip_length: int | None = None,
        clip_stride: int = 1,
        **base: Any,
    ) -> None:
        super().__init__(backbone, augmentation, **base)
        self.clip_length = clip_length
        self.clip_stride = clip_stride
        self.frame_level = False
        """True for a method that trains a 2-D image backbone on single frames (VCLR's official
        form): clips are then encoded frame by frame and averaged."""

    @property
    def clip_encoder(self) -> nn.Module:
        """What the evaluation encodes clips ``[N, C, T, H, W]`` with: the backbone, or at frame
        level the backbone per frame, averaged."""
        return FramewiseEncoder(self.backbone) if self.frame_level else self.backbone

    def encode_elements(self, encoder: nn.Module, elements: Tensor) -> Tensor:
        """``[N, C, T, H, W]`` -> ``[N, D]`` (at frame level ``T`` is 1 and squeezed)."""
        out: Tensor = encoder(elements[:, :, 0] if self.frame_level else elements)
        return out

    def embed(self, images: Tensor) -> Tensor:
        """Monitor features of whole videos ``[B, C, F, H, W]`` (at frame level: ``MONITOR_FRAMES``
        evenly spaced frames, averaged)."""
        if not self.frame_level:
            return super().embed(images)
        frames = images.shape[2]
        picks = torch.linspace(0, frames - 1, min(MONITOR_FRAMES, frames)).round().long().to(images.device)
        out: Tensor = self.clip_encoder(self.preprocess(images.index_select(2, picks)))
        return out

    def feature_parts(self) -> dict[str, slice]:
        """Named slices of the feature that the evaluation probes one by one (default: none)."""
        return {}

    def extra_metric_labels(self) -> dict[str, str]:
        """``{key: column label}`` of the numbers ``extra_metrics`` returns (default: none)."""
        return {}

    def extra_metrics(self, test_videos: Tensor, seed: int) -> dict[str, float]:
        """Method-specific numbers on the raw test videos ``uint8 [N, C, F, H, W]``."""
        return {}

    def dropped_frames(self, clip: Tensor) -> list[int] | None:
        """The frames of one normalised clip ``[1, C, T, H, W]`` the method would drop, for the
        report's frame strip; None when the method drops no frames (the default)."""
        return None
