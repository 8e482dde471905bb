"""VCLR (Kuang et al., ICCV-W 2021; ``vclr.md``): video-level positives from segment tuples, on
top of SeCo's frame-level losses, with a temporal-order regulariser.

Per video of ``F`` decoded frames, one step (card §2-§3):

1. ``S`` segments; a key tuple and a query tuple take one element each per segment, never the
   same frame (``views.segments.segment_pair``). An element is a frame (``clip_length`` 1,
   a 2-D image backbone: the official frame-level form) or a clip of ``clip_length`` frames
   at ``clip_stride`` (a 3-D clip backbone, the card's §3 generalisation).
2. Every element is augmented with its own draw (the official pipeline is not clip-consistent).
3. The SeCo anchor is the query tuple's element of a random end segment (first or last);
   ``x_1`` is that same frame re-augmented, ``x_j`` (j >= 2) the query tuple's other elements.
4. Losses, each with its weight (0 switches it off, for the card's ablations):

   - ``L_inter``: ``u = inter(anchor)`` against each momentum key ``a_j = inter_k(x_j)``,
     ``S`` rows per video, negatives from ``Q_inter`` (temperature ``tau``);
   - ``L_intra``: ``w = intra(anchor)``, two logits ``[w.b_1, w.b_j] / tau_intra`` per
     ``j >= 2``, target 0;
   - ``L_vclr``: ``v = normalize(tsn(mean_s backbone(tuple_s)))`` of the query tuple against
     the key tuple's from the momentum encoder, negatives from ``Q_vclr``;
   - ``L_order``: with probability 1/2 each tuple is shuffled (neither forward nor reversed);
     a linear classifier on ``[o_q ; o_k]`` (order-head embeddings of both tuples in their
     presented order, ``o_k`` from the momentum encoder, detached) predicts
     ``1[q shuffled] + 2 1[k shuffled]``.

   After the losses ``Q_inter`` takes every ``a_j`` and ``Q_vclr`` every ``v_k``.

Deviations, marked [design]: the anchor's backbone feature is the query tuple's (the official
code runs one more forward of the identical tensor; only BatchNorm's batch differs); the
momentum encoder takes every key-side element in one shuffled pass (the official code: three
single-frame passes and one tuple pass; again only BatchNorm's batch differs); queues
start as random unit vectors like every queue here (the official ``uniform(-s, s)``); and
``inter_positive`` adds the card's §6 baselines, frame-instance MoCo (``same_frame``: the
positive is ``x_1`` only) and clip-level MoCo (``same_segment``: the key tuple's element of
the anchor's segment).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from contrastkit.functional.contrastive import info_nce
from contrastkit.memory.queue import Queue
from contrastkit.methods.base import Batch, ContrastiveMethod, StepOutput
from contrastkit.nn.backbones import Backbone
from contrastkit.nn.heads import ProjectionHead
from contrastkit.nn.momentum import MomentumEncoder
from contrastkit.nn.shuffle import shuffled_forward
from contrastkit.nn.split_batchnorm import convert_to_split_batchnorm
from contrastkit.nn.video import FramewiseEncoder
from contrastkit.registry import MethodParams, register_method
from contrastkit.views.segments import gather_frames, order_shuffles, segment_pair
from contrastkit.views.video import ClipAugmentation

__all__ = ["VCLR", "VCLRParams", "VCLROutputs", "intra_loss"]

HEADS = ("inter", "intra", "order", "tsn")


class VCLRParams(MethodParams):
    """Recipe options of ``VCLR`` (card §6 CPU scale by default)."""

    name: Literal["vclr"] = "vclr"
    segments: int = Field(3, ge=1)
    temperature: float = Field(0.1, gt=0)
    intra_temperature: float = Field(0.1, gt=0)
    queue_size: int = Field(4096, gt=0)
    momentum: float = Field(0.99, ge=0, le=1)
    split_bn: int = Field(4, ge=1)
    shuffle_keys: bool = True
    proj_hidden: int = Field(128, gt=0)
    proj_dim: int = Field(32, gt=0)
    inter_weight: float = Field(1.0, ge=0)
    intra_weight: float = Field(1.0, ge=0)
    vclr_weight: float = Field(1.0, ge=0)
    order_weight: float = Field(1.0, ge=0)
    order_norm: Literal["frames", "features"] = "frames"
    inter_positive: Literal["segments", "same_frame", "same_segment"] = "segments"

    @classmethod
    def smoke(cls, method: dict[str, Any]) -> None:
        if "queue_size" in method:
            method["queue_size"] = min(int(method["queue_size"]), 256)


class VCLROutputs(dict):
    """The step's losses by name (``inter``, ``intra``, ``vclr``, ``order``) and ``order_acc``."""


@register_method("vclr", VCLRParams, task="clips", summary="VCLR: segment-tuple positives + SeCo + order (vclr.md)")
class VCLR(ContrastiveMethod):
    """VCLR on a frame encoder (2-D) or a clip encoder (3-D).

    Args:
        backbone: an image encoder (``clip_length`` None or 1) or a clip encoder.
        augmentation: a ``ClipAugmentation`` (one draw per element).
        segments: ``S`` (3; the order task needs ``S >= 3``).
        temperature: ``tau`` of ``L_inter`` and ``L_vclr`` (0.1).
        intra_temperature: ``tau_intra`` of ``L_intra`` (0.1).
        queue_size: ``K`` of ``Q_inter`` and ``Q_vclr``.
        momentum: EMA coefficient of the key encoder (0.999 officially; 0.99 at CPU scale).
        split_bn: BatchNorm splits (ShuffleBN on one device; 1 = plain BN).
        shuffle_keys: encode keys in a shuffled batch.
        proj_hidden, proj_dim: the four heads ``D -> hidden -> ReLU -> dim``.
        inter_weight, intra_weight, vclr_weight, order_weight: loss weights (0 = off).
        order_norm: ``"frames"`` normalises order embeddings across the ``S`` elements, as the
            official code does (card pitfall 3); ``"features"`` across their dimensions.
        inter_positive: ``"segments"`` (VCLR), ``"same_frame"`` or ``"same_segment"`` (baselines).
        clip_length, clip_stride: elements of ``clip_length`` frames at ``clip_stride``
            (None / 1: single frames through a 2-D backbone).
        **base: ``ContrastiveMethod`` arguments.
    """

    def __init__(
        self,
        backbone: Backbone,
        augmentation: ClipAugmentation,
        *,
        segments: int = 3,
        temperature: float = 0.1,
        intra_temperature: float = 0.1,
        queue_size: int = 4096,
        momentum: float = 0.99,
        split_bn: int = 4,
        shuffle_keys: bool = True,
        proj_hidden: int = 128,
        proj_dim: int = 32,
        inter_weight: float = 1.0,
        intra_weight: float = 1.0,
        vclr_weight: float = 1.0,
        order_weight: float = 1.0,
        order_norm: str = "frames",
        inter_positive: str = "segments",
        clip_length: int | None = None,
        clip_stride: int = 1,
        **base: Any,
    ) -> None:
        if order_weight > 0 and segments < 3:
            raise ValueError(f"the order task needs segments >= 3 (got {segments}); set order_weight=0")
        if order_norm not in ("frames", "features"):
            raise ValueError(f"order_norm must be 'frames' or 'features', got {order_norm!r}")
        if inter_positive not in ("segments", "same_frame", "same_segment"):
            raise ValueError(f"inter_positive must be segments, same_frame or same_segment, got {inter_positive!r}")
        if not any(w > 0 for w in (inter_weight, intra_weight, vclr_weight, order_weight)):
            raise ValueError("every loss weight is 0: nothing to train")
        if split_bn > 1:
            convert_to_split_batchnorm(backbone, split_bn)
        super().__init__(backbone, augmentation, **base)  # type: ignore[arg-type]
        self.segments = segments
        self.temperature = temperature
        self.intra_temperature = intra_temperature
        self.momentum = momentum
        self.shuffle_keys = shuffle_keys
        self.weights = {"inter": inter_weight, "intra": intra_weight, "vclr": vclr_weight, "order": order_weight}
        self.order_norm = order_norm
        self.inter_positive = inter_positive
        self.clip_length = clip_length if clip_length and clip_length > 1 else 1
        self.clip_stride = clip_stride
        self.shuffle_probability = 0.5  # each tuple's chance of being shuffled for the order task
        dim = backbone.feature_dim
        self.heads = nn.ModuleDict({h: ProjectionHead(dim, proj_hidden, proj_dim) for h in HEADS})
        self.order_classifier = nn.Linear(2 * segments * proj_dim, 4)
        self.momentum_backbone = MomentumEncoder(backbone)
        self.momentum_heads = MomentumEncoder(self.heads)
        self.queue_inter = Queue(queue_size, proj_dim)
        self.queue_vclr = Queue(queue_size, proj_dim)

    @property
    def frame_level(self) -> bool:
        return self.clip_length == 1

    @property
    def clip_encoder(self) -> nn.Module:
        """What clip evaluation runs: the backbone, or the backbone per frame averaged (2-D)."""
        return FramewiseEncoder(self.backbone) if self.frame_level else self.backbone

    def embed(self, images: Tensor) -> Tensor:
        """Monitor features of whole videos ``[B, C, F, H, W]``: 8 evenly spaced elements, averaged."""
        frames = images.shape[2]
        picks = torch.linspace(0, frames - 1, min(8, frames)).round().long().to(images.device)
        if self.frame_level:
            return self.clip_encoder(self.preprocess(images.index_select(2, picks)))
        return self.backbone(self.preprocess(images))

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self.momentum_backbone.module), (self.heads, self.momentum_heads.module)]

    # --- sampling -----------------------------------------------------------------------

    def elements(self, videos: Tensor, starts: Tensor) -> Tensor:
        """Raw elements ``[B, S, C, T, H, W]`` at tuple ``starts`` ``[B, S]`` of ``[B, C, F, H, W]``."""
        offsets = self.clip_stride * torch.arange(self.clip_length)
        frames = gather_frames(videos, starts[..., None] + offsets)  # [B, C, S, T, H, W]
        return frames.transpose(1, 2)

    def augment(self, elements: Tensor, generator: torch.Generator) -> Tensor:
        """One augmentation draw per element: ``[B, S, C, T, H, W]`` -> the same, normalised."""
        b, s = elements.shape[:2]
        out: Tensor = self.augmentation(elements.flatten(0, 1), generator)
        return out.view(b, s, *out.shape[1:])

    def _encode(self, encoder: nn.Module, elements: Tensor) -> Tensor:
        """``[N, C, T, H, W]`` -> ``[N, D]`` (frames squeezed for a 2-D backbone)."""
        return encoder(elements[:, :, 0] if self.frame_level else elements)

    def sample(self, videos: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
        """Tuples, order shuffles, end segments and order labels for ``videos`` ``[B, C, F, H, W]``."""
        b, frames = videos.shape[0], videos.shape[2]
        span = (self.clip_length - 1) * self.clip_stride + 1
        key_starts, query_starts = segment_pair(b, frames, self.segments, generator, span=span)
        order_q, shuffled_q = self._shuffles(b, generator)
        order_k, shuffled_k = self._shuffles(b, generator)
        end = torch.where(torch.rand(b, generator=generator) < 0.5, 0, self.segments - 1)
        return {
            "key_starts": key_starts,
            "query_starts": query_starts,
            "order_q": order_q,
            "order_k": order_k,
            "order_label": shuffled_q.long() + 2 * shuffled_k.long(),
            "end": end,
        }

    def _shuffles(self, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        if self.segments < 3:
            return _no_shuffle(batch, self.segments)
        return order_shuffles(batch, self.segments, generator, self.shuffle_probability)

    # --- the step -----------------------------------------------------------------------

    def order_logits(self, features_q: Tensor, features_k: Tensor, order_q: Tensor, order_k: Tensor) -> Tensor:
        """``[B, 4]`` from per-element backbone features ``[B, S, D]`` of both tuples (natural
        order) presented in ``order_q`` / ``order_k``; the key side is detached."""
        o_q = self._order_embedding(self.heads["order"], features_q, order_q)
        with torch.no_grad():
            o_k = self._order_embedding(self.momentum_heads.module["order"], features_k, order_k)
        return self.order_classifier(torch.cat([o_q.flatten(1), o_k.flatten(1)], dim=1))

    def _order_embedding(self, head: nn.Module, features: Tensor, order: Tensor) -> Tensor:
        presented = features.gather(1, order[..., None].expand_as(features))
        return F.normalize(head(presented), dim=1 if self.order_norm == "frames" else 2)

    def losses(self, videos: Tensor, generator: torch.Generator) -> VCLROutputs:
        """The four losses (only those with weight > 0) of one batch of ``[B, C, F, H, W]`` videos;
        enqueues nothing (``step`` does, after the update)."""
        b, s = videos.shape[0], self.segments
        draw = self.sample(videos, generator)
        raw_q = self.elements(videos, draw["query_starts"])
        x_q = self.augment(raw_q, generator)  # [B, S, C, T, H, W]
        x_k = self.augment(self.elements(videos, draw["key_starts"]), generator)
        rows = torch.arange(b)
        x_1 = self.augment(raw_q[rows, draw["end"]][:, None], generator)[:, 0]  # the anchor's frame, re-augmented
        others = torch.tensor([[j for j in range(s) if j != e] for e in draw["end"].tolist()], dtype=torch.long)
        x_others = x_q[rows[:, None], others]  # [B, S-1, ...]: the query tuple's other elements

        features_q = self._encode(self.backbone, x_q.flatten(0, 1)).view(b, s, -1)
        anchor = features_q[rows, draw["end"]]

        # keys: x_1, the other query elements and the key tuple, one shuffled momentum forward
        key_input = torch.cat([x_1, x_others.flatten(0, 1), x_k.flatten(0, 1)])
        key_features = self._key_features(key_input)
        f_1, f_others, features_k = key_features.split([b, b * (s - 1), b * s])
        features_k = features_k.view(b, s, -1)
        out = VCLROutputs()
        heads_k = self.momentum_heads.module
        if self.weights["inter"] > 0:
            u = self.heads["inter"](anchor)
            with torch.no_grad():
                if self.inter_positive == "segments":
                    positives = torch.cat([f_1[:, None], f_others.view(b, s - 1, -1)], dim=1)  # [B, S, D]
                elif self.inter_positive == "same_frame":
                    positives = f_1[:, None]
                else:
                    positives = features_k[rows, draw["end"]][:, None]
                a = F.normalize(heads_k["inter"](positives), dim=2)
            n = a.shape[1]
            out["inter"] = info_nce(
                u.repeat_interleave(n, dim=0),
                a.flatten(0, 1),
                self.queue_inter.keys.detach(),
                temperature=self.temperature,
            )
            out["_inter_keys"] = a.flatten(0, 1)
            out["_u"] = u
        if self.weights["intra"] > 0 and s > 1:
            w = self.heads["intra"](anchor)
            with torch.no_grad():
                b_1 = heads_k["intra"](f_1)
                b_j = heads_k["intra"](f_others).view(b, s - 1, -1)
            out["intra"] = intra_loss(w, b_1, b_j, self.intra_temperature)
        if self.weights["vclr"] > 0:
            v_q = self.heads["tsn"](features_q.mean(dim=1))
            with torch.no_grad():
                v_k = F.normalize(heads_k["tsn"](features_k.mean(dim=1)), dim=1)
            out["vclr"] = info_nce(v_q, v_k, self.queue_vclr.keys.detach(), temperature=self.temperature)
            out["_vclr_keys"] = v_k
            out["_vclr_query"] = v_q
        if self.weights["order"] > 0:
            logits = self.order_logits(features_q, features_k, draw["order_q"], draw["order_k"])
            label = draw["order_label"].to(logits.device)
            out["order"] = F.cross_entropy(logits, label)
            out["order_acc"] = (logits.argmax(1) == label).float().mean().detach()
        return out

    @torch.no_grad()
    def _key_features(self, x: Tensor) -> Tensor:
        def encode(chunk: Tensor) -> tuple[Tensor]:
            return (self._encode(self.momentum_backbone, chunk),)

        if self.shuffle_keys:
            return shuffled_forward(encode, x, self.shared_generator(1))[0]
        return encode(x)[0]

    def step(self, batch: Batch) -> StepOutput:
        out = self.losses(batch["input"], self.generator(0))
        loss = sum(self.weights[name] * out[name] for name in ("inter", "intra", "vclr", "order") if name in out)
        assert isinstance(loss, Tensor)
        if self._trainer is not None:
            for name in ("inter", "intra", "vclr", "order", "order_acc"):
                if name in out:
                    self.log(f"train/{name}", out[name].detach(), on_step=False, on_epoch=True, sync_dist=True)
        if "_inter_keys" in out:
            self.queue_inter.enqueue(out["_inter_keys"])
        if "_vclr_keys" in out:
            self.queue_vclr.enqueue(out["_vclr_keys"])
        if "_u" in out:
            u = F.normalize(out["_u"].detach(), dim=1)
            n = out["_inter_keys"].shape[0] // u.shape[0]
            pos = (u * out["_inter_keys"][::n]).sum(1)
            return StepOutput(loss, pos, (u @ self.queue_inter.keys[:512].t()).flatten())
        return StepOutput(loss)

    @torch.no_grad()
    def order_accuracy(self, videos: Tensor, seed: int = 0, batch_size: int = 64) -> float:
        """Order-head accuracy (%) on tuples drawn (seeded) from held-out ``videos``, eval mode."""
        was = self.training
        self.eval()
        g = torch.Generator().manual_seed(seed)
        correct = 0
        try:
            for first in range(0, len(videos), batch_size):
                chunk = videos[first : first + batch_size]
                b, s = chunk.shape[0], self.segments
                draw = self.sample(chunk, g)
                x_q = self.preprocess(self.elements(chunk, draw["query_starts"]).flatten(0, 1))
                x_k = self.preprocess(self.elements(chunk, draw["key_starts"]).flatten(0, 1))
                f_q = self._encode(self.backbone, x_q).view(b, s, -1)
                f_k = self._encode(self.momentum_backbone, x_k).view(b, s, -1)
                logits = self.order_logits(f_q, f_k, draw["order_q"], draw["order_k"])
                correct += int((logits.argmax(1) == draw["order_label"]).sum())
        finally:
            self.train(was)
        return 100.0 * correct / len(videos)

    @property
    def extra_metric_labels(self) -> dict[str, str]:
        return {"order_accuracy": "order head accuracy (4-way, %)"} if self.segments >= 3 else {}

    def extra_metrics(self, test_videos: Tensor, seed: int) -> dict[str, float]:
        """Method-specific numbers for the clip task's report."""
        return {"order_accuracy": self.order_accuracy(test_videos, seed)} if self.segments >= 3 else {}


def intra_loss(w: Tensor, b_1: Tensor, b_others: Tensor, temperature: float = 0.1) -> Tensor:
    """SeCo's intra-video loss (``vclr.md`` §2): for every other segment ``j``, two logits
    ``[w.b_1, w.b_j] / tau`` with target 0, averaged over the ``B (S - 1)`` rows.

    Args:
        w: ``[B, D]`` the anchor's intra embedding (normalised here).
        b_1: ``[B, D]`` the momentum embedding of the anchor's frame re-augmented.
        b_others: ``[B, S - 1, D]`` the momentum embeddings of the other segments' frames.
    """
    w, b_1, b_others = F.normalize(w, dim=-1), F.normalize(b_1, dim=-1), F.normalize(b_others, dim=-1)
    positive = (w * b_1).sum(-1)[:, None].expand(b_others.shape[:2])
    negative = (w[:, None] * b_others).sum(-1)
    logits = torch.stack([positive, negative], dim=2).flatten(0, 1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


def _no_shuffle(batch: int, segments: int) -> tuple[Tensor, Tensor]:
    return torch.arange(segments).expand(batch, segments), torch.zeros(batch, dtype=torch.bool)
