"""The graph tasks: ``node_graphs`` (one graph, node classification by logistic regression) and
``graph_sets`` (many graphs, graph classification by a linear SVM with 10-fold CV)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from contrastkit.data.graphs import GRAPH_SETS_TASK, NODE_GRAPHS_TASK
from contrastkit.data.module import EpochSampler
from contrastkit.methods.graph_base import GraphMethod
from contrastkit.pipeline.tasks.base import Evaluation, Task, build_method, load_dataset
from contrastkit.registry import register_task

if TYPE_CHECKING:
    from contrastkit.config import Recipe

__all__ = ["GraphBatches", "GraphSetsTask", "NodeGraphsTask", "OnePerEpoch"]


class OnePerEpoch(L.LightningDataModule):
    """Full-graph / window-sampling methods draw their own sample each step: one item per epoch."""

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.zeros(1)), batch_size=1)


class GraphBatches(L.LightningDataModule):
    """PyG mini-batches of graphs in a seeded, resumable order (``EpochSampler``)."""

    def __init__(self, graphs: list[Any], batch_size: int, seed: int) -> None:
        super().__init__()
        self.graphs, self.batch_size, self.seed = graphs, batch_size, seed

    def train_dataloader(self) -> Any:
        from torch_geometric.loader import DataLoader as GraphLoader

        return GraphLoader(self.graphs, batch_size=self.batch_size, sampler=EpochSampler(len(self.graphs), self.seed))


class _GraphTask(Task):
    uses_backbone = False

    @classmethod
    def smoke(cls, raw: dict[str, Any]) -> None:
        raw.setdefault("eval", {})["node_repeats"] = 3
        raw.setdefault("data", {})["train_subset"] = 64  # graph level: 64 graphs (stratified); node level: ignored
        raw.setdefault("optim", {})["epochs"] = 5

    def model_line(self) -> str:
        return cast(GraphMethod, self.method).describe()


@register_task(NODE_GRAPHS_TASK)
class NodeGraphsTask(_GraphTask):
    """One graph; the ``GraphMethod`` embeds every node (``embed() -> [n, D]``)."""

    samples = "graphs"

    def __init__(self, recipe: Recipe, root: str | Path | None) -> None:
        super().__init__(recipe, root)
        self.graph = load_dataset(recipe, root)
        o = recipe.optim
        self.method: GraphMethod = build_method(
            recipe, GraphMethod, graph=self.graph, lr=o.lr, weight_decay=o.weight_decay, seed=recipe.trainer.seed
        )
        self.datamodule = OnePerEpoch()
        self.classes = tuple(str(c) for c in range(self.graph.num_classes))
        self.source = self.graph.source
        self.metrics = [("node_accuracy", "node classification accuracy")]
        self.protocol = (
            f"Logistic regression on frozen node embeddings (train nodes -> test nodes), "
            f"{recipe.eval.node_repeats} repeats, mean ± std."
        )

    def evaluate(self, desc: str, progress: bool) -> Evaluation:
        from contrastkit.evaluation.graph import node_classification

        emb = self.method.embed().cpu()
        g = self.graph
        mean, std = node_classification(
            emb,
            g.y,
            g.train_mask,
            g.test_mask,
            repeats=self.recipe.eval.node_repeats,
            weight_decay=self.recipe.eval.node_weight_decay,
            seed=self.recipe.trainer.seed,
        )
        return Evaluation(
            {"node_accuracy": mean, "node_accuracy_std": std, "feature_dim": emb.shape[1]},
            emb[g.test_mask],
            g.y[g.test_mask],
        )


@register_task(GRAPH_SETS_TASK)
class GraphSetsTask(_GraphTask):
    """A set of graphs; the ``GraphMethod`` embeds every graph (``embed() -> [G, D]``) and trains
    on the batches of its ``graphs`` (its prepared copies of the dataset's graphs)."""

    samples = "graphs"

    def __init__(self, recipe: Recipe, root: str | Path | None) -> None:
        super().__init__(recipe, root)
        self.dataset = load_dataset(recipe, root)
        if recipe.data.train_subset:
            self.dataset = self.dataset.subset(recipe.data.train_subset, recipe.trainer.seed)
        o = recipe.optim
        self.method: GraphMethod = build_method(
            recipe, GraphMethod, dataset=self.dataset, lr=o.lr, weight_decay=o.weight_decay, seed=recipe.trainer.seed
        )
        self.datamodule = GraphBatches(self.method.graphs, recipe.data.batch_size, recipe.trainer.seed)
        self.classes = tuple(str(c) for c in range(self.dataset.num_classes))
        self.source = self.dataset.source
        self.metrics = [("graph_accuracy", "graph classification accuracy")]
        self.protocol = "Linear SVM on frozen graph embeddings, stratified 10-fold CV, C grid-searched inside folds."

    def evaluate(self, desc: str, progress: bool) -> Evaluation:
        from contrastkit.evaluation.graph import svm_graph_classification

        emb = self.method.embed().cpu()
        labels = self.dataset.labels
        mean, std = svm_graph_classification(
            emb, labels, seed=self.recipe.trainer.seed, progress=progress, desc=f"{desc}: SVM 10-fold CV"
        )
        return Evaluation({"graph_accuracy": mean, "graph_accuracy_std": std, "feature_dim": emb.shape[1]}, emb, labels)
