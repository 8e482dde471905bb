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

from contrastkit._files import write_atomic  # noqa: E402
from contrastkit.pipeline.environment import environment_line  # noqa: E402

__all__ = [
    "embedding_map",
    "format_cell",
    "near_chance_warning",
    "plot_loss",
    "plot_monitor",
    "plot_similarities",
    "read_csv_rows",
    "restoration_grid",
    "write_report",
]


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a run's CSV file (``metrics.csv``, ``steps.csv``); none when it is missing."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot_loss(run_dir: Path) -> list[Any]:
    """``loss.png``: training loss per step and per epoch (every task)."""
    from contrastkit.pipeline.tasks.base import Plot

    steps = read_csv_rows(run_dir / "steps.csv")
    if not steps:
        return []
    epochs = read_csv_rows(run_dir / "metrics.csv")
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
    return [Plot("loss.png", "Training loss")]


def plot_monitor(
    run_dir: Path,
    column: str,
    ylabel: str,
    file: str,
    baseline: float | None = None,
    baseline_name: str = "random init",
) -> bool:
    """``file``: an epoch-level column of ``metrics.csv`` (an online monitor) against the epoch,
    with a dashed ``baseline`` (the untrained network's value, ``baseline_name``) if given; False
    when the column is empty."""
    rows = [r for r in read_csv_rows(run_dir / "metrics.csv") if r.get(column)]
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([int(r["epoch"]) + 1 for r in rows], [float(r[column]) for r in rows], "o-", label="trained encoder")
    if baseline is not None:
        ax.axhline(baseline, ls="--", color="gray", label=f"{baseline_name} ({baseline:.1f})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(run_dir / file, dpi=120)
    plt.close(fig)
    return True


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
    perplexity = min(30.0, max(5.0, len(idx) / 10), max(1.0, len(idx) - 1.0))  # below n: t-SNE's requirement
    tsne = TSNE(2, init="pca", perplexity=perplexity, random_state=seed, method=method)
    xy = tsne.fit_transform(x)
    y = labels[idx].numpy()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    if classes:
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for c, name in enumerate(classes):
            sel = y == c
            ax.scatter(xy[sel, 0], xy[sel, 1], s=5, color=cmap(c % cmap.N), label=name)
        ax.legend(markerscale=3, fontsize=7, loc="best", ncol=2)
    else:  # ids without names (e.g. 80 clusters): one colour per id from a cyclic map, no legend
        ax.scatter(xy[:, 0], xy[:, 1], s=5, c=y % 20, cmap="tab20")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("t-SNE of test embeddings")
    fig.tight_layout()
    fig.savefig(run_dir / "embedding.png", dpi=120)
    plt.close(fig)
    return "embedding.png"


def restoration_grid(
    path: Path,
    hazy: list[Tensor],
    restored: list[Tensor],
    clear: list[Tensor],
    names: list[str],
    psnr: Tensor,
    ssim: Tensor,
) -> None:
    """A PNG with one row per image: hazy | restored (titled with its PSNR / SSIM) | clear (uint8 ``[3, H, W]``)."""
    fig, axes = plt.subplots(len(hazy), 3, figsize=(7.5, 2.5 * len(hazy)), squeeze=False)
    for i in range(len(hazy)):
        for j, (image, title) in enumerate(
            (
                (hazy[i], f"hazy {names[i]}"),
                (restored[i], f"restored {psnr[i]:.2f} dB / {ssim[i]:.3f}"),
                (clear[i], "clear"),
            )
        ):
            axes[i, j].imshow(image.permute(1, 2, 0).numpy())
            axes[i, j].set_title(title, fontsize=8)
            axes[i, j].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_cell(numbers: dict[str, Any] | None, key: str) -> str:
    """A table cell of ``numbers[key]`` (``± numbers[key_std]`` where there is one): 2 decimals, 3
    for SSIM; "—" when the run has no such number."""
    value = (numbers or {}).get(key)
    if not isinstance(value, int | float):
        return "—"
    std = (numbers or {}).get(f"{key}_std")
    digits = 3 if key.endswith("ssim") else 2
    return f"{value:.{digits}f}" + (f" ± {std:.{digits}f}" if isinstance(std, int | float) else "")


def write_report(run_dir: Path, results: dict[str, Any], plots: list[tuple[str, str]]) -> Path:
    """``report.md`` and ``results.json`` from the run's numbers; ``plots`` are (file, caption)."""
    write_atomic(run_dir / "results.json", json.dumps(results, indent=2))
    r = results
    final, init = r["final"], r.get("random_init") or {}

    header = " | ".join(m["label"] for m in r["metrics"])
    smoke = " (smoke run: tiny sizes, for checking the pipeline; the numbers say nothing about the method)"
    lines = [
        f"# {r['recipe']}: {r['method']}" + (smoke if r.get("smoke") else ""),
        "",
        *((f"**{r['verdict']}**", "") if r.get("verdict") else ()),
        r.get("description", ""),
        "",
        *((f"**{r['headline']}**", "") if r.get("headline") else ()),
        *(f"> **Warning:** {w}\n" for w in r.get("warnings", [])),
        f"- Data: {r['data']}",
        f"- Model: {r['model']}"
        + (f" ({final['feature_dim']}-d embeddings)" if final.get("feature_dim") else "")
        + f"; {epochs_line(r)}, "
        f"batch {r['batch_size']} x {r['world_size']} process(es), seed {r['seed']}",
        f"- Training time: {r['train_seconds']:.0f} s"
        + (
            f"; throughput {r['images_per_second']:.0f} {r.get('samples', 'samples')}/s"
            if r.get("images_per_second")
            else ""
        )
        + time_line(r.get("time") or {}),
        (
            f"- Resumed with changed settings: {', '.join(r['changed_on_resume'])}\n"
            if r.get("changed_on_resume")
            else ""
        )
        + (f"- Environment: {environment_line(r['environment'])}\n" if r.get("environment") else "")
        + f"- Reproduce: `{r['command']}`"
        + "".join(f", then `{c}`" for c in r.get("resumed_with", []))
        + (f"; re-evaluated with `{r['evaluated_with']}`" if r.get("evaluated_with") else ""),
        "",
        f"| encoder | {header} |",
        "|---|" + "---:|" * len(r["metrics"]),
        "| trained | " + " | ".join(format_cell(final, m["key"]) for m in r["metrics"]) + " |",
        f"| same network, {r.get('baseline', 'random init')} | "
        + " | ".join(format_cell(init, m["key"]) for m in r["metrics"])
        + " |",
        *(
            f"| {label} | " + " | ".join(format_cell(row, m["key"]) for m in r["metrics"]) + " |"
            for label, row in (r.get("references") or {}).items()
        ),
        "",
        r["protocol"],
        "",
    ]
    for file, caption in plots:
        lines += [f"## {caption}", "", f"![{file}]({file})", ""]
    path = run_dir / "report.md"
    write_atomic(path, "\n".join(lines))
    return path


def time_line(shares: dict[str, Any]) -> str:
    """``"; of it: waiting for data 3%, steps 90%, ..."`` from ``results["time"]`` (empty if unmeasured)."""
    if "data_wait" not in shares:
        return ""
    parts = [("waiting for data", "data_wait"), ("steps", "step"), ("kNN monitor", "monitor"), ("other", "other")]
    spent = ", ".join(f"{name} {shares[key]:.0%}" for name, key in parts if shares.get(key, 0) >= 0.005)
    return f"; of it: {spent}; final evaluation {shares['evaluation_seconds']:.0f} s"


def epochs_line(results: dict[str, Any]) -> str:
    """``"30 epochs"``, or ``"7 of 30 epochs (unfinished)"`` for a run stopped early."""
    planned, trained = results["epochs"], results.get("epochs_trained", results["epochs"])
    return f"{planned} epochs" if trained >= planned else f"{trained} of {planned} epochs (unfinished)"


def near_chance_warning(metric: str, value: float | None, classes: int) -> str | None:
    """A warning line when a classification accuracy (percent) ends within 1.5x of chance
    (``100 / classes``), the level an untrained or diverged model sits at; None otherwise."""
    if value is None or classes < 2:
        return None
    chance = 100.0 / classes
    if value >= 1.5 * chance:
        return None
    return (
        f"{metric} is {value:.1f}%, near chance ({chance:.1f}% for {classes} classes): the model has not learnt "
        "the task yet; train longer (optim.epochs / federation.rounds) or check the learning rate"
    )
