"""Evaluation of a trained (or freshly initialised) encoder on frozen features."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit.data.images import ImageSplits
from contrastkit.evaluation.features import extract_features
from contrastkit.evaluation.knn import knn_accuracy
from contrastkit.evaluation.linear_probe import linear_probe
from contrastkit.evaluation.low_label import few_label_key, few_label_knn
from contrastkit.methods.base import ContrastiveMethod

__all__ = ["Evaluation", "evaluate_encoder", "view_similarities"]


@dataclass
class Evaluation:
    """Numbers (percent) and the test embeddings used for the plots."""

    knn_top1: float
    linear_probe_top1: float | None
    feature_dim: int
    test_features: Tensor = field(repr=False)
    test_labels: Tensor = field(repr=False)
    few_label: dict[str, float] = field(default_factory=dict)

    def numbers(self) -> dict[str, float | int | None]:
        out = asdict(self)
        out.pop("test_features")
        out.pop("test_labels")
        out.update(out.pop("few_label"))
        return out


@torch.no_grad()
def evaluate_encoder(
    method: ContrastiveMethod,
    splits: ImageSplits,
    *,
    knn_k: int,
    knn_temperature: float,
    probe: bool,
    probe_epochs: int,
    label_fractions: tuple[float, ...] = (),
    label_draws: int = 10,
    seed: int = 0,
    desc: str = "",
    progress: bool = True,
) -> Evaluation:
    """kNN (bank = training split), kNN with a few labels (``label_fractions`` of the training
    labels, ``label_draws`` draws each; keys from ``few_label_key``) and, optionally, a linear probe
    on backbone features."""
    device = next(method.parameters()).device
    train = extract_features(
        method.backbone,
        splits.train_images,
        method.preprocess,
        device=device,
        desc=f"{desc} train features",
        progress=progress,
    )
    test = extract_features(
        method.backbone,
        splits.test_images,
        method.preprocess,
        device=device,
        desc=f"{desc} test features",
        progress=progress,
    )
    knn = knn_accuracy(train, splits.train_labels, test, splits.test_labels, splits.num_classes, knn_k, knn_temperature)
    few_label: dict[str, float] = {}
    for fraction in label_fractions:
        mean, std = few_label_knn(
            train,
            splits.train_labels,
            test,
            splits.test_labels,
            splits.num_classes,
            fraction,
            draws=label_draws,
            k=knn_k,
            temperature=knn_temperature,
            seed=seed,
        )
        few_label[few_label_key(fraction)] = mean
        few_label[few_label_key(fraction) + "_std"] = std
    probe_acc = None
    if probe:
        with torch.enable_grad():
            probe_acc = linear_probe(
                train, splits.train_labels, test, splits.test_labels, splits.num_classes, epochs=probe_epochs, seed=seed
            )
    return Evaluation(knn, probe_acc, train.shape[1], test, splits.test_labels, few_label)


@torch.no_grad()
def view_similarities(method: ContrastiveMethod, images: Tensor, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Cosine similarities of backbone features: two augmented views of the same image
    (positives, ``[N]``) and views of different images (negatives, ``[N * (N - 1)]``, capped)."""
    was_training = method.training
    method.eval()
    try:
        g = torch.Generator(device=images.device).manual_seed(seed)
        a = F.normalize(method.backbone(method.augmentation(images, g)), dim=1)
        b = F.normalize(method.backbone(method.augmentation(images, g)), dim=1)
    finally:
        method.train(was_training)
    sims = a @ b.t()
    positive = sims.diagonal().clone()
    negative = sims[~torch.eye(len(a), dtype=torch.bool, device=sims.device)]
    return positive.cpu(), negative[:20_000].cpu()
