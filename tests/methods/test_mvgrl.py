"""MVGRL node and graph level: discriminator, corruption, training, embeddings."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from contrastkit.data.graphs import sbm_graph, sbm_graph_set
from contrastkit.methods import MVGRL, MVGRLGraph
from contrastkit.nn.graph import BilinearDiscriminator


def test_matmul_discriminator_equals_nn_bilinear():
    disc = BilinearDiscriminator(8)
    ref = nn.Bilinear(8, 8, 1)
    with torch.no_grad():
        ref.weight.copy_(disc.weight[None])
        ref.bias.copy_(disc.bias)
    h, c = torch.randn(5, 8), torch.randn(8)
    torch.testing.assert_close(disc(h, c), ref(h, c.expand(5, 8)).squeeze(-1))


def _train(model, steps):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.after_step = lambda loss: None
    losses = []
    for step in range(steps):
        loss = model.training_step(None, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_node_level_trains_and_embeds_the_full_graph():
    torch.manual_seed(0)
    graph = sbm_graph(num_nodes=300, num_classes=3, seed=0)
    model = MVGRL(graph, hidden=32, window_size=200, windows=2)
    losses = _train(model, 30)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    emb = model.embed()
    assert emb.shape == (300, 32) and not emb.requires_grad


def test_full_graph_mode_when_the_window_covers_the_graph():
    graph = sbm_graph(num_nodes=120, num_classes=2, seed=0)
    model = MVGRL(graph, hidden=16, window_size=5000)
    assert model.window_size == 120 and model.windows == 1
    assert torch.isfinite(model.training_step(None, 0))


def test_topk_diffusion_is_sparse_and_trains():
    model = MVGRL(sbm_graph(num_nodes=150, seed=0), hidden=16, diffusion_topk=8, window_size=100)
    assert model.s.is_sparse
    assert torch.isfinite(model.training_step(None, 0))


def test_graph_level_trains_and_is_invariant_to_node_relabelling():
    torch.manual_seed(0)
    data = sbm_graph_set(num_graphs=24, seed=0)
    model = MVGRLGraph(data, hidden=16, layers=2)
    from torch_geometric.loader import DataLoader

    batch = next(iter(DataLoader(model.graphs, batch_size=24)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = None
    for _ in range(15):
        model.log = lambda *a, **k: None
        loss = model.training_step(batch, 0)
        first = first if first is not None else float(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < first
    emb = model.embed()
    assert emb.shape == (24, 16)
    g = data.graphs[0]
    perm = torch.randperm(g.num_nodes)
    inverse = torch.argsort(perm)
    relabelled = g.clone()
    relabelled.x = g.x[perm]
    relabelled.edge_index = inverse[g.edge_index]
    model.graphs = [MVGRLGraph.prepare(relabelled, "ppr", 0.2, 5.0), model.graphs[0]]
    pair = model.embed()
    torch.testing.assert_close(pair[0], pair[1], rtol=1e-4, atol=1e-4)


def _train_steps(model: MVGRLGraph, batch, opt, steps: int = 15) -> list[float]:  # type: ignore[no-untyped-def]
    """Losses of ``steps`` optimiser steps on one batch."""
    model.log = lambda *a, **k: None  # type: ignore[method-assign]
    losses = []
    for _ in range(steps):
        loss = model.training_step(batch, 0)
        losses.append(float(loss))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return losses


def test_graph_level_official_mode_trains_only_the_heads():
    """train_encoders=False reproduces the official graph code: GCN layers stay at their init,
    the heads learn, and the loss still falls."""
    torch.manual_seed(0)
    data = sbm_graph_set(num_graphs=24, seed=0)
    model = MVGRLGraph(data, hidden=16, layers=2, train_encoders=False)
    from torch_geometric.loader import DataLoader

    batch = next(iter(DataLoader(model.graphs, batch_size=24)))
    opt = model.configure_optimizers()
    encoders = [p.detach().clone() for p in [*model.encoder_adj.parameters(), *model.encoder_diff.parameters()]]
    heads = [p.detach().clone() for p in model.graph_head.parameters()]
    losses = _train_steps(model, batch, opt)
    assert losses[-1] < losses[0]
    now = [*model.encoder_adj.parameters(), *model.encoder_diff.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(encoders, now))
    assert not all(torch.equal(a, b) for a, b in zip(heads, model.graph_head.parameters()))


def _official_local_global_loss(l_enc, g_enc, batch, mask):  # type: ignore[no-untyped-def]
    """The official ``local_global_loss_`` (graph/cortex_DIM + graph/train.py), transcribed loop for
    loop, JSD measure, on dense padded rows ``l_enc [B * max_nodes, D]``."""
    import math

    num_graphs, num_nodes = g_enc.shape[0], l_enc.shape[0]
    max_nodes = num_nodes // num_graphs
    pos_mask = torch.zeros((num_nodes, num_graphs))
    neg_mask = torch.ones((num_nodes, num_graphs))
    msk = torch.ones((num_nodes, num_graphs))
    for nodeidx, graphidx in enumerate(batch):
        pos_mask[nodeidx][graphidx] = 1.0
        neg_mask[nodeidx][graphidx] = 0.0
    for idx, m in enumerate(mask):
        msk[idx * max_nodes + m : idx * max_nodes + max_nodes, idx] = 0.0
    res = torch.mm(l_enc, g_enc.t()) * msk
    log_2 = math.log(2.0)
    e_pos = (log_2 - torch.nn.functional.softplus(-(res * pos_mask))).sum() / num_nodes
    q = res * neg_mask
    e_neg = (torch.nn.functional.softplus(-q) + q - log_2).sum() / (num_nodes * (num_graphs - 1))
    return e_neg - e_pos


def test_official_padded_loss_matches_the_official_dense_computation():
    from contrastkit.functional.mutual_information import official_padded_jsd_loss

    torch.manual_seed(0)
    sizes, max_nodes, dim = [3, 5, 2, 4], 6, 8
    nodes = torch.randn(sum(sizes), dim)
    graphs = torch.randn(len(sizes), dim)
    pad_node = torch.randn(dim)
    node_graph = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    mask_counts = torch.tensor([5, 2, 6, 1])  # another batch's sizes: some too large, some too small
    dense = pad_node.repeat(len(sizes) * max_nodes, 1)
    offset = 0
    for j, n in enumerate(sizes):
        dense[j * max_nodes : j * max_nodes + n] = nodes[offset : offset + n]
        offset += n
    rows_graph = torch.arange(len(sizes)).repeat_interleave(max_nodes)
    expected = _official_local_global_loss(dense, graphs, rows_graph, mask_counts.tolist())
    got = official_padded_jsd_loss(nodes, graphs, node_graph, pad_node, max_nodes, mask_counts)
    torch.testing.assert_close(got, expected)


def test_official_padding_mode_trains():
    torch.manual_seed(0)
    data = sbm_graph_set(num_graphs=24, seed=0)
    model = MVGRLGraph(data, hidden=16, layers=2, train_encoders=False, official_padding=True)
    from torch_geometric.loader import DataLoader

    batch = next(iter(DataLoader(model.graphs, batch_size=12)))
    opt = model.configure_optimizers()
    losses = _train_steps(model, batch, opt)
    assert losses[-1] < losses[0]


def test_official_padding_mask_follows_the_batch_position_in_a_real_fit(monkeypatch):
    """Under a Trainer the mask counts are ``num_nodes[idx: idx + batch_size]`` with
    ``idx = batch_idx * batch_size``, the short last batch included (stateless, so a resume
    cannot shift it)."""
    import lightning as L

    from contrastkit.methods import mvgrl_graph as mvgrl
    from contrastkit.pipeline.tasks.graphs import GraphBatches as _GraphBatches

    data = sbm_graph_set(num_graphs=24, seed=0)
    model = MVGRLGraph(data, hidden=8, layers=1, train_encoders=False, official_padding=True)
    seen: list[list[int]] = []
    real = mvgrl.official_padded_jsd_loss

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(args[5].tolist())
        return real(*args, **kwargs)

    monkeypatch.setattr(mvgrl, "official_padded_jsd_loss", recording)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=_GraphBatches(model.graphs, batch_size=10, seed=3))
    counts = model.node_counts.tolist()
    per_batch = seen[::2]  # two directions per step, same mask
    assert per_batch == [counts[0:10], counts[10:20], counts[20:24]]
    assert seen[1::2] == per_batch


def test_official_padding_refuses_several_processes():
    from types import SimpleNamespace

    data = sbm_graph_set(num_graphs=8, seed=0)
    model = MVGRLGraph(data, hidden=8, layers=1, train_encoders=False, official_padding=True)
    model._trainer = SimpleNamespace(world_size=2)  # type: ignore[assignment]
    with pytest.raises(ValueError, match="one device"):
        model.on_fit_start()
    model.params = model.params.model_copy(update={"official_padding": False})
    model.on_fit_start()
