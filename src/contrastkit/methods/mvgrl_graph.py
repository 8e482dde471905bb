"""Graph-level MVGRL (Hassani & Khasahmadi, ICML 2020; ``docs/graphs.md``): ``L`` GCN layers per
view, shared node and graph MLP heads, JSD local-global loss in both cross-view directions,
sparse batching (no padding leak). ``official_padding=True`` computes the loss as the official
code does on its zero-padded batches (padded nodes stay in the loss, with its misaligned mask)
for parity runs. Its options and registration are ``methods/mvgrl.py``'s (``level: graph``).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from contrastkit.data.graphs import GraphSet
from contrastkit.functional.mutual_information import local_global_loss, official_padded_jsd_loss
from contrastkit.methods.graph_base import GraphMethod
from contrastkit.methods.mvgrl import MVGRLParams
from contrastkit.nn.graph import GCNLayer, GraphEncoder, ResidualMLP
from contrastkit.views.graph import dense_adjacency, diffusion_matrix, normalized_adjacency

__all__ = ["MVGRLGraph"]


def _edge_list(matrix: Tensor) -> tuple[Tensor, Tensor]:
    index = matrix.nonzero().t()
    return index, matrix[index[0], index[1]]


class MVGRLGraph(GraphMethod):
    """Graph-level MVGRL: options from ``MVGRLParams`` (level graph); ``hidden`` is the width of
    every layer and of the embeddings, the diffusion view is computed per graph, and

    - ``train_encoders``: False keeps both GCN encoders at their random initialisation and trains
            only the node and graph heads — what the official ``graph/train.py`` actually does
            (its GCN layers sit in a plain Python list, so ``model.parameters()`` never hands
            them to Adam); the paper's graph-level numbers come from that code.
    - ``official_padding``: compute the loss as the official code does on zero-padded batches
            (``official_padded_jsd_loss``: padded nodes stay in the loss, misaligned positive
            mask). A parity option for experiments [design]; JSD only, and exact only with frozen
            encoders (with trained GCN biases the official sum readout also leaks padded nodes,
            which this does not copy). The mask depends on the batch position, so it refuses
            to train on more than one process.

    Args:
        dataset: the graphs (features already built).
        params, **options: as ``MVGRL``.
    """

    params: MVGRLParams

    def __init__(self, dataset: GraphSet, params: MVGRLParams | None = None, **options: Any) -> None:
        p, base = MVGRLParams.resolve(params, options)
        super().__init__(patience=p.patience, **base)
        self.params = p
        self.graphs = [self.prepare(g, p.diffusion, p.alpha, p.heat_t) for g in dataset.graphs]
        self.encoder_adj = GraphEncoder(dataset.num_features, p.hidden, p.layers)
        self.encoder_diff = GraphEncoder(dataset.num_features, p.hidden, p.layers)
        self.node_head = ResidualMLP(p.hidden, p.hidden)
        self.graph_head = ResidualMLP(p.hidden * p.layers, p.hidden)
        if not p.train_encoders:
            self.encoder_adj.requires_grad_(False)
            self.encoder_diff.requires_grad_(False)
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
        if self.params.official_padding:
            loss = self._official_padding_loss(batch, batch_idx, na, nd, ga, gd)
        else:
            est, beta = self.params.estimator, self.params.beta
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
        if self.params.official_padding and self.trainer.world_size > 1:
            raise ValueError(
                "official_padding reproduces one process reading the batches in order (its mask depends on "
                f"the batch position); it is meaningless with {self.trainer.world_size} processes. "
                "Train on one device or set method.official_padding=false."
            )

    def on_train_epoch_end(self) -> None:
        loss = self.trainer.callback_metrics.get("train/loss")
        if loss is not None and self.stopper.update(float(loss), self):
            self.trainer.should_stop = True

    def describe(self) -> str:
        return f"{self.params.description()}, hidden {self.params.hidden}"

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
