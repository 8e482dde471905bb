"""What the captions protocol's video features carry: class and direction, by kNN on frozen features.

    python benchmarks/captions_features.py --data-root ../shared/data

For the fixed descriptor (three frames pooled to 8x8) and the zoo expert's frame features
(pooled over three stretches of time), with the object drawn at two sizes: radius 0.25 of the
frame (the captions recipe) and 0.5 (CIFAR-10's own resolution). kNN (k=20, cosine) from 2,000
training clips to 400 test clips of seed 0; chance is 10% for the class and 12.5% for the
direction. Writes ``results/captions_features.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit.data.captions import _clips
from contrastkit.data.images import load_cifar10
from contrastkit.data.moving_objects import DIRECTIONS
from contrastkit.nn.experts import frame_expert, pooled_clip_features

RESULTS = Path(__file__).parent / "results"


def knn(bank: Tensor, queries: Tensor, bank_labels: Tensor, labels: Tensor, k: int = 20) -> float:
    sims = F.normalize(queries, dim=1) @ F.normalize(bank, dim=1).T
    idx = sims.topk(k, dim=1).indices
    votes = torch.zeros(len(queries), int(bank_labels.max()) + 1)
    votes.scatter_add_(1, bank_labels[idx], torch.ones(idx.shape))
    return float((votes.argmax(1) == labels).float().mean()) * 100


def standardised(train: Tensor, test: Tensor) -> tuple[Tensor, Tensor]:
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    return (train - mean) / std, (test - mean) / std


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--expert", default="zoo:moco-v2-cifar10-s0")
    args = parser.parse_args()
    cifar = load_cifar10(args.data_root)
    expert = frame_expert(args.expert)
    lines = [
        "# What the captions protocol's video features carry",
        "",
        f"Command: `python benchmarks/captions_features.py --data-root {args.data_root}`  ",
        f"kNN (k=20, cosine), 2,000 training clips -> 400 test clips, seed 0; expert `{args.expert}`. "
        "Chance: class 10%, direction 12.5%.",
        "",
        "| object radius | features | class kNN | direction kNN |",
        "|---:|---|---:|---:|",
    ]
    for fraction in (0.25, 0.5):
        g = torch.Generator().manual_seed(0)
        train = _clips(cifar.train_images, cifar.train_labels, 2000, 8, 32, g, cifar.classes, fraction * 32)
        test = _clips(cifar.test_images, cifar.test_labels, 400, 8, 32, g, cifar.classes, fraction * 32)
        features = {
            "descriptor (3 frames at 8x8)": standardised(train[1], test[1]),
            "expert, 3 stretches": standardised(
                pooled_clip_features(expert, train[0], cifar.mean, cifar.std),
                pooled_clip_features(expert, test[0], cifar.mean, cifar.std),
            ),
        }
        for name, (a, b) in features.items():
            n = len(DIRECTIONS)
            cls = knn(a, b, train[2] // n, test[2] // n)
            direction = knn(a, b, train[2] % n, test[2] % n)
            lines.append(f"| {fraction} | {name} | {cls:.1f} | {direction:.1f} |")
            print(lines[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "captions_features.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
