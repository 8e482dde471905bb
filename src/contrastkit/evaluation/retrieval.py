"""Video retrieval recall (``docs/methods/vclr.md``): test videos query the training videos by cosine
similarity of their features; ``R@k`` is the share of queries with at least one same-class
video among their ``k`` nearest training videos."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["RECALL_AT", "retrieval_recall"]

RECALL_AT = (1, 5, 10, 20, 50)


@torch.no_grad()
def retrieval_recall(
    bank: Tensor, bank_labels: Tensor, queries: Tensor, query_labels: Tensor, ks: Sequence[int] = RECALL_AT
) -> dict[int, float]:
    """``{k: R@k in %}`` for ``queries`` ``[Q, D]`` against ``bank`` ``[N, D]`` (cosine).

    A ``k`` larger than the bank counts the whole bank. Ties are broken by bank order.

    Examples:
        >>> bank = torch.eye(3)
        >>> retrieval_recall(bank, torch.tensor([0, 1, 2]), bank, torch.tensor([0, 1, 2]), ks=(1,))
        {1: 100.0}
    """
    if bank.shape[0] != bank_labels.shape[0] or queries.shape[0] != query_labels.shape[0]:
        raise ValueError("features and labels must have the same number of rows")
    if bank.shape[0] == 0 or queries.shape[0] == 0:
        raise ValueError("retrieval needs a non-empty bank and at least one query")
    similarity = F.normalize(queries.float(), dim=1) @ F.normalize(bank.float(), dim=1).t()
    top = similarity.topk(min(max(ks), bank.shape[0]), dim=1).indices  # [Q, k_max]
    hits = bank_labels[top] == query_labels[:, None]  # [Q, k_max]
    first_hit = torch.where(hits.any(1), hits.float().argmax(1), torch.full_like(query_labels, top.shape[1]))
    return {k: 100.0 * float((first_hit < k).float().mean()) for k in ks}
