"""Long/short-view feature decomposition (Behrmann et al., ICCV 2021; ``docs/methods/longshort.md``): the
pooled clip feature is split into a stationary half ``h^s`` and a non-stationary half ``h^n``.

Per video (``docs/methods/longshort.md``): a long view of ``T_L`` frames at stride ``r_L`` and ``K`` ordered short
views inside its span (``views.segments.long_short_indices``), all with the same spatial crop.

- ``L_stat``: every short view's ``z^s`` against its own long view's ``z^s``, the other videos'
  long views as negatives (and, ``symmetric_stat``, the long view against the short views of the
  other videos);
- ``L_nons``: the long view's ``z^n`` against ``a_i = A(z^n(S_i1), ..., z^n(S_iK))`` (an MLP on
  the concatenation in temporal order), the other videos' aggregates as negatives plus, with
  ``order_negative``, the aggregate of the same short views in a shuffled order as a hard
  negative; ``symmetric_nons`` adds the aggregate as anchor;
- ``L = L_stat + lambda_n L_nons`` (``+ lambda_t L_temp``, below).

``L_temp`` (``lambda_t > 0``; off by default, so the objective above is the default) is our
addition: a head ``P`` predicts from the long view's ``z^n`` one code per
short-view position, ``q_ik = normalize(P(z^n(L_i)))_k``, and each short view's ``z^n(S_ik)``
must pick its own ``q_ik`` among all ``B K`` predictions of the batch, so the same video's other
positions are negatives (temporal negatives). A ``z^n`` that is constant within a video pays at
least ``log K`` per video. [design] Added after the objective above, trained at CPU scale, let
both halves lose their temporal variance (``docs/video.md``). ``short_shift`` (0 = off) moves
each short view by its own random whole-pixel offset (a circular shift of at most that many
pixels per axis), so that where an object *is* stops identifying a short view and how it
*moves* has to. [design]

The abstract is all that could be verified; the objective is our design [design]: the channel
split, the aggregator, the shuffled-aggregate negative, in-batch negatives without a momentum
encoder, and one crop shared by all views of a video (our design asks for it). Colours are one draw
per video by default too; ``colour_per_view`` draws them per view, which the recipe uses: with a
shared draw, colour statistics alone paired a video's views and both halves lost their motion
information (``docs/video.md``). ``objective="simclr"`` is the single-representation
baseline: NT-Xent between two long views of a video through one head on the whole ``h``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor

from contrastkit.functional.contrastive import nt_xent
from contrastkit.functional.video import nonstationary_loss, stationary_loss, temporal_loss
from contrastkit.methods.base import Batch, weighted_sum
from contrastkit.methods.clip_base import ClipMethod
from contrastkit.nn.backbones import Backbone
from contrastkit.nn.heads import OrderAggregator, PositionPredictor, ProjectionHead, check_order_sensitive
from contrastkit.registry import MethodParams, register_method
from contrastkit.views.clips import ClipAugmentation
from contrastkit.views.segments import gather_frames, long_short_indices, shift_views, shuffled_orders

__all__ = ["LongShortParams", "LongShortViews"]


class LongShortParams(MethodParams):
    """Options of ``LongShortViews`` (CPU scale by default).

    Attributes:
        temperature: ``tau`` (0.1).
        long_length, long_stride: ``T_L``, ``r_L`` of the long view.
        short_views, short_length, short_stride: ``K``, ``T_S``, ``r_S``.
        proj_hidden, proj_dim: heads ``g_s``, ``g_n``: ``D/2 -> hidden -> d``; the aggregator ``K d -> d -> d``.
        lambda_n: weight of ``L_nons``.
        lambda_t: weight of ``L_temp`` (0 = off, the paper's objective).
        short_shift: largest circular shift (pixels per axis) drawn per short view (0 = off).
        colour_per_view: every view (the long one and each short one) draws its own colour
            jitter and grayscale; the crop stays shared.
        order_negative: the shuffled aggregate as a hard negative (needs ``K >= 2``).
        symmetric_stat, symmetric_nons: add the symmetric terms.
        objective: ``"longshort"``, or ``"simclr"`` (the single-representation baseline).
    """

    name: Literal["longshort"] = "longshort"
    temperature: float = Field(0.1, gt=0)
    long_length: int = Field(16, ge=1)
    long_stride: int = Field(4, ge=1)
    short_views: int = Field(4, ge=1)
    short_length: int = Field(8, ge=1)
    short_stride: int = Field(2, ge=1)
    proj_hidden: int = Field(32, gt=0)
    proj_dim: int = Field(32, gt=0)
    lambda_n: float = Field(1.0, ge=0)
    lambda_t: float = Field(0.0, ge=0)
    short_shift: int = Field(0, ge=0)
    colour_per_view: bool = False
    order_negative: bool = True
    symmetric_stat: bool = True
    symmetric_nons: bool = False
    objective: Literal["longshort", "simclr"] = "longshort"

    @model_validator(mode="after")
    def _order_needs_two_views(self) -> LongShortParams:
        if self.order_negative and self.short_views < 2 and self.objective == "longshort":
            raise ValueError("order_negative needs short_views >= 2 (a non-identity order); set order_negative=false")
        return self

    @classmethod
    def smoke(cls, method: dict[str, Any]) -> None:
        """Views that fit the 16 frames of a smoke run: a long view of 4 frames at stride 4."""
        method.update(long_length=4, long_stride=4, short_length=2, short_stride=2)
        method["short_views"] = min(int(method.get("short_views", 4)), 4)


@register_method(
    "longshort", LongShortParams, task="clips", summary="long/short views: stationary + non-stationary halves"
)
class LongShortViews(ClipMethod):
    """Stationary / non-stationary decomposition from long and short views.

    Args:
        backbone: a clip encoder with an even ``feature_dim`` (split in halves).
        augmentation: a ``ClipAugmentation``; one crop per video for all its views.
        params: the options (``LongShortParams``); keywords named like its fields override them.
        **base: ``ClipMethod`` arguments (the views are the params'; ``clip_length`` is only
            the evaluation's window).
    """

    params: LongShortParams

    def __init__(
        self, backbone: Backbone, augmentation: ClipAugmentation, params: LongShortParams | None = None, **options: Any
    ) -> None:
        p, base = LongShortParams.resolve(params, options)
        if backbone.feature_dim % 2:
            raise ValueError(f"the feature is split in halves: feature_dim must be even, got {backbone.feature_dim}")
        super().__init__(backbone, augmentation, **base)
        self.params = p
        self.view_settings = p.model_dump(
            include={"long_length", "long_stride", "short_views", "short_length", "short_stride"}
        )
        half = backbone.feature_dim // 2
        if p.objective == "simclr":
            self.head = ProjectionHead(backbone.feature_dim, p.proj_hidden, p.proj_dim)
            return
        self.stationary_head = ProjectionHead(half, p.proj_hidden, p.proj_dim)
        self.nonstationary_head = ProjectionHead(half, p.proj_hidden, p.proj_dim)
        self.aggregator = OrderAggregator(p.short_views, p.proj_dim)
        if p.order_negative:
            check_order_sensitive(self.aggregator, p.short_views, p.proj_dim)
        if p.lambda_t > 0:
            self.position_predictor = PositionPredictor(p.short_views, p.proj_dim)

    def feature_parts(self) -> dict[str, slice]:
        """Where ``h^s`` and ``h^n`` sit in the backbone feature (evaluation probes each)."""
        half = self.backbone.feature_dim // 2
        return {"stationary": slice(0, half), "nonstationary": slice(half, 2 * half)}

    def split(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """``h`` ``[N, D]`` -> ``(h^s, h^n)``, each ``[N, D/2]``; ``cat`` gives ``h`` back."""
        parts = self.feature_parts()
        return h[:, parts["stationary"]], h[:, parts["nonstationary"]]

    def views(self, videos: Tensor, count: int = 2) -> list[Tensor]:
        """``[long [B, C, T_L, H, W], short [B, K, C, T_S, H, W]]``, one augmentation draw per video
        (with ``colour_per_view``: one crop per video, one colour draw per view)."""
        g = self.generator(0)
        long_idx, short_idx = long_short_indices(videos.shape[0], videos.shape[2], g, **self.view_settings)
        b, k, t_s = short_idx.shape
        together = torch.cat([long_idx, short_idx.flatten(1)], dim=1)  # [B, T_L + K T_S]: one clip per video
        t_l = long_idx.shape[1]
        runs = [t_l] + [t_s] * k if self.params.colour_per_view else None
        augmented = self.augmentation(gather_frames(videos, together), g, colour_runs=runs)
        long = augmented[:, :, :t_l]
        short = augmented[:, :, t_l:].reshape(b, -1, k, t_s, *augmented.shape[3:]).transpose(1, 2)
        if self.params.short_shift:
            short = shift_views(short, self.params.short_shift, g)
        return [long, short]

    def aggregate(self, codes: Tensor) -> Tensor:
        return F.normalize(self.aggregator(codes), dim=1)

    def _long_view(self, videos: Tensor, generator: torch.Generator) -> Tensor:
        long_idx, _ = long_short_indices(videos.shape[0], videos.shape[2], generator, **self.view_settings)
        return self.augmentation(gather_frames(videos, long_idx), generator)

    def losses(self, videos: Tensor) -> dict[str, Tensor]:
        """The named terms of the loss of a batch ``[B, C, F, H, W]``: ``stat``, ``nons`` (and
        ``temp`` with ``lambda_t > 0``), or ``simclr``; ``weights()`` says how they add up."""
        p = self.params
        if p.objective == "simclr":
            long_a, long_b = self._long_view(videos, self.generator(0)), self._long_view(videos, self.generator(5))
            z1, z2 = self.head(self.backbone(long_a)), self.head(self.backbone(long_b))
            return {"simclr": nt_xent(z1, z2, temperature=p.temperature)}
        long, short = self.views(videos)
        b, k = short.shape[:2]
        s_long, n_long = self.split(self.backbone(long))
        s_short, n_short = self.split(self.backbone(short.flatten(0, 1)))
        zs_short = self.stationary_head(s_short).view(b, k, -1)
        out = {"stat": stationary_loss(zs_short, self.stationary_head(s_long), p.temperature, p.symmetric_stat)}
        zn_short = F.normalize(self.nonstationary_head(n_short).view(b, k, -1), dim=2)
        order = shuffled_orders(b, k, self.generator(2)) if p.order_negative else None
        zn_long = self.nonstationary_head(n_long)
        out["nons"] = nonstationary_loss(zn_long, zn_short, self.aggregate, order, p.temperature, p.symmetric_nons)
        if p.lambda_t > 0:
            predicted = self.position_predictor(F.normalize(zn_long, dim=1))
            out["temp"] = temporal_loss(zn_short, predicted, p.temperature)
        return out

    def weights(self) -> dict[str, float]:
        """The weight of each term of ``losses``: ``L = L_stat + lambda_n L_nons + lambda_t L_temp``."""
        return {"simclr": 1.0, "stat": 1.0, "nons": self.params.lambda_n, "temp": self.params.lambda_t}

    def step(self, batch: Batch) -> Tensor:
        terms = self.losses(batch["input"])
        self.log_terms(terms)
        return weighted_sum(terms, self.weights())
