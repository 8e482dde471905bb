"""AECR-Net (Wu et al., CVPR 2021; ``docs/methods/aecr.md``): a compact dehazing autoencoder trained with
``L1(O, J) + beta * CR(O, J, I)``, the contrastive regularisation of
``functional.contrastive_regularization`` in the space of a frozen feature extractor.

The arms of our protocol (``docs/methods/aecr.md``) are options: (a) ``cr_weight: 0`` (L1 only), (b) the default, (c)
``negatives: false`` (CR without the hazy negatives). beta = 0.1 is the paper's value, which the
could not be verified in the code (the official script defaults it to 0): treat it as tuned.

Extractors (``extractor``): ``vgg19`` (ImageNet VGG-19 slices from ``vgg_weights``, a local
torchvision state dict; the paper's choice), ``random-vgg19`` (fixed-seed random weights; only when
asked for by name, and the report says so), ``run:<RUN_DIR>`` (the stages of the image backbone
a contrastkit run trained) or ``zoo:NAME`` (the stages of a zoo encoder, ``contrastkit zoo list``,
fed images normalised as the encoder was trained). Other images enter the extractor in [0, 1]
without ImageNet normalisation, as the official code does.
"""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import Tensor

from contrastkit.functional.restoration import AECR_LAYER_WEIGHTS, contrastive_regularization
from contrastkit.methods.base import Batch, OptimizerSettings, build_optimizer, warmup_cosine
from contrastkit.nn.dehaze import AECRNet
from contrastkit.nn.extractors import (
    FrozenExtractor,
    extractor_from_run,
    extractor_from_zoo,
    load_vgg19_features,
    random_vgg19_features,
)
from contrastkit.registry import MethodParams, register_method

__all__ = ["AECR", "AECRParams", "build_extractor", "extractor_from_run", "extractor_from_zoo", "paired_flips"]


class AECRParams(MethodParams):
    """Options of ``AECR`` (the paper's objective, a CPU-sized network).

    Attributes:
        cr_weight: beta (0 = L1 only: no extractor is built).
        negatives: False = the ablation without hazy negatives.
        extractor, vgg_weights, extractor_seed, extractor_width_divisor: see ``build_extractor``.
        ngf, fa_repeats, deformable, deconv: ``nn.AECRNet``.
    """

    name: Literal["aecr"] = "aecr"
    cr_weight: float = Field(0.1, ge=0)
    negatives: bool = True
    extractor: str = "vgg19"
    vgg_weights: str | None = None
    extractor_seed: int = 0
    extractor_width_divisor: int = Field(1, ge=1)
    ngf: int = Field(16, ge=2)
    fa_repeats: int = Field(3, ge=1)
    deformable: bool = True
    deconv: bool = True

    @field_validator("extractor")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in ("vgg19", "random-vgg19") and not value.startswith(("run:", "zoo:")):
            raise ValueError(f"extractor must be 'vgg19', 'random-vgg19', 'run:<RUN_DIR>' or 'zoo:NAME', got {value!r}")
        return value

    @classmethod
    def smoke(cls, method: dict[str, Any]) -> None:
        method["ngf"] = min(int(method.get("ngf", 16)), 8)
        method["fa_repeats"] = 1

    def description(self) -> str:
        if self.cr_weight == 0:
            return "aecr (L1 only)"
        return f"aecr (L1 + {self.cr_weight} CR{'' if self.negatives else ' without negatives'}, {self.extractor})"


def build_extractor(name: str, vgg_weights: str | None, seed: int = 0, width_divisor: int = 1) -> FrozenExtractor:
    """The frozen extractor a recipe names (see the module docstring); never a silent fallback."""
    if name == "vgg19":
        if not vgg_weights:
            raise ValueError(
                "extractor vgg19 needs ImageNet weights: --set method.vgg_weights=PATH (torchvision's vgg19 "
                "state dict, e.g. vgg19-dcbb9e9d.pth), or choose --set method.extractor=random-vgg19 or run:<RUN_DIR>"
            )
        return load_vgg19_features(vgg_weights)
    if name == "random-vgg19":
        return random_vgg19_features(seed, width_divisor)
    if name.startswith("zoo:"):
        return extractor_from_zoo(name.removeprefix("zoo:"))
    return extractor_from_run(name.removeprefix("run:"))


def layer_weights(layers: int) -> tuple[float, ...]:
    """AECR's weights for 5 layers; for fewer, its last ``layers`` (the deepest weighs 1) [design]."""
    return (
        AECR_LAYER_WEIGHTS[-layers:] if layers <= 5 else (*(AECR_LAYER_WEIGHTS[0],) * (layers - 5), *AECR_LAYER_WEIGHTS)
    )


def paired_flips(hazy: Tensor, clear: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """The same random horizontal flip and 90° rotation (0/90/180/270) on both images, per sample
    (square crops)."""
    flip = torch.rand(len(hazy), generator=g) < 0.5
    turns = torch.randint(4, (len(hazy),), generator=g)
    out_h, out_c = hazy.clone(), clear.clone()
    for f in (False, True):
        for k in range(4):
            rows = ((flip == f) & (turns == k)).nonzero().squeeze(1).to(hazy.device)
            if len(rows) == 0:
                continue
            h, c = hazy[rows], clear[rows]
            if f:
                h, c = h.flip(-1), c.flip(-1)
            out_h[rows], out_c[rows] = h.rot90(k, (-2, -1)), c.rot90(k, (-2, -1))
    return out_h, out_c


@register_method("aecr", AECRParams, task="dehaze", summary="AECR-Net: dehazing with contrastive regularisation")
class AECR(L.LightningModule):
    """AECR-Net trained with L1 + contrastive regularisation. Batches: ``{"hazy", "clear": uint8
    [B, 3, c, c]}``.

    Args:
        params: the options (``AECRParams``); keywords named like its fields override them.
        optimizer: Adam 1e-4 with per-step cosine decay in the official code.
        seed: base of the per-step augmentation generator.
    """

    params: AECRParams

    def __init__(
        self,
        params: AECRParams | None = None,
        *,
        optimizer: OptimizerSettings | None = None,
        seed: int = 0,
        **options: Any,
    ) -> None:
        p, rest = AECRParams.resolve(params, options)
        if rest:
            raise TypeError(
                f"AECR got unknown options {', '.join(rest)}; allowed: {', '.join(AECRParams.model_fields)}"
            )
        super().__init__()
        self.params = p
        self.net = AECRNet(p.ngf, p.fa_repeats, deformable=p.deformable, deconv=p.deconv)
        self.optimizer_settings = optimizer or OptimizerSettings("adam", lr=1e-4, weight_decay=0.0)
        self.seed, self.cr_weight, self.negatives = seed, p.cr_weight, p.negatives
        features = (
            build_extractor(p.extractor, p.vgg_weights, p.extractor_seed, p.extractor_width_divisor)
            if p.cr_weight
            else None
        )
        self._extractor = [features]  # a list keeps it out of state_dict and checkpoints
        self._g: torch.Generator | None = None

    def describe(self) -> str:
        """The network and its CR extractor in one line (the report's model line)."""
        params = sum(p.numel() for p in self.net.parameters())
        extractor = self.extractor.description if self.extractor is not None else "none (L1 only)"
        return (
            f"AECR-Net ngf {self.net.ngf}, FA x{self.net.fa_repeats}, {params:,} parameters; CR extractor: {extractor}"
        )

    @property
    def extractor(self) -> FrozenExtractor | None:
        return self._extractor[0]

    def forward(self, hazy: Tensor) -> Tensor:
        return self.net(hazy)

    @torch.no_grad()
    def restore(self, hazy: Tensor) -> Tensor:
        """``[B, 3, H, W]`` in [0, 1], any ``H, W`` -> restored ``[B, 3, H, W]`` in [0, 1] (reflect-pads
        to a multiple of 4 and crops back)."""
        h, w = hazy.shape[-2:]
        ph, pw = (-h) % 4, (-w) % 4
        x = F.pad(hazy, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate") if ph or pw else hazy
        return self.net(x)[..., :h, :w].clamp(0, 1)

    def loss_terms(self, hazy: Tensor, clear: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(loss, l1, cr)`` for float images in [0, 1]."""
        restored = self.net(hazy)
        l1 = F.l1_loss(restored, clear)
        features = self.extractor
        if features is None:
            return l1, l1, l1.new_zeros(())
        if next(features.parameters()).device != restored.device:
            features.to(restored.device)
        weights = layer_weights(len(features.stages))
        cr = contrastive_regularization(restored, clear, hazy, features, weights, negatives=self.negatives)
        return l1 + self.cr_weight * cr, l1, cr

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        if self._g is None:
            self._g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.global_rank)
        hazy, clear = paired_flips(batch["hazy"], batch["clear"], self._g)
        loss, l1, cr = self.loss_terms(hazy.float() / 255, clear.float() / 255)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
        self.log("train/l1", l1, on_step=False, on_epoch=True, sync_dist=True)
        if self.extractor is not None:
            self.log("train/cr", cr, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        from contrastkit.evaluation.restoration import psnr, ssim

        restored = self.restore(batch["hazy"].float() / 255)
        clear = batch["clear"].float() / 255
        self.log("val/psnr", psnr(restored, clear).mean(), on_epoch=True, sync_dist=True, add_dataloader_idx=False)
        self.log("val/ssim", ssim(restored, clear).mean(), on_epoch=True, sync_dist=True, add_dataloader_idx=False)

    def configure_optimizers(self) -> Any:
        cfg = self.optimizer_settings
        optimizer = build_optimizer(cfg, list(self.net.parameters()))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(cfg.warmup_epochs * total / max(1, self.trainer.max_epochs or 1))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(cfg, total, warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
