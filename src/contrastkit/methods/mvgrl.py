"""MVGRL (Hassani & Khasahmadi, "Contrastive Multi-View Representation Learning on Graphs",
ICML 2020; ``mvgrl.md``): contrast node representations of one view with graph summaries of
the other, the views being the normalised adjacency and a diffusion (PPR or heat).

- ``MVGRL``: node level (§2-3). One GCN layer per view (separate weights), sigmoid-mean
  summaries, a shared bilinear discriminator, row-permuted features as negatives, JSD (or
  InfoNCE) loss, early stopping on the training loss with the best weights restored.
  Training on ``windows`` contiguous windows of ``window_size`` nodes (the official sampler) or,
  with ``window_size`` >= n, on the whole graph.
- ``MVGRLGraph``: graph level (§4). ``L`` GCN layers per view, shared node and graph MLP heads,
  JSD local-global loss in both cross-view directions, sparse batching (no padding leak).
  ``official_padding=True`` computes the loss as the official code does on its zero-padded
  batches (padded nodes stay in the loss, card pitfall 5's misaligned mask) for parity runs.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor

from contrastkit.data.graphs import GRAPH_SETS_TASK, NODE_GRAPHS_TASK, GraphSet, NodeGraph
from contrastkit.functional.mutual_information import local_global_loss, mi_loss, official_padded_jsd_loss
from contrastkit.methods.graph_base import GraphMethod
from contrastkit.nn.graph import BilinearDiscriminator, GCNLayer, GraphEncoder, ResidualMLP, propagate
from contrastkit.registry import MethodParams, register_method
from contrastkit.views.graph import (
    contiguous_windows,
    dense_adjacency,
    diffusion_matrix,
    normalized_adjacency,
    sparsify_eps,
    topk_per_column,
)

__all__ = ["MVGRL", "MVGRLGraph", "MVGRLParams"]


class MVGRLParams(MethodParams):
    """Recipe options of MVGRL (``method: {name: mvgrl, level: node | graph, ...}``).

    ``level`` picks the class and the task: ``node`` trains ``MVGRL`` on one graph
    (``node_graphs`` datasets), ``graph`` trains ``MVGRLGraph`` on a set of graphs
    (``graph_sets`` datasets). Options of the other level are ignored.
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

    @classmethod
    def smoke(cls, method: dict[str, Any]) -> None:
        method["patience"] = min(int(method.get("patience", 20)), 5)
        method["hidden"] = min(int(method.get("hidden", 512)), 64)

    def description(self) -> str:
        return f"{self.name} (level {self.level})"


NODE_ONLY = ("self_loops", "diffusion_topk", "eps_sparsify", "window_size", "windows")
GRAPH_ONLY = ("layers", "train_encoders", "official_padding")


def _task(params: MVGRLParams) -> str:
    return NODE_GRAPHS_TASK if params.level == "node" else GRAPH_SETS_TASK


def _build(params: MVGRLParams, **inputs: Any) -> GraphMethod:
    """``MVGRL(graph=...)`` at node level, ``MVGRLGraph(dataset=...)`` at graph level."""
    other = GRAPH_ONLY if params.level == "node" else NODE_ONLY
    options = params.model_dump(exclude={"name", "level", *other})
    cls = MVGRL if params.level == "node" else MVGRLGraph
    return cls(**inputs, **options)


@register_method("mvgrl", MVGRLParams, task=_task, build=_build, summary="MVGRL: node or graph level, two graph views")
class MVGRL(GraphMethod):
    """Node-level MVGRL on one graph (the graph's tensors live in non-persistent buffers).

    Args:
        graph: features, edges and split.
        hidden: embedding width (512).
        diffusion, alpha, heat_t: the diffusion view.
        self_loops: self-loop weight in the adjacency view (2 reproduces the official node
            pipeline's double self-loop, card pitfall 1).
        diffusion_topk: keep the top-k entries per column of the diffusion (None = exact dense).
        eps_sparsify: the official CiteSeer sparsification of the diffusion.
        window_size, windows: sub-graph sampler (official: 2000 nodes x 4).
        estimator: ``"jsd"`` (default) or ``"infonce"``; ``beta``: HCL hardness of negatives.
        lr, weight_decay, patience: Adam and early stopping on the training loss.
        seed: windows and feature permutations are drawn from (seed, step).
    """

    def __init__(
        self,
        graph: NodeGraph,
        *,
        hidden: int = 512,
        diffusion: str = "ppr",
        alpha: float = 0.2,
        heat_t: float = 5.0,
        self_loops: float = 1.0,
        diffusion_topk: int | None = None,
        eps_sparsify: bool = False,
        window_size: int = 2000,
        windows: int = 4,
        estimator: str = "jsd",
        beta: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        patience: int = 20,
        seed: int = 0,
    ) -> None:
        super().__init__(lr, weight_decay, patience, seed)
        self.x: Tensor
        self.a_index: Tensor
        self.a_weight: Tensor
        self.s: Tensor
        adj = dense_adjacency(graph.edge_index, graph.num_nodes)
        a_hat = normalized_adjacency(adj, self_loops)
        s = diffusion_matrix(adj, diffusion, alpha, heat_t, self_loops)
        if eps_sparsify:
            s = sparsify_eps(s, adj)
        if diffusion_topk:
            s = topk_per_column(s, diffusion_topk)
        a_index = a_hat.nonzero().t()
        x = graph.x
        if (x != 0).float().mean() < 0.1:  # bag-of-words features (Cora: 1.3% non-zero): sparse X W
            x = x.to_sparse()
        self.register_buffer("x", x, persistent=False)
        self.register_buffer("a_index", a_index, persistent=False)
        self.register_buffer("a_weight", a_hat[a_index[0], a_index[1]], persistent=False)
        self.register_buffer("s", s.to_sparse() if diffusion_topk else s, persistent=False)
        self.window_size = min(window_size, graph.num_nodes)
        self.windows = windows if self.window_size < graph.num_nodes else 1
        self.estimator = estimator
        self.beta = beta
        self.encoder_adj = GCNLayer(graph.x.shape[1], hidden)
        self.encoder_diff = GCNLayer(graph.x.shape[1], hidden)
        self.discriminator = BilinearDiscriminator(hidden)

    def _adjacency_window(self, start: int, stop: int) -> Tensor:
        rows, cols = self.a_index
        keep = (rows >= start) & (rows < stop) & (cols >= start) & (cols < stop)
        n = stop - start
        return torch.sparse_coo_tensor(
            self.a_index[:, keep] - start, self.a_weight[keep], (n, n), check_invariants=False
        ).coalesce()

    def _diffusion_window(self, start: int, stop: int) -> Tensor:
        if not self.s.is_sparse:
            return self.s[start:stop, start:stop]
        idx, val = self.s.indices(), self.s.values()
        keep = (idx[0] >= start) & (idx[0] < stop) & (idx[1] >= start) & (idx[1] < stop)
        n = stop - start
        return torch.sparse_coo_tensor(idx[:, keep] - start, val[keep], (n, n), check_invariants=False).coalesce()

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
            ha, ha_neg = self._view(self.encoder_adj, self._adjacency_window(start, stop), support_a[start:stop], perm)
            hd, hd_neg = self._view(self.encoder_diff, self._diffusion_window(start, stop), support_d[start:stop], perm)
            ca, cd = torch.sigmoid(ha.mean(0)), torch.sigmoid(hd.mean(0))
            pos += [self.discriminator(hd, ca), self.discriminator(ha, cd)]
            neg += [self.discriminator(hd_neg, ca), self.discriminator(ha_neg, cd)]
        pos_t, neg_t = torch.cat(pos), torch.cat(neg)
        if self.estimator == "infonce" or self.beta > 0:
            loss = mi_loss(pos_t, neg_t.expand(len(pos_t), -1), estimator=self.estimator, beta=self.beta)
        else:
            loss = mi_loss(pos_t, neg_t)
        self.after_step(loss)
        return loss

    @torch.no_grad()
    def embed(self) -> Tensor:
        """``[n, hidden]`` node embeddings ``g_a(X, A^) + g_d(X, S)`` on the full graph."""
        a = self._adjacency_window(0, self.x.shape[0])
        return (self.encoder_adj(self.x, a) + self.encoder_diff(self.x, self.s)).detach()


def _edge_list(matrix: Tensor) -> tuple[Tensor, Tensor]:
    index = matrix.nonzero().t()
    return index, matrix[index[0], index[1]]


class MVGRLGraph(GraphMethod):
    """Graph-level MVGRL.

    Args:
        dataset: the graphs (features already built).
        hidden: width of every layer and of the embeddings (512).
        layers: GCN layers per view.
        diffusion, alpha, heat_t: the diffusion view, computed per graph.
        estimator, beta: local-global estimator and HCL hardness.
        train_encoders: False keeps both GCN encoders at their random initialisation and trains
            only the node and graph heads — what the official ``graph/train.py`` actually does
            (its GCN layers sit in a plain Python list, so ``model.parameters()`` never hands
            them to Adam); the paper's graph-level numbers come from that code.
        official_padding: compute the loss as the official code does on zero-padded batches
            (``official_padded_jsd_loss``: padded nodes stay in the loss, misaligned positive
            mask). A parity option for experiments [design]; JSD only, and exact only with frozen
            encoders (with trained GCN biases the official sum readout also leaks padded nodes,
            which this does not copy). The mask depends on the batch position, so it refuses
            to train on more than one process.
        lr, weight_decay, patience, seed: as ``MVGRL``.
    """

    def __init__(
        self,
        dataset: GraphSet,
        *,
        hidden: int = 512,
        layers: int = 4,
        diffusion: str = "ppr",
        alpha: float = 0.2,
        heat_t: float = 5.0,
        estimator: str = "jsd",
        beta: float = 0.0,
        train_encoders: bool = True,
        official_padding: bool = False,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        patience: int = 20,
        seed: int = 0,
    ) -> None:
        super().__init__(lr, weight_decay, patience, seed)
        self.graphs = [self.prepare(g, diffusion, alpha, heat_t) for g in dataset.graphs]
        self.estimator = estimator
        self.beta = beta
        self.encoder_adj = GraphEncoder(dataset.num_features, hidden, layers)
        self.encoder_diff = GraphEncoder(dataset.num_features, hidden, layers)
        self.node_head = ResidualMLP(hidden, hidden)
        self.graph_head = ResidualMLP(hidden * layers, hidden)
        if not train_encoders:
            self.encoder_adj.requires_grad_(False)
            self.encoder_diff.requires_grad_(False)
        if official_padding and (estimator != "jsd" or beta != 0):
            raise ValueError("official_padding reproduces the official JSD loss; use estimator='jsd' and beta=0")
        self.official_padding = official_padding
        self.node_counts = torch.tensor([g.num_nodes for g in self.graphs])
        self.max_nodes = int(self.node_counts.max())  # the official code pads every graph to this

    @staticmethod
    def prepare(graph: Any, diffusion: str, alpha: float, heat_t: float) -> Any:
        """Attach both views as edge lists (``adj_index``/``adj_weight``, ``diff_index``/``diff_weight``)."""
        g = copy.copy(graph)
        adj = dense_adjacency(graph.edge_index, graph.num_nodes)
        g.adj_index, g.adj_weight = _edge_list(normalized_adjacency(adj, 1.0))
        g.diff_index, g.diff_weight = _edge_list(diffusion_matrix(adj, diffusion, alpha, heat_t))
        return g

    def _encode(self, batch: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        n, count = batch.num_nodes, batch.num_graphs
        ha, ga = self.encoder_adj(batch.x, (batch.adj_index, batch.adj_weight, n), batch.batch, count)
        hd, gd = self.encoder_diff(batch.x, (batch.diff_index, batch.diff_weight, n), batch.batch, count)
        return self.node_head(ha), self.node_head(hd), self.graph_head(ga), self.graph_head(gd)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        na, nd, ga, gd = self._encode(batch)
        if self.official_padding:
            loss = self._official_padding_loss(batch, batch_idx, na, nd, ga, gd)
        else:
            est, beta = self.estimator, self.beta
            loss = local_global_loss(na, gd, batch.batch, estimator=est, beta=beta) + local_global_loss(
                nd, ga, batch.batch, estimator=est, beta=beta
            )
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=batch.num_graphs)
        return loss

    def _official_padding_loss(
        self, batch: Any, batch_idx: int, na: Tensor, nd: Tensor, ga: Tensor, gd: Tensor
    ) -> Tensor:
        # The official mask takes the counts at the batch's position in the unshuffled dataset,
        # ``num_nodes[idx: idx + batch_size]`` with ``idx = batch_idx * batch_size``.
        start = batch_idx * self._loader_batch_size(batch)
        mask_counts = self.node_counts[start : start + batch.num_graphs].to(na.device)

        def pad_node(encoder: GraphEncoder) -> Tensor:
            last: GCNLayer = encoder.layers[-1]  # type: ignore[assignment]
            return self.node_head(last.act(last.bias[None]))[0]

        return official_padded_jsd_loss(
            na, gd, batch.batch, pad_node(self.encoder_adj), self.max_nodes, mask_counts
        ) + official_padded_jsd_loss(nd, ga, batch.batch, pad_node(self.encoder_diff), self.max_nodes, mask_counts)

    def _loader_batch_size(self, batch: Any) -> int:
        loader = self._trainer.train_dataloader if self._trainer is not None else None
        size = getattr(loader, "batch_size", None)
        return int(size) if size else batch.num_graphs

    def on_fit_start(self) -> None:
        if self.official_padding and self.trainer.world_size > 1:
            raise ValueError(
                "official_padding reproduces one process reading the batches in order (its mask depends on "
                f"the batch position); it is meaningless with {self.trainer.world_size} processes. "
                "Train on one device or set method.official_padding=false."
            )

    def on_train_epoch_end(self) -> None:
        loss = self.trainer.callback_metrics.get("train/loss")
        if loss is not None and self.stopper.update(float(loss), self):
            self.trainer.should_stop = True

    @torch.no_grad()
    def embed(self, batch_size: int = 256) -> Tensor:
        """``[G, hidden]`` graph embeddings ``h_g,a + h_g,d`` of every graph."""
        from torch_geometric.loader import DataLoader

        was = self.training
        self.eval()
        out = []
        for batch in DataLoader(self.graphs, batch_size=batch_size, shuffle=False):
            _, _, ga, gd = self._encode(batch.to(self.device))
            out.append(ga + gd)
        self.train(was)
        return torch.cat(out)
