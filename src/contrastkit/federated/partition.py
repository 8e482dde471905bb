"""Label-skewed partitions: MOON's Dirichlet(beta) split (``docs/methods/moon.md``, ``utils.py``).

For each class, proportions ``p ~ Dirichlet(beta * 1_N)`` are drawn; parties that already hold
at least ``n / N`` samples get ``p_j = 0`` (the official capacity cap), ``p`` is renormalised
and the class's shuffled indices are cut at the cumulative proportions. The whole draw is
repeated until every party holds at least ``min_size`` samples. Small ``beta`` = more skew.

[design] Not flwr-datasets' ``DirichletPartitioner``: that one needs a Hugging Face ``datasets``
object and differs in the capacity rule; this is MOON's algorithm on plain label tensors.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["dirichlet_partition", "label_histograms"]


def dirichlet_partition(
    labels: Tensor, num_parties: int, beta: float, *, seed: int = 0, min_size: int = 10, max_tries: int = 1000
) -> list[Tensor]:
    """Indices of each party's samples; every index appears in exactly one party.

    Args:
        labels: ``[n]`` integer class labels.
        num_parties: ``N`` >= 1.
        beta: Dirichlet concentration > 0.
        seed: the same seed gives the same partition.
        min_size: minimum samples per party (redraw until met).
        max_tries: give up (ValueError) after this many draws.
    """
    if num_parties < 1:
        raise ValueError(f"num_parties must be >= 1, got {num_parties}")
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    y = labels.cpu().numpy()
    n = len(y)
    if n < num_parties * min_size:
        raise ValueError(f"{n} samples cannot give {num_parties} parties at least {min_size} each")
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    for _ in range(max_tries):
        parts: list[list[int]] = [[] for _ in range(num_parties)]
        for c in classes:
            idx = np.flatnonzero(y == c)
            rng.shuffle(idx)
            p = rng.dirichlet(np.full(num_parties, beta))
            p = np.array([pj * (len(part) < n / num_parties) for pj, part in zip(p, parts)])
            p = p / p.sum() if p.sum() > 0 else np.full(num_parties, 1 / num_parties)
            cuts = (np.cumsum(p) * len(idx)).astype(int)[:-1]
            for part, chunk in zip(parts, np.split(idx, cuts)):
                part.extend(chunk.tolist())
        if min(len(part) for part in parts) >= min_size:
            return [torch.tensor(sorted(part), dtype=torch.long) for part in parts]
    raise ValueError(f"no Dirichlet({beta}) draw gave every party >= {min_size} samples in {max_tries} tries")


def label_histograms(labels: Tensor, parts: list[Tensor], num_classes: int) -> Tensor:
    """``[num_parties, num_classes]`` sample counts."""
    return torch.stack([torch.bincount(labels[p], minlength=num_classes) for p in parts])
