"""Graph datasets: Planetoid (Cora, CiteSeer, PubMed), TUDataset (MUTAG, PTC_MR, IMDB-BINARY,
...), and seeded stochastic-block-model graphs that need no download.

Real data is read from ``<root>/planetoid/<Name>/raw`` or ``<root>/TUDataset/<NAME>/raw``; the
folder is copied to a temporary directory first, because torch_geometric writes a
``processed/`` folder next to ``raw/`` and the shared data folder is read-only. With
``download=True`` and no local copy, torch_geometric downloads into ``<root>`` (needs internet).
Needs the ``graph`` extra (torch_geometric).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from contrastkit.data.errors import DataError
from contrastkit.data.images import data_root
from contrastkit.registry import DataSettings, register_dataset

__all__ = ["GraphSet", "NodeGraph", "load_graph_dataset", "load_node_dataset", "sbm_graph", "sbm_graph_set"]

PLANETOID = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
TU = {
    "mutag": "MUTAG",
    "ptc_mr": "PTC_MR",
    "imdb-binary": "IMDB-BINARY",
    "imdb-multi": "IMDB-MULTI",
    "proteins": "PROTEINS",
    "reddit-binary": "REDDIT-BINARY",
}


@dataclass
class NodeGraph:
    """One graph with node features, labels and the train/val/test node split."""

    name: str
    x: Tensor
    edge_index: Tensor
    y: Tensor
    train_mask: Tensor
    val_mask: Tensor
    test_mask: Tensor
    source: str

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1


@dataclass
class GraphSet:
    """A graph-classification dataset as a list of torch_geometric ``Data`` objects."""

    name: str
    graphs: list = field(repr=False)
    num_classes: int
    num_features: int
    source: str

    @property
    def labels(self) -> Tensor:
        return torch.tensor([int(g.y) for g in self.graphs])

    def subset(self, count: int, seed: int = 0) -> GraphSet:
        """A stratified random subset of ``count`` graphs (all if ``count`` >= the size)."""
        if count >= len(self.graphs):
            return self
        labels = self.labels
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(labels), generator=g)
        per_class = max(1, count // self.num_classes)
        keep = torch.cat([order[labels[order] == c][:per_class] for c in range(self.num_classes)])
        return GraphSet(
            self.name,
            [self.graphs[int(i)] for i in keep],
            self.num_classes,
            self.num_features,
            f"{self.source}; stratified subset of {len(keep)} graphs (seed {seed})",
        )


def _local_copy(root: Path, family: str, folder: str) -> Path | None:
    raw = root / family / folder / "raw"
    if not raw.is_dir():
        raw = root / folder / "raw"
    if not raw.is_dir():
        return None
    scratch = Path(tempfile.mkdtemp(prefix="contrastkit-"))
    shutil.copytree(raw, scratch / folder / "raw")
    return scratch


@contextmanager
def _dataset_root(
    root: str | os.PathLike[str] | None, family: str, folder: str, download: bool
) -> Iterator[tuple[Path, Path]]:
    """``(data root, folder torch_geometric reads)``: a scratch copy of the raw files (removed on
    exit), or ``<root>/<family>`` when downloading. Clear ``DataError``s when neither is possible."""
    base = data_root(root)
    if base is None:
        raise DataError(f"{folder} needs a data root: pass --data-root DIR or set CONTRASTKIT_DATA")
    scratch = _local_copy(base, family, folder)
    if scratch is None and not download:
        raise DataError(f"{folder} not found under {base}/{family}/{folder}/raw; set data.download=true to fetch it")
    try:
        yield base, scratch or base / family
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def row_normalize(x: Tensor) -> Tensor:
    """Rows scaled to sum 1 (rows of zeros stay zero), as the DGL/PyGCL MVGRL examples do."""
    return x / x.sum(dim=1, keepdim=True).clamp_min(1e-12)


def load_node_dataset(
    name: str, root: str | os.PathLike[str] | None, *, download: bool = False, normalize_features: bool = True
) -> NodeGraph:
    """Cora / CiteSeer / PubMed with the Planetoid public split."""
    from torch_geometric.datasets import Planetoid

    key = name.lower()
    if key not in PLANETOID:
        raise DataError(f"unknown node dataset {name!r}; choose one of {', '.join(PLANETOID)} or sbm")
    folder = PLANETOID[key]
    with _dataset_root(root, "planetoid", folder, download) as (base, readable):
        try:
            ds = Planetoid(str(readable), folder)
        except Exception as err:  # torch_geometric raises plain errors for incomplete raw folders
            raise DataError(f"could not read {folder} from {base}: {str(err).splitlines()[0]}") from None
    d = ds[0]
    x = row_normalize(d.x) if normalize_features else d.x
    return NodeGraph(
        folder,
        x,
        d.edge_index,
        d.y,
        d.train_mask,
        d.val_mask,
        d.test_mask,
        f"{base}/planetoid/{folder} (Planetoid public split)",
    )


def _degree_features(graphs: list, max_degree: int) -> None:
    from torch_geometric.utils import degree

    for g in graphs:
        deg = degree(g.edge_index[0], g.num_nodes, dtype=torch.long).clamp_max(max_degree)
        onehot = torch.nn.functional.one_hot(deg, max_degree + 1).float()
        g.x = onehot if getattr(g, "x", None) is None else torch.cat([g.x.float(), onehot], dim=1)


def load_graph_dataset(name: str, root: str | os.PathLike[str] | None, *, download: bool = False) -> GraphSet:
    """A TU graph-classification dataset; node features = one-hot node label (if any) + one-hot
    degree, as the official MVGRL graph code builds them (``docs/methods/mvgrl.md``)."""
    from torch_geometric.datasets import TUDataset

    key = name.lower()
    if key not in TU:
        raise DataError(f"unknown graph dataset {name!r}; choose one of {', '.join(TU)} or sbm_graphs")
    folder = TU[key]
    with _dataset_root(root, "TUDataset", folder, download) as (base, readable):
        ds = TUDataset(str(readable), folder)
        graphs = [ds[i] for i in range(len(ds))]
    max_degree = max(
        int(torch.bincount(g.edge_index[0], minlength=g.num_nodes).max()) if g.num_edges else 0 for g in graphs
    )
    _degree_features(graphs, max_degree)
    return GraphSet(folder, graphs, ds.num_classes, int(graphs[0].x.shape[1]), f"{base}/TUDataset/{folder}")


def _sbm_edges(sizes: list[int], p_in: float, p_out: float, g: torch.Generator) -> Tensor:
    n = sum(sizes)
    block = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    prob = torch.where(block[:, None] == block[None, :], p_in, p_out)
    upper = torch.triu(torch.rand(n, n, generator=g) < prob, diagonal=1)
    src, dst = upper.nonzero(as_tuple=True)
    return torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])


def sbm_graph(
    num_nodes: int = 1200,
    num_classes: int = 4,
    num_features: int = 64,
    p_in: float = 0.012,
    p_out: float = 0.002,
    feature_noise: float = 2.0,
    seed: int = 0,
) -> NodeGraph:
    """A seeded stochastic-block-model graph whose blocks are the classes; node features are a
    noisy class signature, so both structure and features carry signal. Split 20 train nodes per
    class, 500 validation, 1000 test (Planetoid-like), capped by the graph size."""
    g = torch.Generator().manual_seed(seed)
    sizes = [num_nodes // num_classes + (1 if i < num_nodes % num_classes else 0) for i in range(num_classes)]
    y = torch.repeat_interleave(torch.arange(num_classes), torch.tensor(sizes))
    edge_index = _sbm_edges(sizes, p_in, p_out, g)
    centers = torch.randn(num_classes, num_features, generator=g)
    x = (centers[y] + feature_noise * torch.randn(num_nodes, num_features, generator=g)).relu()
    order = torch.randperm(num_nodes, generator=g)
    train = torch.cat([order[y[order] == c][:20] for c in range(num_classes)])
    rest = order[~torch.isin(order, train)]
    val, test = rest[:500], rest[500:1500]
    train_mask, val_mask, test_mask = (torch.zeros(num_nodes, dtype=torch.bool) for _ in range(3))
    for mask, idx in zip((train_mask, val_mask, test_mask), (train, val, test)):
        mask[idx] = True
    return NodeGraph(
        "sbm",
        row_normalize(x),
        edge_index,
        y,
        train_mask,
        val_mask,
        test_mask,
        f"seeded stochastic block model ({num_nodes} nodes, {num_classes} blocks, seed {seed})",
    )


def sbm_graph_set(num_graphs: int = 200, seed: int = 0) -> GraphSet:
    """Seeded two-class graph classification: small SBM graphs with 2 blocks (class 0) or 4
    blocks (class 1) of similar size and density; node features are one-hot degrees."""
    from torch_geometric.data import Data

    g = torch.Generator().manual_seed(seed)
    graphs = []
    for i in range(num_graphs):
        label = i % 2
        blocks = 2 if label == 0 else 4
        n = int(torch.randint(16, 33, (1,), generator=g))
        sizes = [n // blocks + (1 if b < n % blocks else 0) for b in range(blocks)]
        p_in = 0.5 if label == 0 else 0.8
        edge_index = _sbm_edges(sizes, p_in, 0.05, g)
        graphs.append(Data(edge_index=edge_index, num_nodes=n, y=torch.tensor([label])))
    max_degree = max(int(torch.bincount(d.edge_index[0], minlength=d.num_nodes).max()) for d in graphs)
    _degree_features(graphs, max_degree)
    return GraphSet(
        "sbm_graphs",
        graphs,
        2,
        int(graphs[0].x.shape[1]),
        f"seeded SBM graph classification ({num_graphs} graphs, 2 vs 4 blocks, seed {seed})",
    )


# Registered datasets: "node_graphs" (one graph, node classification) and "graph_sets" (graph
# classification). ``load(settings, root, seed)``; the graph tasks take subsets.

NODE_GRAPHS_TASK = "node_graphs"
GRAPH_SETS_TASK = "graph_sets"


class GraphFilesData(DataSettings):
    """Options of the graph datasets read from files: ``download`` fetches them into the data
    root when they are not there (never in tests); ``normalize_features`` row-normalises
    Planetoid's bag-of-words features (node level)."""

    download: bool = False
    normalize_features: bool = True


@register_dataset("sbm", task=NODE_GRAPHS_TASK, summary="seeded stochastic block model (no download)", reads_root=False)
def _sbm_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> NodeGraph:
    return sbm_graph(seed=seed)


def _planetoid(name: str) -> Any:
    def load(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> NodeGraph:
        return load_node_dataset(
            name, root or settings.root, download=settings.download, normalize_features=settings.normalize_features
        )

    return load


for _name, _folder in PLANETOID.items():
    register_dataset(
        _name, task=NODE_GRAPHS_TASK, settings=GraphFilesData, summary=f"Planetoid {_folder}, public split"
    )(_planetoid(_name))


@register_dataset(
    "sbm_graphs", task=GRAPH_SETS_TASK, summary="seeded SBM graph classification (no download)", reads_root=False
)
def _sbm_graphs_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> GraphSet:
    return sbm_graph_set(seed=seed)


def _tu(name: str) -> Any:
    def load(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> GraphSet:
        return load_graph_dataset(name, root or settings.root, download=settings.download)

    return load


for _name, _folder in TU.items():
    register_dataset(_name, task=GRAPH_SETS_TASK, settings=GraphFilesData, summary=f"TUDataset {_folder}")(_tu(_name))
