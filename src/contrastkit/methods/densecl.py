"""DenseCL (Wang et al., CVPR 2021; ``docs/methods/densecl.md``): MoCo v2 plus a dense head whose per-location
vectors are contrasted with their best-matching key location (matched on the momentum
*backbone* maps) against a second queue of pooled dense keys.

    L = (1 - lambda) * L_global + lambda * L_dense
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from contrastkit.losses import InfoNCELoss
from contrastkit.methods.base import Batch, StepOutput
from contrastkit.methods.moco import MoCo, MoCoParams, shrink_queues
from contrastkit.nn.backbones import Backbone, global_average_pool
from contrastkit.nn.heads import DenseProjectionHead
from contrastkit.nn.momentum import MomentumEncoder
from contrastkit.registry import register_method
from contrastkit.views.image import ViewAugmentation

__all__ = ["DenseCL", "DenseCLParams", "match_locations"]


class DenseCLParams(MoCoParams):
    """Options of ``DenseCL``: MoCo's plus the dense head and queue (see ``DenseCL``)."""

    name: Literal["densecl"] = "densecl"  # type: ignore[assignment]
    dense_weight: float = Field(0.5, ge=0, le=1)
    dense_hidden: int | None = Field(None, gt=0)
    dense_dim: int = Field(128, gt=0)
    dense_queue_size: int | None = Field(None, gt=0)

    @classmethod
    def smoke(cls, method: dict[str, Any]) -> None:
        shrink_queues(method, "queue_size", "dense_queue_size")


@torch.no_grad()
def match_locations(query_map: Tensor, key_map: Tensor) -> Tensor:
    """For each query location the most similar key location (cosine), ``[B, P]`` in ``[0, P)``.

    Args:
        query_map, key_map: backbone maps ``[B, C, H, W]`` of the two views.
    """
    fq = F.normalize(query_map.flatten(2), dim=1)
    fk = F.normalize(key_map.flatten(2), dim=1)
    return torch.einsum("bcp,bcr->bpr", fq, fk).argmax(dim=2)


@register_method("densecl", DenseCLParams, task="images", summary="DenseCL: MoCo v2 plus pixel-level contrast")
class DenseCL(MoCo):
    """DenseCL on MoCo v2: ``MoCoParams`` (``proj_dim`` is the global head's output) plus

    - ``dense_weight``: ``lambda`` (0.5 in the paper; 0 = MoCo v2 exactly);
    - ``dense_hidden``, ``dense_dim``: dense head ``conv1x1 C->hidden -> ReLU -> conv1x1 hidden->dim``;
    - ``dense_queue_size``: ``K`` of the second queue (defaults to ``queue_size``).

    Args:
        backbone, augmentation, params, **options: as ``MoCo`` (``params`` a ``DenseCLParams``).
    """

    params: DenseCLParams

    def __init__(
        self, backbone: Backbone, augmentation: ViewAugmentation, params: DenseCLParams | None = None, **options: Any
    ) -> None:
        p, base = DenseCLParams.resolve(params, options)
        super().__init__(backbone, augmentation, p, **base)
        self.dense_head = DenseProjectionHead(backbone.feature_dim, p.dense_hidden or backbone.feature_dim, p.dense_dim)
        self.momentum_dense_head = MomentumEncoder(self.dense_head)
        self.dense_criterion = InfoNCELoss(
            p.temperature, queue_size=p.dense_queue_size or p.queue_size, dim=p.dense_dim
        )

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [*super().momentum_pairs(), (self.dense_head, self.momentum_dense_head.module)]

    def key_outputs(self, x: Tensor) -> tuple[Tensor, ...]:
        feature_map = self.momentum_backbone.module.forward_map(x)
        k = self.momentum_projection(global_average_pool(feature_map))
        dense = self.momentum_dense_head(feature_map)
        return k, dense, feature_map

    def step(self, batch: Batch) -> StepOutput:
        indices = batch["index"]
        x_q, x_k = self.views(batch["input"])
        feature_map = self.backbone.forward_map(x_q)
        q = self.projection(global_average_pool(feature_map))
        dense_q = self.dense_head(feature_map)  # [B, D, H, W]
        k, dense_k, key_map = self.keys(x_k)
        negatives = self.queue_similarities(q, self.criterion.queue_negatives())
        global_loss = self.contrast(q, k, indices)

        match = match_locations(feature_map.detach(), key_map)  # [B, P]
        d = dense_q.shape[1]
        raw_k = dense_k.flatten(2)  # [B, D, P]
        positives = torch.gather(raw_k, 2, match.unsqueeze(1).expand(-1, d, -1))
        rows_q = dense_q.flatten(2).transpose(1, 2).reshape(-1, d)
        rows_k = positives.transpose(1, 2).reshape(-1, d)
        dense_loss = self.dense_criterion(rows_q, rows_k, enqueue=False)
        weight = self.params.dense_weight
        loss = (1 - weight) * global_loss + weight * dense_loss

        self.enqueue(k, indices)
        assert self.dense_criterion.queue is not None
        # one dense negative per past image: the raw dense output pooled over locations, normalised
        self.dense_criterion.queue.enqueue(F.normalize(raw_k.mean(dim=2), dim=1))
        self.log_terms({"dense_loss": dense_loss, "global_loss": global_loss})
        pos = (F.normalize(q.detach(), dim=1) * F.normalize(k, dim=1)).sum(1)
        return StepOutput(loss, pos, negatives)
