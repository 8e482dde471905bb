"""MoCHi (Kalantidis et al., NeurIPS 2020; ``docs/methods/mochi.md``): MoCo v2 plus synthetic hard negatives
mixed from each query's hardest queue entries, switched on after ``mix_start_epoch``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator
from torch import Tensor

from contrastkit.losses import InfoNCELoss, MoCHiLoss
from contrastkit.methods.moco import MoCo, MoCoParams
from contrastkit.nn.backbones import Backbone
from contrastkit.registry import register_method
from contrastkit.views.image import ViewAugmentation

__all__ = ["MoCHi", "MoCHiParams"]


class MoCHiParams(MoCoParams):
    """Recipe options of ``MoCHi``: MoCo's plus the mixing sizes."""

    name: Literal["mochi"] = "mochi"  # type: ignore[assignment]
    num_hard: int = Field(256, gt=0)
    num_pair_mix: int = Field(256, ge=0)
    num_query_mix: int = Field(128, ge=0)
    mix_start_epoch: int = Field(0, ge=0)
    mask_own_keys: bool = True

    @model_validator(mode="after")
    def _hard_fits_queue(self) -> MoCHiParams:
        if self.num_hard > self.queue_size:
            raise ValueError(f"num_hard ({self.num_hard}) must not exceed queue_size ({self.queue_size})")
        return self

    @classmethod
    def smoke(cls, method: dict[str, Any]) -> None:
        super().smoke(method)
        if "num_hard" in method:
            method["num_hard"] = min(int(method["num_hard"]), 64)
            method["mix_start_epoch"] = min(int(method.get("mix_start_epoch", 0)), 1)


@register_method("mochi", MoCHiParams, task="images", summary="MoCHi: MoCo plus synthetic hard negatives")
class MoCHi(MoCo):
    """MoCHi(N, s, s') on MoCo: ``MoCoParams`` plus

    - ``num_hard``: ``N``, hardest queue entries per query to mix from;
    - ``num_pair_mix``: ``s``, mixes of two hard negatives per query;
    - ``num_query_mix``: ``s'``, mixes of the query with one hard negative;
    - ``mix_start_epoch``: epochs of plain MoCo first (the early queue is noise);
    - ``mask_own_keys``: skip queue entries of the query's own image when mixing.

    Args:
        backbone, augmentation, params, **options: as ``MoCo`` (``params`` a ``MoCHiParams``).
    """

    params: MoCHiParams

    def __init__(
        self, backbone: Backbone, augmentation: ViewAugmentation, params: MoCHiParams | None = None, **options: Any
    ) -> None:
        p, base = MoCHiParams.resolve(params, options)
        super().__init__(backbone, augmentation, p, **base)

    def make_criterion(self, p: MoCoParams) -> InfoNCELoss:
        assert isinstance(p, MoCHiParams)
        return MoCHiLoss(
            p.num_hard,
            p.num_pair_mix,
            p.num_query_mix,
            mask_own_keys=p.mask_own_keys,
            temperature=p.temperature,
            beta=p.beta,
            tau_plus=p.tau_plus,
            queue_size=p.queue_size,
            dim=p.proj_dim,
        )

    def contrast(self, q: Tensor, k: Tensor, indices: Tensor | None) -> Tensor:
        assert isinstance(self.criterion, MoCHiLoss)
        self.criterion.mixing_enabled = self.current_epoch >= self.params.mix_start_epoch
        self.criterion.generator = self.generator(2)
        return self.criterion(q, k, sample_ids=indices, enqueue=False)
