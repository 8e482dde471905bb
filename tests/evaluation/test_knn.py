"""Weighted kNN (moco.md §6): top-k cosine neighbours, each voting exp(sim / T) for its label."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from contrastkit.evaluation.knn import knn_accuracy, knn_predict


def _at(*cosines: float) -> torch.Tensor:
    """Unit vectors in 2-D with the given cosine to the query (1, 0)."""
    return torch.tensor([[c, math.sqrt(1 - c * c)] for c in cosines])


def test_votes_are_weighted_by_exp_similarity_over_temperature():
    """One class-0 neighbour at 0.99 outweighs two class-1 neighbours at 0.9 at T = 0.1
    (e^9.9 > 2 e^9); with equal votes class 1 would win."""
    bank, labels = _at(0.99, 0.9, 0.9), torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.0]])
    assert knn_predict(bank, labels, query, 2, k=3, temperature=0.1).tolist() == [0]
    assert knn_predict(bank, labels, query, 2, k=3, temperature=100.0).tolist() == [1]


def test_exactly_k_neighbours_vote():
    """The third neighbour decides: with k = 3 class 1 has two votes, with k = 2 one each."""
    bank, labels = _at(0.95, 0.94, 0.93, -1.0), torch.tensor([0, 1, 1, 0])
    query = torch.tensor([[1.0, 0.0]])
    assert knn_predict(bank, labels, query, 2, k=3, temperature=10.0).tolist() == [1]
    assert knn_predict(bank, labels, query, 2, k=2, temperature=10.0).tolist() == [0]


def test_matches_a_brute_force_loop():
    g = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(60, 5, generator=g), torch.randn(25, 5, generator=g)
    labels, truth = torch.randint(0, 4, (60,), generator=g), torch.randint(0, 4, (25,), generator=g)
    expected = []
    for q in queries:
        sims = F.normalize(bank, dim=1) @ F.normalize(q, dim=0)
        top = sims.argsort(descending=True)[:7]
        votes = [sum(math.exp(float(sims[j]) / 0.2) for j in top if labels[j] == c) for c in range(4)]
        expected.append(max(range(4), key=lambda c: votes[c]))
    got = knn_predict(bank, labels, queries, 4, k=7, temperature=0.2, chunk=10)
    assert got.tolist() == expected
    accuracy = knn_accuracy(bank, labels, queries, truth, 4, k=7, temperature=0.2)
    assert accuracy == 100 * sum(e == t for e, t in zip(expected, truth.tolist())) / 25
