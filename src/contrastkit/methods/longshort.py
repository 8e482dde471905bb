"""Long/short-view feature decomposition (Behrmann et al., ICCV 2021; ``longshort.md``): the
pooled clip feature is split into a stationary half ``h^s`` and a non-stationary half ``h^n``.

Per video (card §2-§3): a long view of ``T_L`` frames at stride ``r_L`` and ``K`` ordered short
views inside its span (``views.segments.long_short_indices``), all with the same spatial crop.

- ``L_stat``: every short view's ``z^s`` against its own long view's ``z^s``, the other videos'
  long views as negatives (and, ``symmetric_stat``, the long view against the short views of the
  other videos);
- ``L_nons``: the long view's ``z^n`` against ``a_i = A(z^n(S_i1), ..., z^n(S_iK))`` (an MLP on
  the concatenation in temporal order), the other videos' aggregates as negatives plus, with
  ``order_negative``, the aggregate of the same short views in a shuffled order as a hard
  negative; ``symmetric_nons`` adds the aggregate as anchor;
- ``L = L_stat + lambda_n L_nons`` (``+ lambda_t L_temp``, below).

``L_temp`` (``lambda_t > 0``; off by default, so the card's objective is the default) is our
addition, not the card's: a head ``P`` predicts from the long view's ``z^n`` one code per
short-view position, ``q_ik = normalize(P(z^n(L_i)))_k``, and each short view's ``z^n(S_ik)``
must pick its own ``q_ik`` among all ``B K`` predictions of the batch, so the same video's other
positions are negatives (temporal negatives). A ``z^n`` that is constant within a video pays at
least ``log K`` per video. [design] Added after the card's objective, trained at CPU scale, let
both halves lose their temporal variance (``docs/video.md``). ``short_shift`` (0 = off) moves
each short view by its own random whole-pixel offset (a circular shift of at most that many
pixels per axis), so that where an object *is* stops identifying a short view and how it
*moves* has to. [design]

The abstract is all that could be verified; the objective is the card's [design]: the channel
split, the aggregator, the shuffled-aggregate negative, in-batch negatives without a momentum
encoder, and one crop shared by all views of a video (the card asks for it). Colours are one draw
per video by default too; ``colour_per_view`` draws them per view, which the recipe uses: with a
shared draw, colour statistics alone paired a video's views and both halves lost their motion
information (``docs/video.md``). ``objective="simclr"`` is the card's single-representation
baseline: NT-Xent between two long views of a video through one head on the whole ``h``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from contrastkit.functional.contrastive import info_nce, nt_xent
from contrastkit.methods.base import Batch, ContrastiveMethod, StepOutput
from contrastkit.nn.backbones import Backbone
from contrastkit.nn.heads import ProjectionHead
from contrastkit.registry import MethodParams, register_method
from contrastkit.views.segments import gather_frames, long_short_indices
from contrastkit.views.video import ClipAugmentation

__all__ = [
    "LongShortParams",
    "LongShortViews",
    "OrderAggregator",
    "check_order_sensitive",
    "nonstationary_loss",
    "PositionPredictor",
    "shift_views",
    "shuffled_orders",
    "stationary_loss",
    "temporal_loss",
]


class LongShortParams(MethodParams):
    """Recipe options of ``LongShortViews`` (card §6 CPU scale by default)."""

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

    @classmethod
    def smoke(cls, method: dict[str, Any]) -> None:
        """Views that fit the 16 frames of a smoke run: a long view of 4 frames at stride 4."""
        method.update(long_length=4, long_stride=4, short_length=2, short_stride=2)
        method["short_views"] = min(int(method.get("short_views", 4)), 4)


class OrderAggregator(nn.Module):
    """``A``: ``[B, K, d]`` short-view codes in temporal order -> ``[B, d]`` (an MLP on their
    concatenation, ``K d -> d -> d``), so the result depends on the order."""

    def __init__(self, views: int, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(views * dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))

    def forward(self, codes: Tensor) -> Tensor:
        out: Tensor = self.mlp(codes.flatten(1))
        return out


class PositionPredictor(nn.Module):
    """``P``: the long view's code ``[B, d]`` -> one normalised code per short-view position
    ``[B, K, d]`` (a linear map ``d -> K d``)."""

    def __init__(self, views: int, dim: int) -> None:
        super().__init__()
        self.views = views
        self.linear = nn.Linear(dim, views * dim)

    def forward(self, long: Tensor) -> Tensor:
        return F.normalize(self.linear(long).view(long.shape[0], self.views, -1), dim=2)


@register_method(
    "longshort", LongShortParams, task="clips", summary="long/short views: stationary + non-stationary halves"
)
class LongShortViews(ContrastiveMethod):
    """Stationary / non-stationary decomposition from long and short views.

    Args:
        backbone: a clip encoder with an even ``feature_dim`` (split in halves).
        augmentation: a ``ClipAugmentation``; one draw per video for all its views.
        temperature: ``tau`` (0.1).
        long_length, long_stride: ``T_L``, ``r_L`` of the long view.
        short_views, short_length, short_stride: ``K``, ``T_S``, ``r_S``.
        proj_hidden, proj_dim: heads ``g_s``, ``g_n``: ``D/2 -> hidden -> d``; the aggregator ``K d -> d -> d``.
        lambda_n: weight of ``L_nons``.
        lambda_t: weight of ``L_temp`` (0 = off, the card's objective).
        short_shift: largest circular shift (pixels per axis) drawn per short view (0 = off).
        colour_per_view: every view (the long one and each short one) draws its own colour
            jitter and grayscale; the crop stays shared (card §3 allows it).
        order_negative: the shuffled aggregate as a hard negative (needs ``K >= 2``).
        symmetric_stat, symmetric_nons: add the symmetric terms.
        objective: ``"longshort"``, or ``"simclr"`` (the single-representation baseline).
        **base: ``ContrastiveMethod`` arguments (``clip_length``/``clip_stride`` are ignored).
    """

    def __init__(
        self,
        backbone: Backbone,
        augmentation: ClipAugmentation,
        *,
        temperature: float = 0.1,
        long_length: int = 16,
        long_stride: int = 4,
        short_views: int = 4,
        short_length: int = 8,
        short_stride: int = 2,
        proj_hidden: int = 32,
        proj_dim: int = 32,
        lambda_n: float = 1.0,
        lambda_t: float = 0.0,
        short_shift: int = 0,
        colour_per_view: bool = False,
        order_negative: bool = True,
        symmetric_stat: bool = True,
        symmetric_nons: bool = False,
        objective: str = "longshort",
        clip_length: int | None = None,
        clip_stride: int = 1,
        **base: Any,
    ) -> None:
        if backbone.feature_dim % 2:
            raise ValueError(f"the feature is split in halves: feature_dim must be even, got {backbone.feature_dim}")
        if order_negative and short_views < 2 and objective == "longshort":
            raise ValueError("order_negative needs short_views >= 2 (a non-identity order); set order_negative=false")
        if objective not in ("longshort", "simclr"):
            raise ValueError(f"objective must be 'longshort' or 'simclr', got {objective!r}")
        super().__init__(backbone, augmentation, **base)  # type: ignore[arg-type]
        self.temperature = temperature
        self.view_settings = dict(
            long_length=long_length,
            long_stride=long_stride,
            short_views=short_views,
            short_length=short_length,
            short_stride=short_stride,
        )
        self.lambda_n = lambda_n
        self.lambda_t = lambda_t
        self.short_shift = short_shift
        self.colour_per_view = colour_per_view
        self.order_negative = order_negative
        self.symmetric_stat = symmetric_stat
        self.symmetric_nons = symmetric_nons
        self.objective = objective
        half = backbone.feature_dim // 2
        if objective == "simclr":
            self.head = ProjectionHead(backbone.feature_dim, proj_hidden, proj_dim)
        else:
            self.stationary_head = ProjectionHead(half, proj_hidden, proj_dim)
            self.nonstationary_head = ProjectionHead(half, proj_hidden, proj_dim)
            self.aggregator = OrderAggregator(short_views, proj_dim)
            if order_negative:
                check_order_sensitive(self.aggregator, short_views, proj_dim)
            if lambda_t > 0:
                self.position_predictor = PositionPredictor(short_views, proj_dim)

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
        runs = [t_l] + [t_s] * k if self.colour_per_view else None
        augmented = self.augmentation(gather_frames(videos, together), g, colour_runs=runs)
        long = augmented[:, :, :t_l]
        short = augmented[:, :, t_l:].reshape(b, -1, k, t_s, *augmented.shape[3:]).transpose(1, 2)
        if self.short_shift:
            short = shift_views(short, self.short_shift, g)
        return [long, short]

    def aggregate(self, codes: Tensor) -> Tensor:
        return F.normalize(self.aggregator(codes), dim=1)

    def _long_view(self, videos: Tensor, generator: torch.Generator) -> Tensor:
        long_idx, _ = long_short_indices(videos.shape[0], videos.shape[2], generator, **self.view_settings)
        return self.augmentation(gather_frames(videos, long_idx), generator)

    def losses(self, videos: Tensor) -> dict[str, Tensor]:
        """``{"stat", "nons", "loss"}`` (or ``{"simclr", "loss"}``) of a batch ``[B, C, F, H, W]``."""
        if self.objective == "simclr":
            long_a, long_b = self._long_view(videos, self.generator(0)), self._long_view(videos, self.generator(5))
            z1, z2 = self.head(self.backbone(long_a)), self.head(self.backbone(long_b))
            loss = nt_xent(z1, z2, temperature=self.temperature)
            return {"simclr": loss, "loss": loss}
        long, short = self.views(videos)
        b, k = short.shape[:2]
        s_long, n_long = self.split(self.backbone(long))
        s_short, n_short = self.split(self.backbone(short.flatten(0, 1)))
        stat = stationary_loss(
            self.stationary_head(s_short).view(b, k, -1),
            self.stationary_head(s_long),
            self.temperature,
            self.symmetric_stat,
        )
        zn_short = F.normalize(self.nonstationary_head(n_short).view(b, k, -1), dim=2)
        order = shuffled_orders(b, k, self.generator(2)) if self.order_negative else None
        zn_long = self.nonstationary_head(n_long)
        nons = nonstationary_loss(zn_long, zn_short, self.aggregate, order, self.temperature, self.symmetric_nons)
        out = {"stat": stat, "nons": nons, "loss": stat + self.lambda_n * nons}
        if self.lambda_t > 0:
            predicted = self.position_predictor(F.normalize(zn_long, dim=1))
            out["temp"] = temporal_loss(zn_short, predicted, self.temperature)
            out["loss"] = out["loss"] + self.lambda_t * out["temp"]
        return out

    def step(self, batch: Batch) -> StepOutput:
        out = self.losses(batch["input"])
        if self._trainer is not None:
            for name in ("stat", "nons", "temp", "simclr"):
                if name in out:
                    self.log(f"train/{name}", out[name].detach(), on_step=False, on_epoch=True, sync_dist=True)
        return StepOutput(out["loss"])


def check_order_sensitive(aggregate: Callable[[Tensor], Tensor], views: int, dim: int, seed: int = 0) -> None:
    """Raise ``ValueError`` unless ``aggregate`` changes when two short views swap
    (``longshort.md`` oracle 5: a mean would make the shuffled-aggregate negative a copy of the
    positive)."""
    if views < 2:
        return
    codes = torch.randn(3, views, dim, generator=torch.Generator().manual_seed(seed))
    swapped = codes.clone()
    swapped[:, [0, 1]] = codes[:, [1, 0]]
    with torch.no_grad():
        if torch.allclose(aggregate(codes), aggregate(swapped), atol=1e-6):
            raise ValueError(
                "the aggregator ignores the order of the short views; order_negative needs an order-aware one"
            )


def shuffled_orders(batch: int, views: int, generator: torch.Generator | None = None) -> Tensor:
    """``[B, K]``: one random non-identity order of the ``K`` short views per video."""
    perms = [p for p in itertools.permutations(range(views)) if p != tuple(range(views))]
    if not perms:
        raise ValueError("one short view has no other order; order_negative needs short_views >= 2")
    table = torch.tensor(perms, dtype=torch.long)
    return table[torch.randint(len(perms), (batch,), generator=generator)]


def stationary_loss(short: Tensor, long: Tensor, temperature: float = 0.1, symmetric: bool = True) -> Tensor:
    """``L_stat``: short views ``[B, K, d]`` against their long view ``[B, d]``, the other videos'
    long views as negatives, averaged over ``K`` (and the symmetric term, averaged with it)."""
    k = short.shape[1]
    loss = torch.stack([info_nce(short[:, j], long, temperature=temperature) for j in range(k)]).mean()
    if symmetric:
        back = torch.stack([info_nce(long, short[:, j], temperature=temperature) for j in range(k)]).mean()
        loss = 0.5 * (loss + back)
    return loss


def nonstationary_loss(
    long: Tensor,
    short: Tensor,
    aggregate: Callable[[Tensor], Tensor],
    order: Tensor | None = None,
    temperature: float = 0.1,
    symmetric: bool = False,
) -> Tensor:
    """``L_nons``: the long view's ``z^n`` ``[B, d]`` against the aggregate of its short views
    ``[B, K, d]``; negatives: the other videos' aggregates and, with ``order`` ``[B, K]``, the
    aggregate of the same short views in that order (the hard negative)."""
    a = aggregate(short)
    if order is not None:
        shuffled = short.gather(1, order[..., None].expand_as(short))
        loss = info_nce(long, a, aggregate(shuffled)[:, None], in_batch=True, temperature=temperature)
    else:
        loss = info_nce(long, a, temperature=temperature)
    if symmetric:
        loss = 0.5 * (loss + info_nce(a, long, temperature=temperature))
    return loss


def temporal_loss(short: Tensor, predicted: Tensor, temperature: float = 0.1) -> Tensor:
    """``L_temp``: each short view's code ``[B, K, d]`` against the code predicted for its
    position from its long view ``[B, K, d]``; the other ``B K - 1`` predictions of the batch
    (the same video's other positions among them) are the negatives."""
    return info_nce(short.flatten(0, 1), predicted.flatten(0, 1), temperature=temperature)


def shift_views(views: Tensor, largest: int, generator: torch.Generator | None = None) -> Tensor:
    """``[B, K, C, T, H, W]`` with each of the ``B K`` views circularly shifted by its own
    ``(dy, dx)``, each drawn uniformly from ``[-largest, largest]``."""
    b, k = views.shape[:2]
    offsets = torch.randint(-largest, largest + 1, (b * k, 2), generator=generator).tolist()
    flat = views.flatten(0, 1)
    shifted = [torch.roll(v, shifts=(dy, dx), dims=(-2, -1)) for v, (dy, dx) in zip(flat, offsets, strict=True)]
    return torch.stack(shifted).view_as(views)
