"""Graph views for MVGRL (Hassani & Khasahmadi, ICML 2020; ``docs/methods/mvgrl.md``).

- ``normalized_adjacency``: ``D~^{-1/2} (A + s I) D~^{-1/2}`` (``s = 1``; the official node
  pipeline adds the self-loop twice, ``s = 2``, see ``docs/methods/mvgrl.md``).
- ``ppr_diffusion``: ``a (I - (1 - a) A^)^{-1}`` with the symmetric normalisation of the
  official ``compute_ppr`` (exact, dense) — S is symmetric, its rows do not sum to 1.
- ``heat_diffusion``: ``expm(t A D^{-1} - t I)``, a *matrix* exponential (the official
  ``compute_heat`` uses an element-wise exp).
- ``sparse_ppr``: the approximate top-k PPR of torch_geometric's GDC for graphs too large for
  a dense inverse.
- ``sparsify_eps`` / ``topk_per_column``: the official code's sparsifiers; ``contiguous_windows``: the
  official sub-graph sampler.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "crop_window",
    "diffusion_matrix",
    "contiguous_windows",
    "dense_adjacency",
    "heat_diffusion",
    "normalized_adjacency",
    "ppr_diffusion",
    "sparse_ppr",
    "sparsify_eps",
    "topk_per_column",
]


def dense_adjacency(edge_index: Tensor, num_nodes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Binary symmetric ``[n, n]`` adjacency from ``edge_index`` ``[2, E]`` (duplicates merged)."""
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must have shape [2, E], got {tuple(edge_index.shape)}")
    adj = torch.zeros(num_nodes, num_nodes, dtype=dtype)
    adj[edge_index[0], edge_index[1]] = 1.0
    adj[edge_index[1], edge_index[0]] = 1.0
    return adj


def normalized_adjacency(adj: Tensor, self_loops: float = 1.0) -> Tensor:
    """``D~^{-1/2} (A + s I) D~^{-1/2}`` with ``D~`` the degrees of ``A + s I`` (dense ``[n, n]``)."""
    if adj.dim() != 2 or adj.shape[0] != adj.shape[1]:
        raise ValueError(f"adj must be a square matrix, got shape {tuple(adj.shape)}")
    a = adj + self_loops * torch.eye(adj.shape[0], dtype=adj.dtype, device=adj.device)
    d = a.sum(dim=1).clamp_min(1e-12).rsqrt()
    return d[:, None] * a * d[None, :]


def ppr_diffusion(adj: Tensor, alpha: float = 0.2, self_loops: float = 1.0) -> Tensor:
    """Exact personalised PageRank ``alpha (I - (1 - alpha) A^)^{-1}`` (dense, float64 inside)."""
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must lie in (0, 1], got {alpha}")
    a_hat = normalized_adjacency(adj.double(), self_loops)
    eye = torch.eye(adj.shape[0], dtype=torch.float64, device=adj.device)
    s = alpha * torch.linalg.inv(eye - (1 - alpha) * a_hat)
    return ((s + s.t()) / 2).to(adj.dtype)  # symmetric up to round-off; make it exact


def heat_diffusion(adj: Tensor, t: float = 5.0) -> Tensor:
    """Heat kernel ``expm(t A D^{-1} - t I)`` (dense); columns sum to 1."""
    if t < 0:
        raise ValueError(f"t must be >= 0, got {t}")
    a = adj.double()
    deg_inv = 1.0 / a.sum(dim=0).clamp_min(1e-12)
    transition = a * deg_inv[None, :]
    eye = torch.eye(a.shape[0], dtype=torch.float64, device=adj.device)
    return torch.linalg.matrix_exp(t * transition - t * eye).to(adj.dtype)


def sparse_ppr(edge_index: Tensor, num_nodes: int, alpha: float = 0.2, k: int = 64, eps: float = 1e-4) -> Tensor:
    """Approximate PPR kept at the top ``k`` entries per column (torch_geometric's GDC, push-based),
    returned as a sparse COO ``[n, n]`` tensor. Needs the ``graph`` extra (torch_geometric, numba)."""
    from torch_geometric.data import Data
    from torch_geometric.transforms import GDC

    gdc = GDC(
        self_loop_weight=1.0,
        normalization_in="sym",
        normalization_out=None,
        diffusion_kwargs={"method": "ppr", "alpha": alpha, "eps": eps},
        sparsification_kwargs={"method": "threshold", "eps": 0.0},
        exact=False,
    )
    out = gdc(Data(edge_index=edge_index, num_nodes=num_nodes))
    index, value = out.edge_index, out.edge_attr
    # top-k per column (PyG's sparse path only thresholds): sort by column, then by value
    order = torch.argsort(value, descending=True, stable=True)
    order = order[torch.argsort(index[1, order], stable=True)]
    cols = index[1, order]
    starts = torch.searchsorted(cols, cols, right=False)
    keep = order[(torch.arange(len(cols)) - starts) < k]
    return torch.sparse_coo_tensor(
        index[:, keep], value[keep], (num_nodes, num_nodes), check_invariants=False
    ).coalesce()


def sparsify_eps(s: Tensor, adj: Tensor, candidates: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2)) -> Tensor:
    """The official CiteSeer sparsifier: pick eps so that the number of entries >= eps per node
    best matches the mean degree of ``adj``, zero the rest, then min-max scale each column."""
    target = adj.sum() / adj.shape[0]
    counts = torch.stack([(s >= e).sum() / s.shape[0] for e in candidates])
    eps = candidates[int((counts - target).abs().argmin())]
    kept = torch.where(s >= eps, s, torch.zeros_like(s))
    lo, hi = kept.min(dim=0, keepdim=True).values, kept.max(dim=0, keepdim=True).values
    return (kept - lo) / (hi - lo).clamp_min(1e-12)


def topk_per_column(s: Tensor, k: int) -> Tensor:
    """Keep the ``k`` largest entries of each column of a dense matrix (GDC-style), zero the rest."""
    if not 1 <= k <= s.shape[0]:
        raise ValueError(f"k must lie in [1, {s.shape[0]}], got {k}")
    idx = s.topk(k, dim=0).indices
    return torch.zeros_like(s).scatter_(0, idx, s.gather(0, idx))


def contiguous_windows(
    num_nodes: int, size: int, count: int, generator: torch.Generator | None = None
) -> list[tuple[int, int]]:
    """``count`` windows ``[i, i + size)`` with ``i ~ U{0 .. n - size}`` (the official sampler)."""
    if not 1 <= size <= num_nodes:
        raise ValueError(f"window size must lie in [1, {num_nodes}], got {size}")
    starts = torch.randint(0, num_nodes - size + 1, (count,), generator=generator)
    return [(int(s), int(s) + size) for s in starts]


def diffusion_matrix(
    adj: Tensor, kind: str = "ppr", alpha: float = 0.2, heat_t: float = 5.0, self_loops: float = 1.0
) -> Tensor:
    """The dense diffusion view of ``adj``: ``ppr`` or ``heat`` (``docs/methods/mvgrl.md``)."""
    if kind == "ppr":
        return ppr_diffusion(adj, alpha, self_loops)
    if kind == "heat":
        return heat_diffusion(adj, heat_t)
    raise ValueError(f"diffusion must be 'ppr' or 'heat', got {kind!r}")


def crop_window(matrix: Tensor, start: int, stop: int) -> Tensor:
    """The block ``[start:stop, start:stop]`` of a dense or sparse COO ``[n, n]`` matrix (sparse
    stays sparse, coalesced): MVGRL's sub-graph of contiguous nodes."""
    if not matrix.is_sparse:
        return matrix[start:stop, start:stop]
    idx, val = matrix.indices(), matrix.values()
    keep = (idx[0] >= start) & (idx[0] < stop) & (idx[1] >= start) & (idx[1] < stop)
    n = stop - start
    return torch.sparse_coo_tensor(idx[:, keep] - start, val[keep], (n, n), check_invariants=False).coalesce()
