"""SimCLR (Chen et al., ICML 2020) and, with ``beta``/``tau_plus``, HCL's image objective
(Robinson et al., ICLR 2021; ``docs/methods/hcl.md``): two views, one encoder, NT-Xent over 2B anchors."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from contrastkit.losses import NTXentLoss
from contrastkit.methods.base import Batch, ContrastiveMethod, StepOutput
from contrastkit.nn.backbones import Backbone
from contrastkit.nn.heads import ProjectionHead
from contrastkit.registry import MethodParams, register_method
from contrastkit.views.image import ViewAugmentation

__all__ = ["SimCLR", "SimCLRParams"]


class SimCLRParams(MethodParams):
    """Options of ``SimCLR`` (``method: {name: simclr, ...}`` in a recipe, keywords in Python).

    Attributes:
        temperature: NT-Xent temperature (HCL's code uses 0.5).
        beta, tau_plus: HCL hardness and debiasing (0, 0 = SimCLR).
        proj_hidden, proj_dim, proj_layers, proj_batch_norm: projection head; HCL's is
            ``Linear(C, 512, no bias) -> BN -> ReLU -> Linear(512, 128)``.
    """

    name: Literal["simclr"] = "simclr"
    temperature: float = Field(0.5, gt=0)
    beta: float = Field(0.0, ge=0)
    tau_plus: float = Field(0.0, ge=0, lt=1)
    proj_hidden: int = Field(512, gt=0)
    proj_dim: int = Field(128, gt=0)
    proj_layers: int = Field(2, ge=1)
    proj_batch_norm: bool = True


@register_method("simclr", SimCLRParams, task="images", summary="SimCLR / HCL: two views, NT-Xent over 2B anchors")
class SimCLR(ContrastiveMethod):
    """SimCLR / HCL.

    Args:
        backbone, augmentation: see ``ContrastiveMethod``.
        params: the options (``SimCLRParams``); keywords named like its fields override them.
        **base: ``ContrastiveMethod`` keyword arguments.

    Examples:
        >>> from contrastkit.nn import ConvNetSmall
        >>> from contrastkit.views import build_augmentation
        >>> model = SimCLR(ConvNetSmall(1, 8), build_augmentation("digits", 16, (0.3,), (0.3,)), beta=1.0, tau_plus=0.1)
    """

    params: SimCLRParams

    def __init__(
        self, backbone: Backbone, augmentation: ViewAugmentation, params: SimCLRParams | None = None, **options: Any
    ) -> None:
        p, base = SimCLRParams.resolve(params, options)
        super().__init__(backbone, augmentation, **base)
        self.params = p
        self.projection = ProjectionHead(
            backbone.feature_dim, p.proj_hidden, p.proj_dim, p.proj_layers, batch_norm=p.proj_batch_norm, bias=False
        )
        self.criterion = NTXentLoss(p.temperature, beta=p.beta, tau_plus=p.tau_plus)

    def step(self, batch: Batch) -> StepOutput:
        x1, x2 = self.views(batch["input"])
        z1 = self.projection(self.backbone(x1))
        z2 = self.projection(self.backbone(x2))
        loss = self.criterion(z1, z2)
        a, b = F.normalize(z1.detach(), dim=1), F.normalize(z2.detach(), dim=1)
        sims = a @ b.t()
        off_diagonal = sims[~torch.eye(len(a), dtype=torch.bool, device=sims.device)]
        return StepOutput(loss, sims.diagonal(), off_diagonal)
