"""Plots and ``report.md`` of a run folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import Tensor  # noqa: E402

__all__ = ["embedding_map", "plot_curves", "plot_similarities", "write_report"]


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot_curves(run_dir: Path, random_init_knn: float | None) -> list[str]:
    """``loss.png`` (per step and per epoch) and ``knn.png`` (monitor accuracy per epoch)."""
    written = []
    steps = _read_csv(run_dir / "steps.csv")
    epochs = _read_csv(run_dir / "metrics.csv")
    if steps:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([int(r["step"]) for r in steps], [float(r["loss"]) for r in steps], lw=0.6, alpha=0.5, label="step")
        rows = [r for r in epochs if r.get("train/loss")]
        if rows:
            ax.plot([int(r["step"]) for r in rows], [float(r["train/loss"]) for r in rows], "o-", label="epoch mean")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(run_dir / "loss.png", dpi=120)
        plt.close(fig)
        written.append("loss.png")
    knn_rows = [r for r in epochs if r.get("val/knn_top1")]
    if knn_rows:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(
            [int(r["epoch"]) + 1 for r in knn_rows],
            [float(r["val/knn_top1"]) for r in knn_rows],
            "o-",
            label="trained encoder (monitor bank)",
        )
        if random_init_knn is not None:
            ax.axhline(random_init_knn, ls="--", color="gray", label=f"random init ({random_init_knn:.1f})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("kNN top-1 (%)")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(run_dir / "knn.png", dpi=120)
        plt.close(fig)
        written.append("knn.png")
    return written


def plot_similarities(run_dir: Path, positive: Tensor, negative: Tensor) -> str:
    """``similarity.png``: cosine similarity of two views of one image vs of different images."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(-1, 1, 81).tolist()
    ax.hist(negative.numpy(), bins=bins, density=True, alpha=0.6, label="different images")
    ax.hist(positive.numpy(), bins=bins, density=True, alpha=0.6, label="two views of one image")
    ax.set_xlabel("cosine similarity of backbone features (test split)")
    ax.set_ylabel("density")
    ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "similarity.png", dpi=120)
    plt.close(fig)
    return "similarity.png"


def embedding_map(
    run_dir: Path, features: Tensor, labels: Tensor, classes: tuple[str, ...], points: int, seed: int
) -> str:
    """``embedding.png``: t-SNE of (up to ``points``) test embeddings coloured by class."""
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(labels))[:points]
    x = features[idx].numpy()
    x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    # Barnes-Hut is slow on (near-)duplicate points, which an untrained encoder produces; exact is
    # cheap at this size
    method = "exact" if len(idx) <= 600 else "barnes_hut"
    tsne = TSNE(2, init="pca", perplexity=min(30.0, max(5.0, len(idx) / 10)), random_state=seed, method=method)
    xy = tsne.fit_transform(x)
    y = labels[idx].numpy()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for c, name in enumerate(classes):
        sel = y == c
        ax.scatter(xy[sel, 0], xy[sel, 1], s=5, color=cmap(c % cmap.N), label=name)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("t-SNE of test embeddings")
    ax.legend(markerscale=3, fontsize=7, loc="best", ncol=2)
    fig.tight_layout()
    fig.savefig(run_dir / "embedding.png", dpi=120)
    plt.close(fig)
    return "embedding.png"


def write_report(run_dir: Path, results: dict[str, Any], plots: list[str]) -> Path:
    """``report.md`` and ``results.json`` from the run's numbers."""
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    r = results
    final, init = r["final"], r.get("random_init") or {}

    def cell(numbers: dict[str, Any], key: str) -> str:
        value = numbers.get(key)
        if value is None:
            return "—"
        std = numbers.get(f"{key}_std")
        return f"{value:.2f}" + (f" ± {std:.2f}" if std is not None else "")

    header = " | ".join(m["label"] for m in r["metrics"])
    lines = [
        f"# {r['recipe']}: {r['method']}",
        "",
        r.get("description", ""),
        "",
        f"- Data: {r['data']}",
        f"- Model: {r['model']} ({final.get('feature_dim', '?')}-d embeddings); up to {r['epochs']} epochs, "
        f"batch {r['batch_size']} x {r['world_size']} process(es), seed {r['seed']}",
        f"- Training time: {r['train_seconds']:.0f} s"
        + (f"; throughput {r['images_per_second']:.0f} images/s" if r.get("images_per_second") else ""),
        f"- Reproduce: `{r['command']}`",
        "",
        f"| encoder | {header} |",
        "|---|" + "---:|" * len(r["metrics"]),
        "| trained | " + " | ".join(cell(final, m["key"]) for m in r["metrics"]) + " |",
        "| same architecture, random init | " + " | ".join(cell(init, m["key"]) for m in r["metrics"]) + " |",
        "",
        r["protocol"],
        "",
    ]
    captions = {
        "loss.png": "Training loss",
        "knn.png": "Online kNN monitor per epoch",
        "similarity.png": "Cosine similarity of two views of one image vs different images (test split)",
        "embedding.png": "2-D map (t-SNE) of test embeddings",
    }
    for plot in plots:
        lines += [f"## {captions.get(plot, plot)}", "", f"![{plot}]({plot})", ""]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
