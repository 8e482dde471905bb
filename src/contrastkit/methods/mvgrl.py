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
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrastkit.data.graphs import GraphSet, NodeGraph
from contrastkit.functional.mutual_information import (
    jsd_negative_terms,
    jsd_positive_terms,
    local_global_loss,
    mi_loss,
)
from contrastkit.nn.graph import BilinearDiscriminator, GCNLayer, GraphEncoder, ResidualMLP, propagate
from contrastkit.views.graph import (
    contiguous_windows,
    dense_adjacency,
    heat_diffusion,
    normalized_adjacency,
    ppr_diffusion,
    sparsify_eps,
    topk_per_column,
)

__all__ = ["MVGRL", "MVGRLGraph", "diffusion_matrix", "official_padded_jsd_loss"]


def diffusion_matrix(
    adj: Tensor, kind: str = "ppr", alpha: float = 0.2, heat_t: float = 5.0, self_loops: float = 1.0
) -> Tensor:
    """The dense diffusion view of ``adj``: ``ppr`` or ``heat`` (``mvgrl.md`` §1)."""
    if kind == "ppr":
        return ppr_diffusion(adj, alpha, self_loops)
    if kind == "heat":
        return heat_diffusion(adj, heat_t)
    raise ValueError(f"diffusion must be 'ppr' or 'heat', got {kind!r}")


class _EarlyStopping:
    """Best-loss weights and patience, carried in checkpoints (card pitfall 7)."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best = float("inf")
        self.wait = 0
        self.state: dict[str, Tensor] | None = None

    def update(self, loss: float, module: nn.Module) -> bool:
        """Record ``loss``; True when training should stop."""
        if loss < self.best:
            self.best, self.wait = loss, 0
            self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        else:
            self.wait += 1
        return self.wait >= self.patience


class _GraphMethod(L.LightningModule):
    def __init__(self, lr: float, weight_decay: float, patience: int, seed: int) -> None:
        super().__init__()
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.stopper = _EarlyStopping(patience)

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + self.global_step)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            [p for p in self.parameters() if p.requires_grad], lr=self.lr, weight_decay=self.weight_decay
        )

    def after_step(self, loss: Tensor) -> None:
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        if self.stopper.update(float(loss.detach()), self):
            self.trainer.should_stop = True

    def on_train_end(self) -> None:
        if self.stopper.state is not None:
            self.load_state_dict(self.stopper.state)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["early_stopping"] = {
            "best": self.stopper.best,
            "wait": self.stopper.wait,
            "state": self.stopper.state,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("early_stopping")
        if saved:
            self.stopper.best, self.stopper.wait, self.stopper.state = saved["best"], saved["wait"], saved["state"]


class MVGRL(_GraphMethod):
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
        return torch.sparse_coo_tensor(self.a_index[:, keep] - start, self.a_weight[keep], (n, n)).coalesce()

    def _diffusion_window(self, start: int, stop: int) -> Tensor:
        if not self.s.is_sparse:
            return self.s[start:stop, start:stop]
        idx, val = self.s.indices(), self.s.values()
        keep = (idx[0] >= start) & (idx[0] < stop) & (idx[1] >= start) & (idx[1] < stop)
        n = stop - start
        return torch.sparse_coo_tensor(idx[:, keep] - start, val[keep], (n, n)).coalesce()

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
    the batch's positions in the *unshuffled* dataset (card pitfall 5), so real nodes beyond it
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


def _edge_list(matrix: Tensor) -> tuple[Tensor, Tensor]:
    index = matrix.nonzero().t()
    return index, matrix[index[0], index[1]]


class MVGRLGraph(_GraphMethod):
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
