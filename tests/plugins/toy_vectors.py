"""A whole new modality as a user plugin, outside the package: a dataset, a task and a method,
registered through ``contrastkit.registry`` and trained by ``contrastkit train`` unchanged.
The recipe ``toy-vectors.yaml`` beside this file names it under ``plugins:``."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from contrastkit.data.module import ArrayDataModule
from contrastkit.evaluation.knn import knn_accuracy
from contrastkit.functional import info_nce
from contrastkit.methods.base import Batch, ContrastiveMethod, OptimizerSettings, StepOutput
from contrastkit.nn.backbones import Backbone
from contrastkit.pipeline.tasks import Evaluation, Task, build_method, load_dataset
from contrastkit.registry import DataSettings, MethodParams, register_dataset, register_method, register_task


class ToyClustersData(DataSettings):
    """The dataset's own option: how many clusters."""

    clusters: int = Field(4, ge=2)


@register_dataset("toy_clusters", task="vectors", settings=ToyClustersData)
def toy_clusters(settings: ToyClustersData, root, seed: int) -> dict[str, Tensor]:
    """``clusters`` overlapping Gaussian clusters in 16-d."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(400) % settings.clusters
    centres = torch.randn(settings.clusters, 16, generator=g)
    return {"x": centres[labels] + torch.randn(400, 16, generator=g), "y": labels}


class NoisyViewsParams(MethodParams):
    name: Literal["noisy-views"] = "noisy-views"
    noise: float = Field(0.5, gt=0)
    temperature: float = Field(0.2, gt=0)


class MLP(Backbone):
    feature_dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, self.feature_dim))

    def forward_map(self, x: Tensor) -> Tensor:
        return self.net(x)


@register_method("noisy-views", NoisyViewsParams, task="vectors")
class NoisyViews(ContrastiveMethod):
    """Two Gaussian-noise views of each vector, in-batch InfoNCE."""

    def __init__(self, *, noise: float, temperature: float, **base) -> None:
        super().__init__(MLP(), None, **base)
        self.noise, self.temperature = noise, temperature

    def embed(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def step(self, batch: Batch) -> StepOutput:
        x, g = batch["input"], self.generator(0)
        v1, v2 = (x + self.noise * torch.randn(x.shape, generator=g) for _ in range(2))
        return StepOutput(info_nce(self.backbone(v1), self.backbone(v2), temperature=self.temperature))


@register_task("vectors")
class VectorsTask(Task):
    samples = "vectors"

    def __init__(self, recipe, root) -> None:
        super().__init__(recipe, root)
        data = load_dataset(recipe, root)
        self.train_x, self.test_x = data["x"][:300], data["x"][300:]
        self.train_y, self.test_y = data["y"][:300], data["y"][300:]
        o = recipe.optim
        self.method = build_method(recipe, optimizer=OptimizerSettings(o.optimizer, o.lr), seed=recipe.trainer.seed)
        self.datamodule = ArrayDataModule({"input": self.train_x}, recipe.data.batch_size, seed=recipe.trainer.seed)
        self.metrics = [("knn", "kNN top-1 (k=10)")]
        self.protocol = "kNN on frozen embeddings, train rows as the bank."
        clusters = recipe.data.clusters
        self.classes, self.source = tuple("abcdefgh"[:clusters]), f"{clusters} seeded Gaussian clusters"

    def evaluate(self, desc: str, progress: bool) -> Evaluation:
        with torch.no_grad():
            bank, test = self.method.embed(self.train_x), self.method.embed(self.test_x)
        knn = knn_accuracy(bank, self.train_y, test, self.test_y, len(self.classes), k=10)
        return Evaluation({"knn": knn}, test, self.test_y)
