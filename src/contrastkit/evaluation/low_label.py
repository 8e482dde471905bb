"""Few-label evaluation: kNN on frozen features when only a fraction of the training labels is
known, the setting where self-supervised pretraining pays (SimCLR, Chen et al. 2020, §4 and
Table 7, evaluate with 1% and 10% of ImageNet's labels; we use a kNN head instead of
fine-tuning, so no training happens at evaluation time).

One draw keeps ``max(1, round(fraction * n_c))`` random images of every class ``c``; the number
reported is the mean and standard deviation of the test accuracy over ``draws`` such draws, so
the spread says how much the result depends on which few images were labelled.
"""

from __future__ import annotations

import torch
from torch import Tensor

from contrastkit.data.images import stratified_label_subset
from contrastkit.evaluation.knn import knn_accuracy

__all__ = ["few_label_key", "few_label_knn", "stratified_label_subset"]


def few_label_key(fraction: float) -> str:
    """The results key of kNN with ``fraction`` of the labels, e.g. ``knn_top1_1pct_labels``."""
    return f"knn_top1_{100 * fraction:g}pct_labels".replace(".", "p")


def few_label_knn(
    train: Tensor,
    train_labels: Tensor,
    test: Tensor,
    test_labels: Tensor,
    num_classes: int,
    fraction: float,
    *,
    draws: int = 10,
    k: int = 200,
    temperature: float = 0.1,
    seed: int = 0,
) -> tuple[float, float]:
    """Mean and standard deviation (percent) of kNN top-1 over ``draws`` stratified label subsets.

    ``train`` ``[N, D]`` / ``train_labels`` ``[N]`` are the whole training split; each draw's bank is
    its subset only. The draws depend on ``seed`` alone, so a trained and a randomly initialised
    encoder are scored on the same labelled images.
    """
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    generator = torch.Generator().manual_seed(seed)
    accuracies = []
    for _ in range(draws):
        idx = stratified_label_subset(train_labels, fraction, generator)
        accuracies.append(
            knn_accuracy(
                train[idx], train_labels[idx], test, test_labels, num_classes, min(k, idx.numel()), temperature
            )
        )
    values = torch.tensor(accuracies)
    return float(values.mean()), float(values.std()) if draws > 1 else 0.0
