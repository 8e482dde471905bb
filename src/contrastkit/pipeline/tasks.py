"""What differs between modalities in a run: the data, the method, and how a trained encoder is
evaluated. ``build_task`` picks the task from the recipe's ``method.name`` / ``level``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from contrastkit.config import Recipe
from contrastkit.data.module import EpochSampler, ImageDataModule
from contrastkit.methods.base import ContrastiveMethod

__all__ = ["Evaluation", "Task", "build_task"]


@dataclass
class Evaluation:
    """Numbers of an evaluation and the embeddings behind its 2-D map."""

    numbers: dict[str, float | int | None]
    embeddings: Tensor = field(repr=False)
    labels: Tensor = field(repr=False)


class Task:
    """A method, its data module and its evaluation protocol."""

    metrics: list[tuple[str, str]]  # (key in Evaluation.numbers, column label)
    protocol: str
    classes: tuple[str, ...]
    source: str
    method: L.LightningModule
    datamodule: L.LightningDataModule

    def evaluate(self, desc: str, progress: bool) -> Evaluation:
        raise NotImplementedError(f"{type(self).__name__} must implement evaluate()")

    def extra_plots(self, run_dir: Path) -> list[str]:
        return []


class ImageTask(Task):
    def __init__(self, recipe: Recipe, root: str | Path | None) -> None:
        from contrastkit.pipeline.build import build_data, build_method

        self.recipe = recipe
        self.splits = build_data(recipe, root)
        self.method: ContrastiveMethod = build_method(recipe, self.splits)
        self.datamodule = ImageDataModule(
            self.splits, recipe.data.batch_size, recipe.data.num_workers, recipe.trainer.seed, recipe.eval.monitor_bank
        )
        self.classes = self.splits.classes
        self.source = self.splits.source
        self.metrics = [("knn_top1", f"kNN top-1 (k={recipe.eval.knn_k})"), ("linear_probe_top1", "linear probe top-1")]
        self.protocol = (
            "kNN: cosine similarity to the whole training split, votes weighted "
            f"exp(sim / {recipe.eval.knn_temperature})."
            " Linear probe: frozen backbone features, no augmentation, standardised, Adam with cosine decay."
        )

    def evaluate(self, desc: str, progress: bool) -> Evaluation:
        from contrastkit.pipeline.evaluate import evaluate_encoder

        e = self.recipe.eval
        result = evaluate_encoder(
            self.method,
            self.splits,
            knn_k=e.knn_k,
            knn_temperature=e.knn_temperature,
            probe=e.linear_probe,
            probe_epochs=e.probe_epochs,
            seed=self.recipe.trainer.seed,
            desc=desc,
            progress=progress,
        )
        return Evaluation(result.numbers(), result.test_features, result.test_labels)

    def extra_plots(self, run_dir: Path) -> list[str]:
        from contrastkit.pipeline.evaluate import view_similarities
        from contrastkit.pipeline.report import plot_similarities

        positive, negative = view_similarities(self.method, self.splits.test_images[:512], self.recipe.trainer.seed)
        return [plot_similarities(run_dir, positive, negative)]


class _OnePerEpoch(L.LightningDataModule):
    """Full-graph / window-sampling methods draw their own sample each step: one item per epoch."""

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.zeros(1)), batch_size=1)


class NodeGraphTask(Task):
    def __init__(self, recipe: Recipe, root: str | Path | None) -> None:
        from contrastkit.data.graphs import load_node_dataset, sbm_graph
        from contrastkit.methods.mvgrl import MVGRL

        self.recipe = recipe
        d = recipe.data
        if d.dataset == "sbm":
            self.graph = sbm_graph(seed=recipe.trainer.seed)
        else:
            self.graph = load_node_dataset(
                d.dataset, root or d.root, download=d.download, normalize_features=d.normalize_features
            )
        params = _method_params(recipe, drop=("level", "layers", "batch_size", "train_encoders", "official_padding"))
        o = recipe.optim
        self.method = MVGRL(self.graph, lr=o.lr, weight_decay=o.weight_decay, seed=recipe.trainer.seed, **params)
        self.datamodule = _OnePerEpoch()
        self.classes = tuple(str(c) for c in range(self.graph.num_classes))
        self.source = self.graph.source
        self.metrics = [("node_accuracy", "node classification accuracy")]
        self.protocol = (
            f"Logistic regression on frozen node embeddings (train nodes -> test nodes), "
            f"{recipe.eval.node_repeats} repeats, mean ± std."
        )

    def evaluate(self, desc: str, progress: bool) -> Evaluation:
        from contrastkit.evaluation.graph import node_classification

        emb = self.method.embed().cpu()  # type: ignore[operator]
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


class _GraphBatches(L.LightningDataModule):
    def __init__(self, graphs: list[Any], batch_size: int, seed: int) -> None:
        super().__init__()
        self.graphs, self.batch_size, self.seed = graphs, batch_size, seed

    def train_dataloader(self) -> Any:
        from torch_geometric.loader import DataLoader as GraphLoader

        return GraphLoader(self.graphs, batch_size=self.batch_size, sampler=EpochSampler(len(self.graphs), self.seed))


class GraphSetTask(Task):
    def __init__(self, recipe: Recipe, root: str | Path | None) -> None:
        from contrastkit.data.graphs import load_graph_dataset, sbm_graph_set
        from contrastkit.methods.mvgrl import MVGRLGraph

        self.recipe = recipe
        d = recipe.data
        if d.dataset == "sbm_graphs":
            self.dataset = sbm_graph_set(seed=recipe.trainer.seed)
        else:
            self.dataset = load_graph_dataset(d.dataset, root or d.root, download=d.download)
        if d.train_subset:
            self.dataset = self.dataset.subset(d.train_subset, recipe.trainer.seed)
        params = _method_params(
            recipe,
            drop=("level", "window_size", "windows", "self_loops", "diffusion_topk", "eps_sparsify", "batch_size"),
        )
        o = recipe.optim
        self.method = MVGRLGraph(self.dataset, lr=o.lr, weight_decay=o.weight_decay, seed=recipe.trainer.seed, **params)
        self.datamodule = _GraphBatches(self.method.graphs, recipe.data.batch_size, recipe.trainer.seed)
        self.classes = tuple(str(c) for c in range(self.dataset.num_classes))
        self.source = self.dataset.source
        self.metrics = [("graph_accuracy", "graph classification accuracy")]
        self.protocol = "Linear SVM on frozen graph embeddings, stratified 10-fold CV, C grid-searched inside folds."

    def evaluate(self, desc: str, progress: bool) -> Evaluation:
        from contrastkit.evaluation.graph import svm_graph_classification

        emb = self.method.embed().cpu()  # type: ignore[operator]
        labels = self.dataset.labels
        mean, std = svm_graph_classification(
            emb, labels, seed=self.recipe.trainer.seed, progress=progress, desc=f"{desc}: SVM 10-fold CV"
        )
        return Evaluation({"graph_accuracy": mean, "graph_accuracy_std": std, "feature_dim": emb.shape[1]}, emb, labels)


def _method_params(recipe: Recipe, drop: tuple[str, ...]) -> dict[str, Any]:
    params = recipe.method.model_dump()
    params.pop("name")
    for key in drop:
        params.pop(key, None)
    return params


def build_task(recipe: Recipe, root: str | Path | None) -> Task:
    """The task of a recipe: images for SimCLR/MoCo/MoCHi/DenseCL, graphs for MVGRL."""
    if recipe.method.name == "mvgrl":
        level = getattr(recipe.method, "level", "node")
        return NodeGraphTask(recipe, root) if level == "node" else GraphSetTask(recipe, root)
    return ImageTask(recipe, root)
