"""Projection heads: MLPs on pooled features, 1x1-conv MLPs on feature maps (DenseCL)."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["DenseProjectionHead", "ProjectionHead"]


class ProjectionHead(nn.Sequential):
    """``Linear -> [BN] -> ReLU -> ... -> Linear``.

    Args:
        in_dim: input width.
        hidden_dim: width of the hidden layers.
        out_dim: output width.
        num_layers: number of Linear layers (1 = MoCo v1's linear head, 2 = MoCo v2 / SimCLR).
        batch_norm: BatchNorm1d after each hidden Linear (HCL's head uses it, MoCo's does not).
        bias: bias on the hidden Linears (HCL's head has none).

    Example:
        >>> import torch
        >>> ProjectionHead(512, 512, 128)(torch.randn(4, 512)).shape
        torch.Size([4, 128])
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int = 2,
        batch_norm: bool = False,
        bias: bool = True,
    ) -> None:
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(width, hidden_dim, bias=bias and not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.ReLU(inplace=True))
            width = hidden_dim
        layers.append(nn.Linear(width, out_dim))
        super().__init__(*layers)


class DenseProjectionHead(nn.Sequential):
    """DenseCL's dense head (``densecl.md`` §1): ``conv1x1 -> ReLU -> conv1x1`` on ``[B, C, H, W]``.

    Example:
        >>> import torch
        >>> DenseProjectionHead(256, 256, 64)(torch.randn(2, 256, 4, 4)).shape
        torch.Size([2, 64, 4, 4])
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(nn.Conv2d(in_dim, hidden_dim, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden_dim, out_dim, 1))

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x)
