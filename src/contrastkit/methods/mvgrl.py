"""MVGRL (Hassani & Khasahmadi, "Contrastive Multi-View Representation Learning on Graphs",
ICML 2020; ``docs/graphs.md``): contrast node representations of one view with graph summaries
of the other, the views being the normalised adjacency and a diffusion (PPR or heat).

- ``MVGRL`` (here): node level. One GCN layer per view (separate weights), sigmoid-mean
  summaries, a shared bilinear discriminator, row-permuted features as negatives, JSD (or
  InfoNCE) loss, early stopping on the training loss with the best weights restored.
  Training on ``windows`` contiguous windows of ``window_size`` nodes (the official sampler) or,
  with ``window_size`` >= n, on the whole graph.
- ``MVGRLGraph`` (``methods/mvgrl_graph.py``): graph level, on a set of graphs.

One params class and one registration serve both; ``level`` picks the class and the task.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor

from contrastkit.data.graphs import GRAPH_SETS_TASK, NODE_GRAPHS_TASK, NodeGraph
from contrastkit.functional.mutual_information import mi_loss
from contrastkit.methods.graph_base import GraphMethod
from contrastkit.nn.graph import BilinearDiscriminator, GCNLayer, propagate
from contrastkit.registry import MethodParams, register_method
from contrastkit.views.graph import (
    contiguous_windows,
    crop_window,
    dense_adjacency,
    diffusion_matrix,
    normalized_adjacency,
    sparsify_eps,
    topk_per_column,
)

__all__ = ["MVGRL", "MVGRLParams"]


class MVGRLParams(MethodParams):
    """Options of MVGRL (``method: {name: mvgrl, level: node | graph, ...}``).

    ``level`` picks the class and the task: ``node`` trains ``MVGRL`` on one graph
    (``node_graphs`` datasets), ``graph`` trains ``MVGRLGraph`` on a set of graphs
    (``graph_sets`` datasets). Options of the other level are ignored.

    Attributes:
        hidden: embedding width (512).
        layers: GCN layers per view (graph level).
        diffusion, alpha, heat_t: the diffusion view.
        self_loops: self-loop weight in the adjacency view (node level; 2 reproduces the official
            node pipeline's double self-loop).
        diffusion_topk: keep the top-k entries per column of the diffusion (None = exact dense).
        eps_sparsify: the official CiteSeer sparsification of the diffusion.
        window_size, windows: node-level sub-graph sampler (official: 2000 nodes x 4).
        estimator: ``"jsd"`` (default) or ``"infonce"``; ``beta``: HCL hardness of negatives.
        patience: epochs without a lower training loss before stopping.
        train_encoders, official_padding: graph level, see ``MVGRLGraph``.
    """

    name: Literal["mvgrl"] = "mvgrl"
    level: Literal["node", "graph"] = "node"
    hidden: int = Field(512, gt=0)
    layers: int = Field(4, ge=1)
    diffusion: Literal["ppr", "heat"] = "ppr"
    alpha: float = Field(0.2, gt=0, le=1)
    heat_t: float = Field(5.0, ge=0)
    self_loops: float = Field(1.0, ge=0)
    diffusion_topk: int | None = Field(None, gt=0)
    eps_sparsify: bool = False
    window_size: int = Field(2000, gt=0)
    windows: int = Field(4, gt=0)
    estimator: Literal["jsd", "infonce"] = "jsd"
    beta: float = Field(0.0, ge=0)
    patience: int = Field(20, gt=0)
    train_encoders: bool = True
    official_padding: bool = False

    @model_validator(mode="after")
    def _padding_is_jsd(self) -> MVGRLParams:
        if self.official_padding and (self.estimator != "jsd" or self.beta != 0):
            raise ValueError("official_padding reproduces the official JSD loss; use estimator='jsd' and beta=0")
        return self

    @classmethod
    def smoke(cls, method: dict[str, Any]) -> None:
        method["patience"] = min(int(method.get("patience", 20)), 5)
        method["hidden"] = min(int(method.get("hidden", 512)), 64)

    def description(self) -> str:
        return f"{self.name} (level {self.level})"


def _task(params: MVGRLParams) -> str:
    return NODE_GRAPHS_TASK if params.level == "node" else GRAPH_SETS_TASK


def _build(params: MVGRLParams, **inputs: Any) -> GraphMethod:
    """``MVGRL(graph=...)`` at node level, ``MVGRLGraph(dataset=...)`` at graph level."""
    from contrastkit.methods.mvgrl_graph import MVGRLGraph

    cls = MVGRL if params.level == "node" else MVGRLGraph
    return cls(params=params, **inputs)


@register_method("mvgrl", MVGRLParams, task=_task, build=_build, summary="MVGRL: node or graph level, two graph views")
class MVGRL(GraphMethod):
    """Node-level MVGRL on one graph (the graph's tensors live in non-persistent buffers).

    Args:
        graph: features, edges and split.
        params: the options (``MVGRLParams``, level node); keywords named like its fields
            override them.
        **base: ``GraphMethod`` arguments (``lr``, ``weight_decay``, ``seed``: windows and
            feature permutations are drawn from (seed, step)).
    """

    params: MVGRLParams

    def __init__(self, graph: NodeGraph, params: MVGRLParams | None = None, **options: Any) -> None:
        p, base = MVGRLParams.resolve(params, options)
        super().__init__(patience=p.patience, **base)
        self.params = p
        self.x: Tensor
        self.a: Tensor
        self.s: Tensor
        adj = dense_adjacency(graph.edge_index, graph.num_nodes)
        a_hat = normalized_adjacency(adj, p.self_loops)
        s = diffusion_matrix(adj, p.diffusion, p.alpha, p.heat_t, p.self_loops)
        if p.eps_sparsify:
            s = sparsify_eps(s, adj)
        if p.diffusion_topk:
            s = topk_per_column(s, p.diffusion_topk)
        x = graph.x
        if (x != 0).float().mean() < 0.1:  # bag-of-words features (Cora: 1.3% non-zero): sparse X W
            x = x.to_sparse()
        self.register_buffer("x", x, persistent=False)
        self.register_buffer("a", a_hat.to_sparse().coalesce(), persistent=False)
        self.register_buffer("s", s.to_sparse() if p.diffusion_topk else s, persistent=False)
        self.window_size = min(p.window_size, graph.num_nodes)
        self.windows = p.windows if self.window_size < graph.num_nodes else 1
        self.encoder_adj = GCNLayer(graph.x.shape[1], p.hidden)
        self.encoder_diff = GCNLayer(graph.x.shape[1], p.hidden)
        self.discriminator = BilinearDiscriminator(p.hidden)

    @staticmethod
    def _view(
        layer: GCNLayer, matrix: Tensor | tuple[Tensor, Tensor, int], support: Tensor, perm: Tensor
    ) -> tuple[Tensor, Tensor]:
        both = propagate(matrix, torch.cat([support, support[perm]], dim=1))
        pos, neg = both.split(support.shape[1], dim=1)
        return layer.act(pos + layer.bias), layer.act(neg + layer.bias)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        g = self.generator()
        n = self.window_size
        spans = (
            contiguous_windows(self.x.shape[0], n, self.windows, g)
            if self.windows > 1 or n < self.x.shape[0]
            else [(0, n)]
        )
        perm = torch.randperm(n, generator=g)
        support_a = self.encoder_adj.transform(self.x)
        support_d = self.encoder_diff.transform(self.x)
        pos, neg = [], []
        for start, stop in spans:
            ha, ha_neg = self._view(self.encoder_adj, crop_window(self.a, start, stop), support_a[start:stop], perm)
            hd, hd_neg = self._view(self.encoder_diff, crop_window(self.s, start, stop), support_d[start:stop], perm)
            ca, cd = torch.sigmoid(ha.mean(0)), torch.sigmoid(hd.mean(0))
            pos += [self.discriminator(hd, ca), self.discriminator(ha, cd)]
            neg += [self.discriminator(hd_neg, ca), self.discriminator(ha_neg, cd)]
        pos_t, neg_t = torch.cat(pos), torch.cat(neg)
        estimator, beta = self.params.estimator, self.params.beta
        if estimator == "infonce" or beta > 0:
            loss = mi_loss(pos_t, neg_t.expand(len(pos_t), -1), estimator=estimator, beta=beta)
        else:
            loss = mi_loss(pos_t, neg_t)
        self.after_step(loss)
        return loss

    def describe(self) -> str:
        return f"{self.params.description()}, hidden {self.params.hidden}"

    @torch.no_grad()
    def embed(self) -> Tensor:
        """``[n, hidden]`` node embeddings ``g_a(X, A^) + g_d(X, S)`` on the full graph."""
        return (
            self.encoder_adj(self.x, crop_window(self.a, 0, self.x.shape[0])) + self.encoder_diff(self.x, self.s)
        ).detach()
