"""CrossCLR (Zolfaghari et al., ICCV 2021; ``docs/methods/crossclr.md``) on paired features of two modalities:
one encoder per modality, the ``functional.crossclr`` objective on their embeddings, with the
encoders' *inputs* (time-averaged when they are sequences) as the connectivity features.

This is the paper's real setting (pre-extracted expert features of video and text); the
objective's options make the paper's ablation arms: symmetric InfoNCE (``intra_weight=0``, no pruning,
uniform weights), + intra negatives (``prune_threshold=None``, ``weight_temperature=None``) and
the full loss.

End to end: given a ``video_backbone`` (the pairs task builds the recipe's ``model.backbone``
when the data holds raw clips, e.g. ``caption_pairs`` with ``data.video_input=clips``), the video
side is ``ClipEncoder``: the clip CNN of the video methods (from scratch, or a video run's weights
through ``model.weights``) and an MLP head, trained with the text encoder. Its connectivity
features are a fixed descriptor of the clip (``clip_descriptor``: up to 3 temporal positions
pooled to 8x8, standardised over the batch). [design] The paper computes connectivity on expert
features; raw pixels have none, and a descriptor keeps the pruning independent of the encoder
being trained.
"""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from contrastkit.functional.crossclr import crossclr
from contrastkit.methods.base import Batch, OptimizerSettings, build_optimizer, warmup_cosine
from contrastkit.nn.backbones import Backbone
from contrastkit.nn.heads import ProjectionHead
from contrastkit.registry import MethodParams, register_method

__all__ = ["ClipEncoder", "CrossCLR", "CrossCLRParams", "FeatureEncoder", "clip_descriptor"]


class CrossCLRParams(MethodParams):
    """Options of ``CrossCLR`` (the paper's loss defaults; CPU-sized encoders).

    Attributes:
        temperature, intra_weight, prune_threshold, weight_temperature, mode, connectivity:
            ``functional.crossclr`` (``None`` threshold = prune nothing, ``None`` weight
            temperature = uniform anchor weights).
        encoder, hidden, dim, layers: ``FeatureEncoder`` of each modality.
    """

    name: Literal["crossclr"] = "crossclr"
    temperature: float = Field(0.03, gt=0)
    intra_weight: float = Field(0.8, ge=0)
    prune_threshold: float | None = Field(0.7, gt=0)
    weight_temperature: float | None = Field(0.0035, gt=0)
    mode: Literal["paper", "official", "intra_only"] = "paper"
    connectivity: Literal["dot", "cosine"] = "dot"
    encoder: Literal["mlp", "transformer"] = "mlp"
    hidden: int = Field(128, gt=0)
    dim: int = Field(32, gt=0)
    layers: int = Field(2, ge=1)


class FeatureEncoder(nn.Module):
    """``[N, D]`` (or ``[N, T, D]``, averaged over ``T`` first) -> ``[N, dim]`` by an MLP
    ``D -> hidden -> dim``; or, for sequences, a small transformer: ``Linear(D, hidden)``,
    ``layers`` encoder layers (4 heads), mean over ``T``, ``Linear(hidden, dim)``."""

    def __init__(self, in_dim: int, hidden: int, dim: int, kind: str = "mlp", layers: int = 2) -> None:
        super().__init__()
        self.kind = kind
        if kind == "mlp":
            self.net: nn.Module = nn.Sequential(
                nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim)
            )
        elif kind == "transformer":
            heads = 4 if hidden % 4 == 0 else 1
            layer = nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, dropout=0.0, batch_first=True)
            self.embed = nn.Linear(in_dim, hidden)
            self.net = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.out = nn.Linear(hidden, dim)
        else:
            raise ValueError(f"encoder must be 'mlp' or 'transformer', got {kind!r}")

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "mlp":
            out: Tensor = self.net(x.mean(dim=1) if x.dim() == 3 else x)
            return out
        tokens = x if x.dim() == 3 else x[:, None]
        return self.out(self.net(self.embed(tokens)).mean(dim=1))


class ClipEncoder(nn.Module):
    """Raw clips ``uint8 [N, C, T, H, W]`` -> ``[N, dim]``: scaled to [0, 1] and centred
    (``(x - 0.5) / 0.25``), the clip backbone, an MLP ``feature_dim -> hidden -> dim``."""

    def __init__(self, backbone: Backbone, hidden: int, dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = ProjectionHead(backbone.feature_dim, hidden, dim)

    def forward(self, clips: Tensor) -> Tensor:
        x = (clips.float() / 255 - 0.5) / 0.25 if clips.dtype == torch.uint8 else clips
        out: Tensor = self.head(self.backbone(x))
        return out


def clip_descriptor(clips: Tensor) -> Tensor:
    """``[N, C, T, H, W]`` -> ``[N, C min(T, 3) 64]``: the clip pooled to ``min(T, 3)`` temporal
    positions of 8x8, each column standardised over the ``N`` clips."""
    x = clips.float() / 255 if clips.dtype == torch.uint8 else clips.float()
    pooled = F.adaptive_avg_pool3d(x, (min(x.shape[2], 3), 8, 8)).flatten(1)
    return (pooled - pooled.mean(0)) / pooled.std(0).clamp_min(1e-6) if len(pooled) > 1 else pooled


def pooled_inputs(x: Tensor) -> Tensor:
    """Connectivity features: ``clip_descriptor`` of clips, the time-average of sequence inputs,
    the inputs themselves else."""
    if x.dim() == 5:
        return clip_descriptor(x)
    return x.mean(dim=1) if x.dim() == 3 else x


@register_method("crossclr", CrossCLRParams, task="pairs", summary="CrossCLR: cross-modal, intra negatives, pruning")
class CrossCLR(L.LightningModule):
    """CrossCLR on paired features.

    Args:
        video_dim, text_dim: input feature widths (last dimension).
        params: the options (``CrossCLRParams``); keywords named like its fields override them.
        optimizer: optimiser settings (Adam 1e-3 at CPU scale).
        seed: kept for the run's record (no per-step randomness here).
        video_backbone: a clip backbone; the video side is then ``ClipEncoder`` on raw clips
            (``video_dim`` is ignored).
    """

    params: CrossCLRParams

    def __init__(
        self,
        video_dim: int,
        text_dim: int,
        params: CrossCLRParams | None = None,
        *,
        optimizer: OptimizerSettings | None = None,
        seed: int = 0,
        video_backbone: Backbone | None = None,
        **options: Any,
    ) -> None:
        p, rest = CrossCLRParams.resolve(params, options)
        if rest:
            raise TypeError(
                f"CrossCLR got unknown options {', '.join(rest)}; allowed: {', '.join(CrossCLRParams.model_fields)}"
            )
        super().__init__()
        self.params = p
        self.video_encoder: nn.Module = (
            ClipEncoder(video_backbone, p.hidden, p.dim)
            if video_backbone is not None
            else FeatureEncoder(video_dim, p.hidden, p.dim, p.encoder, p.layers)
        )
        self.text_encoder = FeatureEncoder(text_dim, p.hidden, p.dim, p.encoder, p.layers)
        self.optimizer_settings = optimizer or OptimizerSettings("adam", lr=1e-3, weight_decay=0.0)
        self.seed = seed
        self.loss_options: dict[str, Any] = dict(
            temperature=p.temperature,
            intra_weight=p.intra_weight,
            prune_threshold=float("inf") if p.prune_threshold is None else p.prune_threshold,
            weight_temperature=float("inf") if p.weight_temperature is None else p.weight_temperature,
            mode=p.mode,
            connectivity_kind=p.connectivity,
        )

    def embed_video(self, x: Tensor) -> Tensor:
        return self.video_encoder(x)

    def embed_text(self, y: Tensor) -> Tensor:
        return self.text_encoder(y)

    def loss(self, video: Tensor, text: Tensor) -> Tensor:
        """The objective on a batch of paired inputs ``[B, ...]``."""
        return crossclr(
            self.embed_video(video),
            self.embed_text(text),
            pooled_inputs(video),
            pooled_inputs(text),
            **self.loss_options,
        )

    def describe(self) -> str:
        """The encoders in one line (the report's model line)."""
        p = self.params
        video = "MLP head" if isinstance(self.video_encoder, ClipEncoder) else f"{p.encoder} encoder"
        return f"video: {video}; text: {p.encoder} encoder; hidden {p.hidden}, dim {p.dim}"

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss = self.loss(batch["video"], batch["text"])
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
        return loss

    def configure_optimizers(self) -> Any:
        cfg = self.optimizer_settings
        optimizer = build_optimizer(cfg, list(self.parameters()))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(cfg.warmup_epochs * total / max(1, self.trainer.max_epochs or 1))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(cfg, total, warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
