"""MVGRL node and graph level: discriminator, corruption, training, embeddings."""

from __future__ import annotations

import torch
from torch import nn

from contrastkit.data.graphs import sbm_graph, sbm_graph_set
from contrastkit.methods.mvgrl import MVGRL, MVGRLGraph
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
    model.log = lambda *a, **k: None
    losses = []
    for _ in range(15):
        loss = model.training_step(batch, 0)
        losses.append(float(loss))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < losses[0]
    now = [*model.encoder_adj.parameters(), *model.encoder_diff.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(encoders, now))
    assert not all(torch.equal(a, b) for a, b in zip(heads, model.graph_head.parameters()))
