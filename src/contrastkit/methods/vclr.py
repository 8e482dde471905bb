"""VCLR (Kuang et al., ICCV-W 2021; ``docs/video.md``, "VCLR"): video-level positives from segment
tuples, on top of SeCo's frame-level losses, with a temporal-order regulariser.

Per video, ``S`` segments give a key and a query tuple (``views.segments``: one element each per
segment, never the same frame; a frame through a 2-D backbone or a clip through a 3-D one), each
element augmented by its own draw. The SeCo anchor is the query tuple's element of a random end
segment, ``x_1`` its frame re-augmented, ``x_j`` the query tuple's other elements. Losses, each
with a weight (0 = off): ``L_inter`` (``u = inter(anchor)`` against each momentum key ``a_j``,
negatives ``Q_inter``), ``L_intra`` (``functional.video.intra_loss``), ``L_vclr`` (the query
tuple's ``tsn`` embedding of its mean feature against the key tuple's, negatives ``Q_vclr``) and
``L_order`` (a 4-way classifier: was each tuple shuffled). After all losses ``Q_inter`` takes every
``a_j`` and ``Q_vclr`` every ``v_k``. [design] The anchor's feature is the query tuple's; the
momentum encoder takes every key-side element in one shuffled pass; ``inter_positive`` adds the
``same_frame`` and ``same_segment`` baselines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor, nn

from contrastkit.evaluation.clips import order_accuracy
from contrastkit.functional.contrastive import info_nce
from contrastkit.functional.video import intra_loss
from contrastkit.memory.queue import Queue
from contrastkit.methods.base import Batch, StepOutput, weighted_sum
from contrastkit.methods.clip_base import ClipMethod
from contrastkit.methods.moco import EMA_NOT_SGD, shrink_queues
from contrastkit.nn.backbones import Backbone
from contrastkit.nn.heads import ProjectionHead, order_embedding
from contrastkit.nn.momentum import MomentumEncoder
from contrastkit.nn.split_batchnorm import convert_to_split_batchnorm
from contrastkit.registry import MethodParams, register_method
from contrastkit.views.clips import ClipAugmentation
from contrastkit.views.segments import SegmentTuples, draw_segment_tuples, segment_tuple_views, tuple_elements

__all__ = ["VCLR", "VCLRParams", "VCLRStep"]

HEADS = ("inter", "intra", "order", "tsn")
SHUFFLE_PROBABILITY = 0.5  # each tuple's chance of being shuffled for the order task


class VCLRParams(MethodParams):
    """Options of ``VCLR`` (CPU scale by default).

    Attributes:
        segments: ``S`` (3; the order task needs ``S >= 3``).
        temperature: ``tau`` of ``L_inter`` and ``L_vclr`` (0.1).
        intra_temperature: ``tau_intra`` of ``L_intra`` (0.1).
        queue_size: ``K`` of ``Q_inter`` and ``Q_vclr``.
        ema_momentum: EMA rate of the key encoder (0.999 officially; 0.99 at CPU scale).
        split_bn: BatchNorm splits (ShuffleBN on one device; 1 = plain BN).
        shuffle_keys: encode keys in a shuffled batch.
        proj_hidden, proj_dim: the four heads ``D -> hidden -> ReLU -> dim``.
        inter_weight, intra_weight, vclr_weight, order_weight: loss weights (0 = off).
        order_norm: ``"frames"`` normalises order embeddings across the ``S`` elements, as the
            official code does; ``"features"`` across their dimensions.
        inter_positive: ``"segments"`` (VCLR), ``"same_frame"`` or ``"same_segment"`` (baselines).
    """

    name: Literal["vclr"] = "vclr"
    renamed: ClassVar[dict[str, tuple[str, str]]] = {"momentum": ("ema_momentum", EMA_NOT_SGD)}
    segments: int = Field(3, ge=1)
    temperature: float = Field(0.1, gt=0)
    intra_temperature: float = Field(0.1, gt=0)
    queue_size: int = Field(4096, gt=0)
    ema_momentum: float = Field(0.99, ge=0, le=1)
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

    @model_validator(mode="after")
    def _trainable(self) -> VCLRParams:
        if self.order_weight > 0 and self.segments < 3:
            raise ValueError(f"the order task needs segments >= 3 (got {self.segments}); set order_weight=0")
        if not any(w > 0 for w in (self.inter_weight, self.intra_weight, self.vclr_weight, self.order_weight)):
            raise ValueError("every loss weight is 0: nothing to train")
        return self

    @classmethod
    def smoke(cls, method: dict[str, Any]) -> None:
        shrink_queues(method, "queue_size")


@dataclass
class VCLRStep:
    """What ``VCLR.losses`` computes for one batch: ``terms``, the losses with weight > 0 by name;
    ``order_acc`` with the order term; with the inter term the anchor's ``u`` ``[B, d]``
    (``inter_query``) and its ``n`` normalised positives ``[B n, d]`` for ``Q_inter``
    (``inter_keys``); with the vclr term the query tuples' embeddings ``[B, d]`` (``vclr_query``)
    and the key tuples' normalised ones for ``Q_vclr`` (``vclr_keys``)."""

    terms: dict[str, Tensor] = field(default_factory=dict)
    order_acc: Tensor | None = None
    inter_query: Tensor | None = None
    inter_keys: Tensor | None = None
    vclr_query: Tensor | None = None
    vclr_keys: Tensor | None = None


@register_method("vclr", VCLRParams, task="clips", summary="VCLR: segment-tuple positives + SeCo + order")
class VCLR(ClipMethod):
    """VCLR on a frame encoder (2-D, ``clip_length`` None or 1) or a clip encoder (3-D).

    Args:
        backbone, augmentation: an image (frame level) or clip encoder; a ``ClipAugmentation``.
        params: the options (``VCLRParams``); keywords named like its fields override them.
        **base: ``ClipMethod`` arguments (``clip_length``, ``clip_stride``: the elements).
    """

    params: VCLRParams

    def __init__(
        self, backbone: Backbone, augmentation: ClipAugmentation, params: VCLRParams | None = None, **options: Any
    ) -> None:
        p, base = VCLRParams.resolve(params, options)
        if p.split_bn > 1:
            convert_to_split_batchnorm(backbone, p.split_bn)
        super().__init__(backbone, augmentation, **base)
        self.params = p
        self.ema_momentum = p.ema_momentum
        self.element_length: int = self.clip_length if self.clip_length and self.clip_length > 1 else 1
        self.frame_level = self.element_length == 1
        self.shuffle_probability = SHUFFLE_PROBABILITY
        self.weights = {
            "inter": p.inter_weight,
            "intra": p.intra_weight,
            "vclr": p.vclr_weight,
            "order": p.order_weight,
        }
        dim = backbone.feature_dim
        self.heads = nn.ModuleDict({h: ProjectionHead(dim, p.proj_hidden, p.proj_dim) for h in HEADS})
        self.order_classifier = nn.Linear(2 * p.segments * p.proj_dim, 4)
        self.momentum_backbone = MomentumEncoder(backbone)
        self.momentum_heads = MomentumEncoder(self.heads)
        self.queue_inter = Queue(p.queue_size, p.proj_dim)
        self.queue_vclr = Queue(p.queue_size, p.proj_dim)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self.momentum_backbone.module), (self.heads, self.momentum_heads.module)]

    def sample(self, videos: Tensor, generator: torch.Generator) -> SegmentTuples:
        """Tuples, order shuffles and end segments for ``videos`` ``[B, C, F, H, W]``."""
        b, frames, span = videos.shape[0], videos.shape[2], (self.element_length - 1) * self.clip_stride + 1
        segments = self.params.segments
        return draw_segment_tuples(
            b, frames, segments, generator, span=span, shuffle_probability=self.shuffle_probability
        )

    def order_logits(self, features_q: Tensor, features_k: Tensor, order_q: Tensor, order_k: Tensor) -> Tensor:
        """``[B, 4]`` from per-element backbone features ``[B, S, D]`` of both tuples (natural
        order) presented in ``order_q`` / ``order_k``; the key side is detached."""
        across = self.params.order_norm
        o_q = order_embedding(self.heads["order"], features_q, order_q, across)
        with torch.no_grad():
            o_k = order_embedding(self.momentum_heads.module["order"], features_k, order_k, across)
        return self.order_classifier(torch.cat([o_q.flatten(1), o_k.flatten(1)], dim=1))

    def losses(self, videos: Tensor, generator: torch.Generator) -> VCLRStep:
        """The losses with weight > 0 of one batch of ``[B, C, F, H, W]`` videos and the keys
        for the queues; enqueues nothing (``step`` does, after all losses)."""
        p, b, s = self.params, videos.shape[0], self.params.segments
        draw = self.sample(videos, generator)
        x = segment_tuple_views(videos, draw, self.augmentation, generator, self.element_length, self.clip_stride)
        rows = torch.arange(b)
        features_q = self.encode_elements(self.backbone, x.query.flatten(0, 1)).view(b, s, -1)
        anchor = features_q[rows, draw.end]
        # keys: the anchor re-augmented, the other query elements and the key tuple, one shuffled forward
        key_input = torch.cat([x.anchor, x.others.flatten(0, 1), x.key.flatten(0, 1)])
        encode = lambda e: (self.encode_elements(self.momentum_backbone, e),)  # noqa: E731
        (key_features,) = self.key_forward(encode, key_input, p.shuffle_keys)
        f_1, f_others, features_k = key_features.split([b, b * (s - 1), b * s])
        features_k = features_k.view(b, s, -1)
        out = VCLRStep()
        heads_k = self.momentum_heads.module
        if self.weights["inter"] > 0:
            u = self.heads["inter"](anchor)
            with torch.no_grad():
                positives = {
                    "segments": lambda: torch.cat([f_1[:, None], f_others.view(b, s - 1, -1)], dim=1),  # [B, S, D]
                    "same_frame": lambda: f_1[:, None],
                    "same_segment": lambda: features_k[rows, draw.end][:, None],
                }[p.inter_positive]()
                a = F.normalize(heads_k["inter"](positives), dim=2)
            out.inter_query, out.inter_keys = u, a.flatten(0, 1)
            u_rows, queue = u.repeat_interleave(a.shape[1], dim=0), self.queue_inter.keys.detach()
            out.terms["inter"] = info_nce(u_rows, out.inter_keys, queue, temperature=p.temperature)
        if self.weights["intra"] > 0 and s > 1:
            w = self.heads["intra"](anchor)
            with torch.no_grad():
                b_1 = heads_k["intra"](f_1)
                b_j = heads_k["intra"](f_others).view(b, s - 1, -1)
            out.terms["intra"] = intra_loss(w, b_1, b_j, p.intra_temperature)
        if self.weights["vclr"] > 0:
            v_q = self.heads["tsn"](features_q.mean(dim=1))
            with torch.no_grad():
                v_k = F.normalize(heads_k["tsn"](features_k.mean(dim=1)), dim=1)
            out.terms["vclr"] = info_nce(v_q, v_k, self.queue_vclr.keys.detach(), temperature=p.temperature)
            out.vclr_query, out.vclr_keys = v_q, v_k
        if self.weights["order"] > 0:
            logits = self.order_logits(features_q, features_k, draw.order_q, draw.order_k)
            label = draw.order_label.to(logits.device)
            out.terms["order"] = F.cross_entropy(logits, label)
            out.order_acc = (logits.argmax(1) == label).float().mean().detach()
        return out

    def step(self, batch: Batch) -> StepOutput:
        out = self.losses(batch["input"], self.generator(0))
        loss = weighted_sum(out.terms, self.weights)
        self.log_terms(out.terms | ({"order_acc": out.order_acc} if out.order_acc is not None else {}))
        if out.inter_keys is not None:
            self.queue_inter.enqueue(out.inter_keys)
        if out.vclr_keys is not None:
            self.queue_vclr.enqueue(out.vclr_keys)
        if out.inter_query is None or out.inter_keys is None:
            return StepOutput(loss)
        u = F.normalize(out.inter_query.detach(), dim=1)
        pos = (u * out.inter_keys.view(len(u), -1, u.shape[1])[:, 0]).sum(1)
        return StepOutput(loss, pos, self.queue_similarities(u, self.queue_inter.keys))

    def order_predictions(self, videos: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Order logits ``[B, 4]`` and labels ``[B]`` of tuples drawn from un-augmented ``videos``."""
        b, s, length, stride = videos.shape[0], self.params.segments, self.element_length, self.clip_stride
        draw = self.sample(videos, generator)
        x_q = self.preprocess(tuple_elements(videos, draw.query_starts, length, stride).flatten(0, 1))
        x_k = self.preprocess(tuple_elements(videos, draw.key_starts, length, stride).flatten(0, 1))
        f_q = self.encode_elements(self.backbone, x_q).view(b, s, -1)
        f_k = self.encode_elements(self.momentum_backbone, x_k).view(b, s, -1)
        return self.order_logits(f_q, f_k, draw.order_q, draw.order_k), draw.order_label

    def extra_metric_labels(self) -> dict[str, str]:
        return {"order_accuracy": "order head accuracy (4-way, %)"} if self.params.segments >= 3 else {}

    def extra_metrics(self, test_videos: Tensor, seed: int) -> dict[str, float]:
        if self.params.segments < 3:
            return {}
        return {"order_accuracy": order_accuracy(self, self.order_predictions, test_videos, seed)}
