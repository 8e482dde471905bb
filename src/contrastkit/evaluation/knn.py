"""Weighted k-nearest-neighbour classification on frozen features (MoCo's CIFAR monitor).

Reference: Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance
Discrimination", CVPR 2018; protocol as in ``docs/methods/moco.md``: cosine similarity to the whole
bank, top k = 200, each neighbour votes ``exp(sim / 0.1)`` for its label.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["knn_accuracy", "knn_predict"]


@torch.no_grad()
def knn_predict(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk: int = 1024,
) -> Tensor:
    """Predicted labels ``[M]`` for ``queries`` ``[M, D]`` from ``bank`` ``[N, D]`` / ``bank_labels`` ``[N]``."""
    if bank.shape[0] != bank_labels.shape[0]:
        raise ValueError(f"bank has {bank.shape[0]} rows but bank_labels {bank_labels.shape[0]}")
    if bank.shape[1] != queries.shape[1]:
        raise ValueError(f"bank dim {bank.shape[1]} != queries dim {queries.shape[1]}")
    k = min(k, bank.shape[0])
    bank = F.normalize(bank.float(), dim=1)
    preds = []
    for start in range(0, queries.shape[0], chunk):
        q = F.normalize(queries[start : start + chunk].float(), dim=1)
        sims, idx = (q @ bank.t()).topk(k, dim=1)
        votes = torch.zeros(q.shape[0], num_classes, device=q.device)
        votes.scatter_add_(1, bank_labels[idx], torch.exp(sims / temperature))
        preds.append(votes.argmax(1))
    return torch.cat(preds)


def knn_accuracy(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    labels: Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
) -> float:
    """Top-1 accuracy (percent) of ``knn_predict``."""
    preds = knn_predict(bank, bank_labels, queries, num_classes, k, temperature)
    return float((preds == labels.to(preds.device)).float().mean() * 100)
