"""MoCo v2 (He et al., CVPR 2020; Chen et al., 2020; ``docs/methods/moco.md``): a query encoder, a momentum
key encoder, a queue of past keys, ShuffleBN (split BN on one device). HCL's negatives are the
``beta``/``tau_plus`` options of the loss (recipes ``moco-hcl-*``)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from contrastkit.losses import InfoNCELoss
from contrastkit.methods.base import Batch, ContrastiveMethod, StepOutput
from contrastkit.nn.backbones import Backbone
from contrastkit.nn.heads import ProjectionHead
from contrastkit.nn.momentum import MomentumEncoder
from contrastkit.nn.split_batchnorm import convert_to_split_batchnorm
from contrastkit.registry import MethodParams, register_method
from contrastkit.views.image import ViewAugmentation

__all__ = ["EMA_NOT_SGD", "MoCo", "MoCoParams", "shrink_queues"]

EMA_NOT_SGD = "the key encoder's EMA rate; optim.momentum is SGD's"
SMOKE_QUEUE = 256
"""Largest queue of a ``--smoke`` run."""


def shrink_queues(method: dict[str, Any], *keys: str) -> None:
    """``--smoke``: cap the queue sizes a raw ``method:`` mapping sets at ``SMOKE_QUEUE``."""
    for key in keys:
        if method.get(key):
            method[key] = min(int(method[key]), SMOKE_QUEUE)


class MoCoParams(MethodParams):
    """Options of ``MoCo`` (``method: {name: moco, ...}`` in a recipe, keywords in Python).

    Attributes:
        temperature: 0.2 (v2); the CIFAR demo uses 0.1.
        queue_size: ``K`` keys; need not be a multiple of the batch.
        ema_momentum: EMA rate ``m`` of the key encoder (``momentum`` before; ``optim.momentum``
            is SGD's).
        split_bn: number of BatchNorm splits (ShuffleBN emulation on one device; 1 = plain BN).
        shuffle_keys: encode keys in a shuffled batch (ShuffleBN).
        symmetric: add the loss with the two views swapped (CIFAR demo option); both
            directions' keys enter the queue after both losses.
        beta, tau_plus: HCL hardness and debiasing applied to the queue (0, 0 = MoCo).
        proj_hidden, proj_dim, proj_layers: the head (v2: 2-layer MLP, no BN).
    """

    name: Literal["moco"] = "moco"
    renamed: ClassVar[dict[str, tuple[str, str]]] = {"momentum": ("ema_momentum", EMA_NOT_SGD)}
    temperature: float = Field(0.2, gt=0)
    queue_size: int = Field(4096, gt=0)
    ema_momentum: float = Field(0.99, ge=0, le=1)
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
        shrink_queues(method, "queue_size")


@register_method("moco", MoCoParams, task="images", summary="MoCo v2 (HCL with beta/tau_plus): momentum keys, queue")
class MoCo(ContrastiveMethod):
    """MoCo v2 with optional HCL weighting of the queue's negatives.

    The loss module computes; the queue is updated here, after every loss of the step
    (``enqueue``), so no query ever meets a key of its own batch among its negatives.

    Args:
        backbone, augmentation: see ``ContrastiveMethod``.
        params: the options (``MoCoParams``); keywords named like its fields override them.
        **base: ``ContrastiveMethod`` keyword arguments.

    Examples:
        >>> from contrastkit.nn import ConvNetSmall
        >>> from contrastkit.views import build_augmentation
        >>> aug = build_augmentation("digits", 16, (0.3,), (0.3,))
        >>> model = MoCo(ConvNetSmall(1, 8), aug, queue_size=64, temperature=0.1)
        >>> model.params.queue_size, model.params.proj_dim
        (64, 128)
    """

    params: MoCoParams

    def __init__(
        self, backbone: Backbone, augmentation: ViewAugmentation, params: MoCoParams | None = None, **options: Any
    ) -> None:
        p, base = MoCoParams.resolve(params, options)
        if p.split_bn > 1:
            convert_to_split_batchnorm(backbone, p.split_bn)
        super().__init__(backbone, augmentation, **base)
        self.params = p
        self.ema_momentum = p.ema_momentum
        self.projection = ProjectionHead(backbone.feature_dim, p.proj_hidden, p.proj_dim, p.proj_layers)
        self.momentum_backbone = MomentumEncoder(backbone)
        self.momentum_projection = MomentumEncoder(self.projection)
        self.criterion = self.make_criterion(p)

    def make_criterion(self, p: MoCoParams) -> InfoNCELoss:
        """The queue loss (subclasses return a variant built from their own params)."""
        return InfoNCELoss(p.temperature, beta=p.beta, tau_plus=p.tau_plus, queue_size=p.queue_size, dim=p.proj_dim)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self.momentum_backbone.module), (self.projection, self.momentum_projection.module)]

    def key_outputs(self, x: Tensor) -> tuple[Tensor, ...]:
        """Momentum-encoder outputs for key images (``(k,)`` here; DenseCL adds dense maps)."""
        return (self.momentum_projection(self.momentum_backbone(x)),)

    def keys(self, x: Tensor) -> tuple[Tensor, ...]:
        return self.key_forward(self.key_outputs, x, self.params.shuffle_keys)

    def query(self, x: Tensor) -> Tensor:
        return self.projection(self.backbone(x))

    def contrast(self, q: Tensor, k: Tensor, indices: Tensor | None) -> Tensor:
        """InfoNCE of ``q`` against ``k`` and the queue as it was before this step."""
        return self.criterion(q, k, sample_ids=indices, enqueue=False)

    def enqueue(self, keys: Tensor, indices: Tensor) -> None:
        """Write this step's keys into the queue (after all of its losses)."""
        self.criterion.enqueue(keys, indices)

    def step(self, batch: Batch) -> StepOutput:
        indices = batch["index"]
        x_q, x_k = self.views(batch["input"])
        q = self.query(x_q)
        (k,) = self.keys(x_k)
        negatives = self.queue_similarities(q, self.criterion.queue_negatives())
        loss = self.contrast(q, k, indices)
        if self.params.symmetric:
            (k2,) = self.keys(x_q)
            loss = loss + self.contrast(self.query(x_k), k2, indices)
            self.enqueue(torch.cat([k, k2]), torch.cat([indices, indices]))
        else:
            self.enqueue(k, indices)
        pos = (F.normalize(q.detach(), dim=1) * F.normalize(k, dim=1)).sum(1)
        return StepOutput(loss, pos, negatives)
