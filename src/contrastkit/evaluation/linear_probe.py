"""Linear probe on frozen features ("clean" protocol: no augmentation, features in eval mode).

Features are extracted once; a single ``nn.Linear`` is trained on them with Adam and a cosine
schedule. Standardising features with the training split's mean/std first makes one learning
rate work across backbones ([design]: MoCo's lr-30 SGD recipe assumes ResNet-50 features).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["linear_probe", "linear_probe_predictions"]


def linear_probe(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    num_classes: int,
    **options: Any,
) -> float:
    """Test top-1 accuracy (percent) of a linear classifier trained on frozen features (the
    arguments of ``linear_probe_predictions``)."""
    predicted = linear_probe_predictions(train_features, train_labels, test_features, num_classes, **options)
    return float((predicted == test_labels).float().mean() * 100)


def linear_probe_predictions(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    num_classes: int,
    *,
    epochs: int = 100,
    batch_size: int = 256,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> Tensor:
    """Predicted classes ``[M]`` of ``test_features`` by a linear classifier trained on frozen features.

    Args:
        train_features, test_features: ``[N, D]`` and ``[M, D]``.
        train_labels: ``[N]`` class indices.
        num_classes: number of classes.
        epochs, batch_size, lr, weight_decay: Adam with cosine decay to 0.
        seed: controls initialisation and batch order.
    """
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(f"feature dims differ: train {train_features.shape[1]}, test {test_features.shape[1]}")
    g = torch.Generator().manual_seed(seed)
    mean = train_features.mean(0, keepdim=True)
    std = train_features.std(0, keepdim=True).clamp_min(1e-6)
    x_train = ((train_features - mean) / std).float()
    x_test = ((test_features - mean) / std).float()
    head = torch.nn.Linear(x_train.shape[1], num_classes)
    with torch.no_grad():
        head.weight.normal_(0, 0.01, generator=g)
        head.bias.zero_()
    steps_per_epoch = max(1, -(-len(x_train) // batch_size))
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps_per_epoch)
    for _ in range(epochs):
        order = torch.randperm(len(x_train), generator=g)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            loss = F.cross_entropy(head(x_train[rows]), train_labels[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        return head(x_test).argmax(1)
