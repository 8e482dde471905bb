"""Cross-modal retrieval of paired items (``docs/methods/crossclr.md``): each query's true item is the
gallery row with the same index; rank = 1 + the number of gallery items scored strictly higher.

- ``R@k``: share of queries whose true item ranks within ``k`` (%);
- ``MedR`` / ``MnR``: median / mean rank of the true item;
- cluster R@1: share of queries whose top-1 item belongs to the query's cluster (%);
- intra-modal similarity of different clusters: mean cosine between items of one modality
  from different clusters (lower = a more spread-out space).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["cluster_recall_at_1", "different_cluster_similarity", "paired_ranks", "retrieval_scores"]


@torch.no_grad()
def paired_ranks(queries: Tensor, gallery: Tensor) -> Tensor:
    """``[N]`` rank (1 = first) of ``gallery[i]`` for ``queries[i]`` by cosine similarity."""
    if queries.shape[0] != gallery.shape[0]:
        raise ValueError(f"paired retrieval needs one gallery item per query, got {len(queries)} and {len(gallery)}")
    sim = F.normalize(queries.float(), dim=1) @ F.normalize(gallery.float(), dim=1).t()
    true = sim.diagonal()[:, None]
    return (sim > true).sum(1) + 1


def retrieval_scores(queries: Tensor, gallery: Tensor, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """``{"r1", "r5", "r10", "medr", "mnr"}`` of paired retrieval.

    Examples:
        >>> retrieval_scores(torch.eye(3), torch.eye(3))["r1"]
        100.0
    """
    ranks = paired_ranks(queries, gallery).float()
    out = {f"r{k}": float((ranks <= k).float().mean() * 100) for k in ks}
    out["medr"] = float(ranks.median())
    out["mnr"] = float(ranks.mean())
    return out


@torch.no_grad()
def cluster_recall_at_1(queries: Tensor, gallery: Tensor, query_clusters: Tensor, gallery_clusters: Tensor) -> float:
    """Share (%) of queries whose nearest gallery item (cosine) is from the query's cluster."""
    sim = F.normalize(queries.float(), dim=1) @ F.normalize(gallery.float(), dim=1).t()
    top = sim.argmax(1)
    return float((gallery_clusters[top] == query_clusters).float().mean() * 100)


@torch.no_grad()
def different_cluster_similarity(features: Tensor, clusters: Tensor) -> float:
    """Mean cosine between items of different clusters (one modality)."""
    z = F.normalize(features.float(), dim=1)
    sim = z @ z.t()
    different = clusters[:, None] != clusters[None, :]
    return float(sim[different].mean()) if bool(different.any()) else float("nan")
