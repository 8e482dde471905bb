"""VideoMoCo (Pan et al., CVPR 2021; ``docs/methods/videomoco.md``): MoCo on clips, with a generator G that
drops the frames the encoder most depends on (adversarial frame dropping) and a temporal decay
``t ** age`` of the queue's similarities.

One step (as alternating updates [design]; ``docs/methods/videomoco.md``):

1. keys ``k`` of the key view from the momentum encoder (EMA before the forward, ShuffleBN);
2. G's update (after the D-only warm-up): ``x~ = drop(x, G(x))`` of the ``round(r T)``
   lowest-scored frames (straight-through), ``q = phi(x~)``, ``q_r = phi(x)`` with the encoder
   frozen; ``L_G = -w * mean|q - q_r|`` (``w = 100``) on normalised embeddings. With
   ``official_grad_leak`` G also descends ``L_D`` (the official code never zeroes G's gradients
   before ``L_D.backward``);
3. the encoder's update on ``L_D = InfoNCE(phi(x~), k, queue)`` with the decayed queue, ``x~``
   from the updated G and no gradient to G; then ``k`` is enqueued.

The official code takes both optimiser steps after both backward passes of one forward; here
each player updates on its own forward, the usual form of an adversarial game under Lightning
and DDP. ``drop="random"`` is our control arm (random frames, no G), ``drop="none"`` and
``decay=1`` make it MoCo on clips.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from contrastkit.losses import InfoNCELoss
from contrastkit.methods.base import Batch, StepOutput
from contrastkit.methods.clip_base import ClipMethod
from contrastkit.methods.moco import MoCo, MoCoParams
from contrastkit.nn.backbones import Backbone
from contrastkit.nn.clip_encoders import FrameScorer
from contrastkit.registry import register_method
from contrastkit.views.clips import (
    ClipAugmentation,
    adversarial_frame_drop,
    drop_frames,
    frame_drop_mask,
    random_frame_drop,
    temporal_crop,
)

__all__ = ["VideoMoCo", "VideoMoCoParams"]


class VideoMoCoParams(MoCoParams):
    """Options of ``VideoMoCo``: MoCo's at the CPU scale (K 1024, tau 0.07, 32-d head) plus

    Attributes:
        drop: ``"adversarial"`` (G), ``"random"`` (control) or ``"none"``.
        drop_ratio: fraction of the ``T`` frames dropped (``round(r T)``; 8 of 32 officially).
        decay: ``t`` of the queue decay (0.99999 officially; 0.98 at CPU scale; 1 = off).
        warmup_fraction: the first fraction of epochs trains the encoder alone on clean clips.
        generator_width: width of the frame scorer G.
        generator_weight: ``w`` of ``L_G = -w mean|q - q_r|``.
        official_grad_leak: G also descends ``L_D``, as the official code does.
    """

    name: Literal["videomoco"] = "videomoco"  # type: ignore[assignment]
    temperature: float = Field(0.07, gt=0)
    queue_size: int = Field(1024, gt=0)
    proj_dim: int = Field(32, gt=0)
    drop: Literal["adversarial", "random", "none"] = "adversarial"
    drop_ratio: float = Field(0.25, ge=0, lt=1)
    decay: float = Field(0.98, gt=0, le=1)
    warmup_fraction: float = Field(0.3, ge=0, le=1)
    generator_width: int = Field(16, gt=0)
    generator_weight: float = Field(100.0, ge=0)
    official_grad_leak: bool = False


@register_method("videomoco", VideoMoCoParams, task="clips", summary="VideoMoCo: adversarial frame drop + queue decay")
class VideoMoCo(MoCo, ClipMethod):
    """VideoMoCo on a clip encoder (``[B, C, T, H, W]`` -> ``[B, D]``).

    Each step takes one random window of ``clip_length`` frames at ``clip_stride`` from the
    decoded frames; both views are crops of that window (the official key is the same frames).

    Args:
        backbone: a clip encoder.
        augmentation: a ``ClipAugmentation``.
        params: the options (``VideoMoCoParams``); keywords named like its fields override them.
        **base: ``ClipMethod`` keyword arguments (``clip_length``, ``clip_stride``, ``seed``, ...).
    """

    params: VideoMoCoParams

    def __init__(
        self, backbone: Backbone, augmentation: ClipAugmentation, params: VideoMoCoParams | None = None, **options: Any
    ) -> None:
        p, base = VideoMoCoParams.resolve(params, options)
        super().__init__(backbone, augmentation, p, **base)  # type: ignore[arg-type]
        self.frame_scorer = FrameScorer(3, p.generator_width) if p.drop == "adversarial" else None
        self.last_dropped: Tensor | None = None  # [B, count] frames G dropped in the last step

    def make_criterion(self, p: MoCoParams) -> InfoNCELoss:
        assert isinstance(p, VideoMoCoParams)
        return InfoNCELoss(
            p.temperature,
            beta=p.beta,
            tau_plus=p.tau_plus,
            queue_size=p.queue_size,
            dim=p.proj_dim,
            queue_decay=p.decay,
        )

    def players(self) -> dict[str, list[nn.Module]]:
        if self.frame_scorer is None:
            return super().players()
        return {"generator": [self.frame_scorer], "encoder": [self.backbone, self.projection]}

    def views(self, images: Tensor, count: int = 2) -> list[Tensor]:
        """Two augmented views of one random window of the clip (the same frames)."""
        g = self.generator(0)
        if self.clip_length is not None:
            images = temporal_crop(images, self.clip_length, self.clip_stride, g)
        return [self.augmentation(images, g) for _ in range(count)]

    def dropped_count(self, frames: int) -> int:
        return round(self.params.drop_ratio * frames)

    def in_warmup(self) -> bool:
        trainer = self._trainer
        if trainer is None or not trainer.max_epochs:
            return False
        return self.current_epoch < round(self.params.warmup_fraction * trainer.max_epochs)

    def step(self, batch: Batch) -> StepOutput:
        clips, indices = batch["input"], batch["index"]
        x_q, x_k = self.views(clips)
        (k,) = self.keys(x_k)
        count = self.dropped_count(x_q.shape[2])
        x_drop = x_q
        if self.params.drop == "random" and not self.in_warmup():
            x_drop = random_frame_drop(x_q, count, self.generator(3))
        elif self.frame_scorer is not None and not self.in_warmup():
            self._generator_update(x_q, k, count)
            with torch.no_grad():  # the encoder's turn: G's choice only, no gradient to pass through
                lowest = self.frame_scorer(x_q).topk(count, dim=1, largest=False).indices
            x_drop = drop_frames(x_q, frame_drop_mask(lowest, x_q.shape[2]))
            self.last_dropped = lowest
        if self.automatic_optimization:
            q = self.query(x_drop)
            loss = self.contrast(q, k, indices)
        else:
            with self.player("encoder") as update:
                q = self.query(x_drop)
                loss = self.contrast(q, k, indices)
                update(loss)
        negatives = self.queue_similarities(q, self.criterion.queue_negatives())
        self.enqueue(k, indices)
        pos = (F.normalize(q.detach(), dim=1) * F.normalize(k, dim=1)).sum(1)
        return StepOutput(loss, pos, negatives)

    def generator_loss(self, x_q: Tensor, k: Tensor, count: int) -> Tensor:
        """``L_G = -w mean|q - q_r|`` (plus ``L_D`` with ``official_grad_leak``) on ``x_q``'s drop."""
        assert self.frame_scorer is not None
        x_drop = adversarial_frame_drop(x_q, self.frame_scorer(x_q), count)
        q = self.query(x_drop)
        q_r = self.query(x_q)
        loss = -self.params.generator_weight * (F.normalize(q, dim=1) - F.normalize(q_r, dim=1)).abs().mean()
        if self.params.official_grad_leak:
            loss = loss + self.contrast(q, k, None)
        return loss

    def _generator_update(self, x_q: Tensor, k: Tensor, count: int) -> None:
        with self.player("generator") as update:
            loss = self.generator_loss(x_q, k, count)
            update(loss)
        self.log_terms({"generator_loss": loss})

    def dropped_frames(self, clip: Tensor) -> list[int] | None:
        """The ``round(r T)`` frames G scores lowest in ``clip`` (None without G)."""
        if self.frame_scorer is None:
            return None
        was = self.frame_scorer.training
        self.frame_scorer.eval()
        with torch.no_grad():
            scores = self.frame_scorer(clip)
        self.frame_scorer.train(was)
        return scores.topk(self.dropped_count(clip.shape[2]), dim=1, largest=False).indices[0].tolist()
