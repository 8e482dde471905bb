"""Projection heads: MLPs on pooled features, 1x1-conv MLPs on feature maps (DenseCL), and the
long/short-view method's order-aware aggregator and position predictor."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "DenseProjectionHead",
    "OrderAggregator",
    "PositionPredictor",
    "ProjectionHead",
    "check_order_sensitive",
    "order_embedding",
]


class ProjectionHead(nn.Sequential):
    """``Linear -> [BN] -> ReLU -> ... -> Linear``.

    Args:
        in_dim: input width.
        hidden_dim: width of the hidden layers.
        out_dim: output width.
        num_layers: number of Linear layers (1 = MoCo v1's linear head, 2 = MoCo v2 / SimCLR).
        batch_norm: BatchNorm1d after each hidden Linear (HCL's head uses it, MoCo's does not).
        bias: bias on the hidden Linears (HCL's head has none).

    Examples:
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
    """DenseCL's dense head (``docs/methods/densecl.md``): ``conv1x1 -> ReLU -> conv1x1`` on ``[B, C, H, W]``.

    Examples:
        >>> import torch
        >>> DenseProjectionHead(256, 256, 64)(torch.randn(2, 256, 4, 4)).shape
        torch.Size([2, 64, 4, 4])
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(nn.Conv2d(in_dim, hidden_dim, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden_dim, out_dim, 1))

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x)


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


def check_order_sensitive(aggregate: Callable[[Tensor], Tensor], views: int, dim: int, seed: int = 0) -> None:
    """Raise ``ValueError`` unless ``aggregate`` changes when two short views swap
    (a mean would make the long/short shuffled-aggregate negative a copy of the positive)."""
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


def order_embedding(head: nn.Module, features: Tensor, order: Tensor, across: str = "frames") -> Tensor:
    """VCLR's order embeddings: per-element features ``[B, S, D]`` presented in ``order`` ``[B, S]``,
    through ``head``, normalised across the ``S`` elements (``"frames"``, the official code) or
    across dimensions (``"features"``) -> ``[B, S, d]``."""
    presented = features.gather(1, order[..., None].expand_as(features))
    return F.normalize(head(presented), dim=1 if across == "frames" else 2)
