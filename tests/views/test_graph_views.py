"""Diffusion views against mvgrl.md §9."""

from __future__ import annotations

import pytest
import torch

from contrastkit.data.graphs import sbm_graph
from contrastkit.views.graph import (
    contiguous_windows,
    dense_adjacency,
    heat_diffusion,
    normalized_adjacency,
    ppr_diffusion,
    sparse_ppr,
    sparsify_eps,
    topk_per_column,
)


@pytest.fixture(scope="module")
def adj() -> torch.Tensor:
    g = sbm_graph(num_nodes=60, num_classes=3, p_in=0.3, p_out=0.05, seed=1)
    return dense_adjacency(g.edge_index, g.num_nodes).double()


def test_normalized_adjacency_has_sqrt_degree_eigenvector(adj):
    a_hat = normalized_adjacency(adj)
    d = (adj + torch.eye(len(adj))).sum(1).sqrt()
    torch.testing.assert_close(a_hat @ d, d)
    torch.testing.assert_close(a_hat, a_hat.t())


def test_ppr_fixed_point_symmetry_and_limits(adj):
    alpha = 0.2
    s = ppr_diffusion(adj, alpha)
    a_hat = normalized_adjacency(adj)
    eye = torch.eye(len(adj), dtype=adj.dtype)
    torch.testing.assert_close(s, alpha * eye + (1 - alpha) * a_hat @ s)  # S = a I + (1 - a) A^ S
    torch.testing.assert_close(s, s.t())
    d = (adj + eye).sum(1).sqrt()
    torch.testing.assert_close(s @ d, d)
    assert (s >= 0).all()
    torch.testing.assert_close(ppr_diffusion(adj, 1.0), eye)
    assert not torch.allclose(s.sum(1), torch.ones(len(adj), dtype=adj.dtype)), "symmetric PPR rows need not sum to 1"


def test_heat_kernel_is_a_matrix_exponential(adj):
    torch.testing.assert_close(heat_diffusion(adj, 0.0), torch.eye(len(adj), dtype=adj.dtype))
    s = heat_diffusion(adj, 5.0)
    torch.testing.assert_close(s.sum(0), torch.ones(len(adj), dtype=adj.dtype))
    assert (s > 0).all()
    assert s.min() < torch.exp(torch.tensor(-5.0)), "element-wise exp would have min entry e^{-t}"


def test_sparsifiers(adj):
    s = ppr_diffusion(adj)
    top = topk_per_column(s, 5)
    assert ((top > 0).sum(0) == 5).all()
    torch.testing.assert_close(top.max(0).values, s.max(0).values)
    scaled = sparsify_eps(s, adj)
    assert scaled.min() >= 0 and torch.allclose(scaled.max(0).values, torch.ones(len(adj), dtype=adj.dtype))


def test_sparse_ppr_approximates_the_exact_one():
    g = sbm_graph(num_nodes=80, num_classes=2, p_in=0.2, p_out=0.02, seed=2)
    exact = ppr_diffusion(dense_adjacency(g.edge_index, g.num_nodes).double())
    approx = sparse_ppr(g.edge_index, g.num_nodes, k=80, eps=1e-6).to_dense().double()
    assert (approx - exact).abs().max() < 1e-2


def test_windows_lie_inside_the_graph():
    windows = contiguous_windows(100, 30, 50, torch.Generator().manual_seed(0))
    assert all(0 <= a and b <= 100 and b - a == 30 for a, b in windows)
    with pytest.raises(ValueError, match="window size"):
        contiguous_windows(10, 11, 1)
