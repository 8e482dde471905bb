"""MoCo v2 (He et al., CVPR 2020; Chen et al., 2020; ``moco.md``): a query encoder, a momentum
key encoder, a queue of past keys, ShuffleBN (split BN on one device). HCL's negatives are the
``beta``/``tau_plus`` options of the loss (recipes ``moco-hcl-*``)."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from contrastkit.losses import InfoNCELoss
from contrastkit.methods.base import Batch, ContrastiveMethod, StepOutput
from contrastkit.nn.backbones import Backbone
from contrastkit.nn.heads import ProjectionHead
from contrastkit.nn.momentum import MomentumEncoder
from contrastkit.nn.shuffle import shuffled_forward
from contrastkit.nn.split_batchnorm import convert_to_split_batchnorm
from contrastkit.registry import MethodParams, register_method
from contrastkit.views.image import ViewAugmentation

__all__ = ["MoCo", "MoCoParams"]


class MoCoParams(MethodParams):
    """Recipe options of ``MoCo`` (``method: {name: moco, ...}``)."""

    name: Literal["moco"] = "moco"
    temperature: float = Field(0.2, gt=0)
    queue_size: int = Field(4096, gt=0)
    momentum: float = Field(0.99, ge=0, le=1)
    split_bn: int = Field(4, ge=1)
    shuffle_keys: bool = True
    symmetric: bool = False
    beta: float = Field(0.0, ge=0)
    tau_plus: float = Field(0.0, ge=0, lt=1)
    proj_hidden: int = Field(512, gt=0)
    proj_dim: int = Field(128, gt=0)
    proj_layers: int = Field(2, ge=1)

    @classmethod
    def smoke(cls, method: dict[str, Any]) -> None:
        if "queue_size" in method:
            method["queue_size"] = min(int(method["queue_size"]), 256)


@register_method("moco", MoCoParams, task="images", summary="MoCo v2 (HCL with beta/tau_plus): momentum keys, queue")
class MoCo(ContrastiveMethod):
    """MoCo v2 with optional HCL weighting of the queue's negatives.

    Args:
        backbone, augmentation: see ``ContrastiveMethod``.
        temperature: 0.2 (v2); the CIFAR demo uses 0.1.
        queue_size: ``K`` keys; need not be a multiple of the batch.
        momentum: EMA coefficient ``m`` of the key encoder.
        split_bn: number of BatchNorm splits (ShuffleBN emulation on one device; 1 = plain BN).
        shuffle_keys: encode keys in a shuffled batch (ShuffleBN).
        symmetric: add the loss with the two views swapped (CIFAR demo option).
        beta, tau_plus: HCL hardness and debiasing applied to the queue (0, 0 = MoCo).
        proj_hidden, proj_dim, proj_layers: the head (v2: 2-layer MLP, no BN).
        **base: ``ContrastiveMethod`` keyword arguments.
    """

    def __init__(
        self,
        backbone: Backbone,
        augmentation: ViewAugmentation,
        *,
        temperature: float = 0.2,
        queue_size: int = 4096,
        momentum: float = 0.99,
        split_bn: int = 4,
        shuffle_keys: bool = True,
        symmetric: bool = False,
        beta: float = 0.0,
        tau_plus: float = 0.0,
        proj_hidden: int = 512,
        proj_dim: int = 128,
        proj_layers: int = 2,
        **base: Any,
    ) -> None:
        if split_bn > 1:
            convert_to_split_batchnorm(backbone, split_bn)
        super().__init__(backbone, augmentation, **base)
        self.projection = ProjectionHead(backbone.feature_dim, proj_hidden, proj_dim, proj_layers)
        self.momentum_backbone = MomentumEncoder(backbone)
        self.momentum_projection = MomentumEncoder(self.projection)
        self.momentum = momentum
        self.shuffle_keys = shuffle_keys
        self.symmetric = symmetric
        self.criterion = self._make_criterion(temperature, beta, tau_plus, queue_size, proj_dim)

    def _make_criterion(self, temperature: float, beta: float, tau_plus: float, size: int, dim: int) -> InfoNCELoss:
        return InfoNCELoss(temperature, beta=beta, tau_plus=tau_plus, queue_size=size, dim=dim)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self.momentum_backbone.module), (self.projection, self.momentum_projection.module)]

    def key_outputs(self, x: Tensor) -> tuple[Tensor, ...]:
        """Momentum-encoder outputs for key images (``(k,)`` here; DenseCL adds dense maps)."""
        return (self.momentum_projection(self.momentum_backbone(x)),)

    @torch.no_grad()
    def keys(self, x: Tensor) -> tuple[Tensor, ...]:
        if self.shuffle_keys:
            return shuffled_forward(self.key_outputs, x, self.shared_generator(1))
        return self.key_outputs(x)

    def query(self, x: Tensor) -> Tensor:
        return self.projection(self.backbone(x))

    def contrast(self, q: Tensor, k: Tensor, indices: Tensor) -> Tensor:
        return self.criterion(q, k, sample_ids=indices)

    def step(self, batch: Batch) -> StepOutput:
        indices = batch["index"]
        x_q, x_k = self.views(batch["input"])
        q = self.query(x_q)
        (k,) = self.keys(x_k)
        negatives = self._negative_sample(q)
        loss = self.contrast(q, k, indices)
        if self.symmetric:
            q2 = self.query(x_k)
            (k2,) = self.keys(x_q)
            loss = loss + self.contrast(q2, k2, indices)
        pos = (F.normalize(q.detach(), dim=1) * F.normalize(k, dim=1)).sum(1)
        return StepOutput(loss, pos, negatives)

    def _negative_sample(self, q: Tensor) -> Tensor:
        assert self.criterion.queue is not None
        queue = self.criterion.queue.keys[:512]
        return (F.normalize(q.detach(), dim=1) @ queue.t()).flatten()
