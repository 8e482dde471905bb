"""Split BatchNorm: emulate per-GPU BN statistics on one device (MoCo's ShuffleBN, ``docs/methods/moco.md``).

On one device, permuting the key batch changes nothing for plain BatchNorm (same statistics).
Split BN normalises ``num_splits`` groups of the batch separately in training, so a shuffled
key batch and its query batch no longer share statistics, as on several GPUs. As in the MoCo
CIFAR demo's ``SplitBatchNorm`` (a reshape ``[N, C] -> [N / S, C * S]``), sample ``i`` falls in
group ``i mod S``.
In eval mode it is ordinary BN with running statistics.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "SplitBatchNorm1d",
    "SplitBatchNorm2d",
    "SplitBatchNorm3d",
    "convert_to_split_batchnorm",
    "shuffle_batch",
    "unshuffle_batch",
]


class _SplitBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over ``num_splits`` groups of the batch in training (sample ``i`` in group ``i mod S``).

    Running statistics are the mean over the splits of each split's update, as in the
    MoCo CIFAR demo. Batches whose size is not divisible by ``num_splits`` fall back to
    the largest divisor of the batch size not above ``num_splits``. Works for any trailing
    shape the plain layer accepts (``[N, C]``, ``[N, C, L]``, ``[N, C, H, W]``, ``[N, C, T, H, W]``).
    """

    def __init__(self, num_features: int, num_splits: int, **kwargs: object) -> None:
        super().__init__(num_features, **kwargs)  # type: ignore[arg-type]
        if num_splits < 1:
            raise ValueError(f"num_splits must be >= 1, got {num_splits}")
        self.num_splits = num_splits

    def _splits_for(self, batch: int) -> int:
        splits = min(self.num_splits, batch)
        while batch % splits:
            splits -= 1
        return splits

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        splits = self._splits_for(x.shape[0])
        if not self.training or splits == 1:
            return super().forward(x)
        n, c, rest = x.shape[0], x.shape[1], x.shape[2:]
        assert self.running_mean is not None and self.running_var is not None
        running_mean = self.running_mean.repeat(splits)
        running_var = self.running_var.repeat(splits)
        out = nn.functional.batch_norm(
            x.view(n // splits, c * splits, *rest),
            running_mean,
            running_var,
            self.weight.repeat(splits) if self.weight is not None else None,
            self.bias.repeat(splits) if self.bias is not None else None,
            True,
            self.momentum if self.momentum is not None else 0.1,
            self.eps,
        ).view(x.shape)
        with torch.no_grad():
            self.running_mean.copy_(running_mean.view(splits, c).mean(dim=0))
            self.running_var.copy_(running_var.view(splits, c).mean(dim=0))
            if self.num_batches_tracked is not None:
                self.num_batches_tracked.add_(1)
        return out


class SplitBatchNorm1d(_SplitBatchNorm, nn.BatchNorm1d):
    """Split ``BatchNorm1d`` (``[N, C]`` or ``[N, C, L]``)."""


class SplitBatchNorm2d(_SplitBatchNorm, nn.BatchNorm2d):
    """Split ``BatchNorm2d`` (``[N, C, H, W]``)."""


class SplitBatchNorm3d(_SplitBatchNorm, nn.BatchNorm3d):
    """Split ``BatchNorm3d`` (``[N, C, T, H, W]``: 3D CNNs on clips)."""


_SPLIT_OF: dict[type[nn.Module], type[_SplitBatchNorm]] = {
    nn.BatchNorm1d: SplitBatchNorm1d,
    nn.BatchNorm2d: SplitBatchNorm2d,
    nn.BatchNorm3d: SplitBatchNorm3d,
}


def convert_to_split_batchnorm(module: nn.Module, num_splits: int) -> nn.Module:
    """Replace every ``BatchNorm1d/2d/3d`` in ``module`` (in place) by its split version.

    Any other batch-statistics layer (``SyncBatchNorm``, a lazy or custom subclass) raises
    ``ValueError``: leaving it plain would silently disable ShuffleBN's effect. In-place ReLUs
    are made out-of-place: split BN returns a reshaped view, and an in-place op on a view makes
    autograd copy slices back (measured: +10% step time on a small CNN). A backbone that runs
    channels-last (``Backbone.memory_format``) is set back to NCHW: split BN regroups the batch
    into channels with a view, which needs contiguous NCHW tensors.
    """
    if hasattr(module, "memory_format"):
        module.memory_format = torch.contiguous_format
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            child.inplace = False
        if isinstance(child, _SplitBatchNorm):
            continue
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            split_type = _SPLIT_OF.get(type(child))
            if split_type is None:
                raise ValueError(
                    f"split BN cannot convert {name!r} ({type(child).__name__}); use split_bn=1 or a model with "
                    "BatchNorm1d/2d/3d"
                )
            split = split_type(
                child.num_features,
                num_splits,
                eps=child.eps,
                momentum=child.momentum,
                affine=child.affine,
                track_running_stats=child.track_running_stats,
            )
            split.load_state_dict(child.state_dict())
            setattr(module, name, split)
        else:
            convert_to_split_batchnorm(child, num_splits)
    return module


def shuffle_batch(x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Randomly permute the batch; returns the permuted batch and the inverse permutation."""
    perm = torch.randperm(x.shape[0], device=x.device, generator=generator)
    return x[perm], torch.argsort(perm)


def unshuffle_batch(x: Tensor, inverse: Tensor) -> Tensor:
    """Undo ``shuffle_batch``."""
    return x[inverse]
