"""Graph encoders of MVGRL (``docs/methods/mvgrl.md``): GCN layers over dense, sparse or edge-list
propagation matrices, a bilinear discriminator written as matrix products, and the MLP heads."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["BilinearDiscriminator", "GCNLayer", "GraphEncoder", "ResidualMLP", "propagate"]


def propagate(matrix: Tensor | tuple[Tensor, Tensor, int], h: Tensor) -> Tensor:
    """``M @ h`` for ``M`` dense ``[n, n]`` / ``[B, n, n]``, sparse COO ``[n, n]``, or an edge list
    ``(index [2, E] (row, col), weight [E], n)`` meaning ``M[row, col] = weight``."""
    if isinstance(matrix, tuple):
        index, weight, n = matrix
        messages = weight[:, None] * h[index[1]]  # in the wider of the two dtypes (float32 under autocast)
        return messages.new_zeros(n, h.shape[-1]).index_add_(0, index[0], messages)
    if matrix.is_sparse:
        if torch.is_autocast_enabled(h.device.type):  # torch.sparse.mm's backward fails on bf16 gradients
            coalesced = matrix.coalesce()
            return propagate((coalesced.indices(), coalesced.values(), matrix.shape[0]), h)
        return torch.sparse.mm(matrix, h)
    return matrix @ h


class GCNLayer(nn.Module):
    """``PReLU(M (X W) + b)`` with ``W`` xavier-uniform and ``b = 0`` (the official init).

    Args:
        in_dim, out_dim: widths.
        activation: apply the PReLU (True in MVGRL).
    """

    def __init__(self, in_dim: int, out_dim: int, activation: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.act = nn.PReLU() if activation else nn.Identity()
        nn.init.xavier_uniform_(self.weight)

    def transform(self, x: Tensor) -> Tensor:
        """``X W`` (sparse ``X`` allowed); split out so callers can reuse it across views."""
        return torch.sparse.mm(x, self.weight) if x.is_sparse else x @ self.weight

    def forward(self, x: Tensor, matrix: Tensor | tuple[Tensor, Tensor, int], transformed: bool = False) -> Tensor:
        support = x if transformed else self.transform(x)
        return self.act(propagate(matrix, support) + self.bias)


class BilinearDiscriminator(nn.Module):
    """``D(h, c) = h^T W c + b`` shared by both directions, as ``nn.Bilinear(H, H, 1)`` but computed
    as ``h @ (W c)``: the same function and initialisation, without ``nn.Bilinear``'s
    ``[n, H, H]``-sized backward that dominates the official code's time and memory."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        ref = nn.Bilinear(dim, dim, 1)
        nn.init.xavier_uniform_(ref.weight)
        self.weight = nn.Parameter(ref.weight.data[0].clone())  # [H, H]
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, h: Tensor, summary: Tensor) -> Tensor:
        """Scores ``[..., n]`` of nodes ``h [..., n, H]`` against summaries ``summary [..., H]``."""
        wc = summary @ self.weight.t()  # [..., H]
        return (h @ wc.unsqueeze(-1)).squeeze(-1) + self.bias


class ResidualMLP(nn.Module):
    """Three ``Linear + PReLU`` layers plus a linear shortcut (MVGRL's graph-level heads)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(in_dim, out_dim),
            nn.PReLU(),
            nn.Linear(out_dim, out_dim),
            nn.PReLU(),
            nn.Linear(out_dim, out_dim),
            nn.PReLU(),
        )
        self.shortcut = nn.Linear(in_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.shortcut(x)


class GraphEncoder(nn.Module):
    """``L`` GCN layers for one view; returns the last layer's node outputs and, per graph, the
    concatenation over layers of the sum of each layer's node outputs (``docs/methods/mvgrl.md``)."""

    def __init__(self, in_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.layers = nn.ModuleList(GCNLayer(in_dim if i == 0 else hidden, hidden) for i in range(layers))

    def forward(
        self, x: Tensor, matrix: Tensor | tuple[Tensor, Tensor, int], batch: Tensor, num_graphs: int
    ) -> tuple[Tensor, Tensor]:
        pooled = []
        h = x
        for layer in self.layers:
            h = layer(h, matrix)
            pooled.append(h.new_zeros(num_graphs, h.shape[1]).index_add_(0, batch, h))
        return h, torch.cat(pooled, dim=1)
