"""Mutual-information estimators over discriminator scores (DIM / InfoGraph / MVGRL).

Given scores ``D(h, c)`` of positive pairs and of negative pairs:

- ``jsd``: the Jensen-Shannon estimator ``I = E_pos[-softplus(-D)] - E_neg[softplus(D)]`` —
  MVGRL's default (``docs/methods/mvgrl.md``). The loss ``-I`` equals ``2 * BCE_mean - 2 log 2`` for equal
  positive and negative counts (the BCE-with-logits form of the official node code), i.e.
  ``BCE_mean = log 2 - I_JSD / 2`` where ``I_JSD`` includes the ``2 log 2`` offsets.
- ``infonce``: per positive row, ``-log(e^{D+} / (e^{D+} + sum_j e^{D-_j}))`` in log space.

``beta`` reweights negatives toward the hardest ones as HCL does for images (Robinson et al.,
ICLR 2021): negative ``j`` of row ``i`` gets weight ``N * softmax_j(beta * D-_ij)`` (mean 1;
``beta = 0`` gives uniform weights). [design] This follows the paper's sign — harder (larger
score) negatives weigh more; the official graph code ``JSD_hard`` uses the opposite sign
(HCL issue #11, ``docs/methods/hcl.md``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "jsd_mutual_information",
    "jsd_negative_terms",
    "jsd_positive_terms",
    "local_global_loss",
    "mi_loss",
    "official_padded_jsd_loss",
]


def jsd_positive_terms(pos: Tensor) -> Tensor:
    """Per-pair JSD terms of positive scores, ``log 2 - softplus(-D)`` (0 at ``D = 0``)."""
    return math.log(2.0) - F.softplus(-pos)


def jsd_negative_terms(neg: Tensor) -> Tensor:
    """Per-pair JSD terms of negative scores, ``softplus(D) - log 2`` (0 at ``D = 0``)."""
    return F.softplus(neg) - math.log(2.0)


def _negative_weights(neg: Tensor, mask: Tensor | None, beta: float) -> Tensor:
    """Importance weights (mean 1 over each row's valid negatives), as HCL's ``imp / imp.mean()``."""
    valid = torch.ones_like(neg, dtype=torch.bool) if mask is None else mask
    if beta == 0:
        return valid.to(neg.dtype)
    logits = (beta * neg).masked_fill(~valid, float("-inf"))
    count = valid.sum(dim=-1, keepdim=True).clamp_min(1)
    return torch.softmax(logits, dim=-1).nan_to_num(0.0) * count


def jsd_mutual_information(pos: Tensor, neg: Tensor, neg_mask: Tensor | None = None, beta: float = 0.0) -> Tensor:
    """JSD estimate ``E_pos[log 2 - softplus(-D)] - E_neg[softplus(D) - log 2]`` (a scalar).

    Args:
        pos: scores of positive pairs, any shape.
        neg: scores of negative pairs; ``[..., N]`` rows when ``beta > 0`` or ``neg_mask`` is given.
        neg_mask: bool like ``neg``; False entries are not negatives (padding, own graph).
        beta: HCL-style hardness of the negative weighting (0 = plain JSD).
    """
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    e_pos = jsd_positive_terms(pos).mean()
    weights = _negative_weights(neg, neg_mask, beta)
    e_neg = (jsd_negative_terms(neg) * weights).sum() / weights.sum().clamp_min(1e-12)
    return e_pos - e_neg


def mi_loss(
    pos: Tensor, neg: Tensor, *, estimator: str = "jsd", neg_mask: Tensor | None = None, beta: float = 0.0
) -> Tensor:
    """Loss (to minimise) of a mutual-information estimator.

    Args:
        pos: ``[M]`` positive scores (``infonce``: one per row of ``neg``).
        neg: ``[M, N]`` negative scores (``jsd`` accepts any shape when unmasked and ``beta = 0``).
        estimator: ``"jsd"`` (default) or ``"infonce"``.
        neg_mask: bool ``[M, N]``, True where an entry is a valid negative.
        beta: HCL hardness weighting of negatives.
    """
    if estimator == "jsd":
        return -jsd_mutual_information(pos, neg, neg_mask, beta)
    if estimator == "infonce":
        if neg.dim() != 2 or pos.shape != neg.shape[:1]:
            raise ValueError(f"infonce needs pos [M] and neg [M, N], got {tuple(pos.shape)} and {tuple(neg.shape)}")
        valid = torch.ones_like(neg, dtype=torch.bool) if neg_mask is None else neg_mask
        weights = _negative_weights(neg, neg_mask, beta)
        terms = torch.where(valid, neg + torch.log(weights.clamp_min(1e-30)), torch.full_like(neg, float("-inf")))
        return (torch.logaddexp(pos, torch.logsumexp(terms, dim=1)) - pos).mean()
    raise ValueError(f"estimator must be 'jsd' or 'infonce', got {estimator!r}")


def local_global_loss(
    nodes: Tensor, graphs: Tensor, node_graph: Tensor, *, estimator: str = "jsd", beta: float = 0.0
) -> Tensor:
    """InfoGraph/MVGRL local-global objective with a dot-product discriminator.

    Each node is positive with its own graph's embedding and negative with every other graph
    in the batch.

    Args:
        nodes: ``[n, D]`` node embeddings of the batch.
        graphs: ``[G, D]`` graph embeddings.
        node_graph: ``[n]`` graph index of each node.
        estimator, beta: see ``mi_loss``.
    """
    if nodes.shape[1] != graphs.shape[1]:
        raise ValueError(f"nodes dim {nodes.shape[1]} != graphs dim {graphs.shape[1]}")
    scores = nodes @ graphs.t()  # [n, G]
    own = F.one_hot(node_graph, graphs.shape[0]).bool()
    pos = scores[own]
    if estimator == "jsd" and beta == 0:
        return -jsd_mutual_information(pos, scores[~own])
    return mi_loss(pos, scores, estimator=estimator, neg_mask=~own, beta=beta)


def official_padded_jsd_loss(
    nodes: Tensor, graphs: Tensor, node_graph: Tensor, pad_node: Tensor, max_nodes: int, mask_counts: Tensor
) -> Tensor:
    """The JSD local-global loss exactly as the official ``graph/train.py`` computes it on its
    zero-padded dense batches (``local_global_loss_``), here from a sparse batch.

    The official batches pad every graph to the dataset's ``max_nodes``. Padded nodes get the same
    node embedding ``pad_node`` (``[D]``: the node head applied to ``act(b_L)``, the last GCN
    layer's output on a node with no neighbours) and stay in the loss: each is a negative of every
    other graph in the batch, the denominators count them, and the positive mask keeps the first
    ``mask_counts[j]`` rows of graph ``j`` — where ``mask_counts`` are node counts of the graphs at
    the batch's positions in the *unshuffled* dataset (as the official MVGRL code does), so real nodes beyond it
    drop out of the positives and padded nodes below it join them.

    Args:
        nodes: ``[n, D]`` real node embeddings, graphs contiguous as in a PyG batch.
        graphs: ``[B, D]`` graph embeddings of the other view.
        node_graph: ``[n]`` graph index of each node.
        pad_node: ``[D]`` embedding of a padded node.
        max_nodes: padded size of every graph.
        mask_counts: ``[B]`` the official code's positive-mask counts.
    """
    count = graphs.shape[0]
    sizes = torch.bincount(node_graph, minlength=count)
    starts = torch.cumsum(sizes, 0) - sizes
    position = torch.arange(len(node_graph), device=nodes.device) - starts[node_graph]
    scores = nodes @ graphs.t()  # [n, B]
    own = F.one_hot(node_graph, count).bool()
    pad_scores = graphs @ pad_node  # [B]: a padded row against each graph
    pos_sum = jsd_positive_terms(scores[own])[position < mask_counts[node_graph]].sum()
    neg_sum = jsd_negative_terms(scores[~own]).sum()
    padded = max_nodes - sizes
    padded_positives = (mask_counts.clamp(max=max_nodes) - sizes).clamp(min=0)
    pad_neg = jsd_negative_terms(pad_scores)
    pos_sum = pos_sum + (padded_positives * jsd_positive_terms(pad_scores)).sum()
    neg_sum = neg_sum + (padded * (pad_neg.sum() - pad_neg)).sum()
    rows = count * max_nodes
    return neg_sum / (rows * max(count - 1, 1)) - pos_sum / rows
