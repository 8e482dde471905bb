"""``contrastkit federate``: one Flower simulation that trains every algorithm of a recipe in turn
(``federated.simulation``), one run folder for all of them.

Every algorithm starts from the same seed, initial weights and Dirichlet partition. The run
folder holds the resolved recipe, ``metrics.csv`` (algorithm, round, accuracy, loss, seconds,
failed and rejected parties), ``clients.csv`` (size and label histogram of every party),
``report.md``, ``accuracy.png`` (accuracy per round, one line per algorithm) and
``clients.png`` (label histograms).
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402
from pydantic import Field, ValidationError, field_validator, model_validator  # noqa: E402

from contrastkit._files import write_atomic
from contrastkit.config import RecipeError, _explain, _Strict, check_run_name  # noqa: E402
from contrastkit.federated.partition import label_histograms  # noqa: E402
from contrastkit.federated.simulation import FlowerRunError, simulate
from contrastkit.pipeline.environment import environment
from contrastkit.pipeline.report import near_chance_warning

__all__ = ["FederatedRecipe", "federate", "settings_for", "validate_federated"]

Algorithm = Literal["fedavg", "fedprox", "moon"]


class FedData(_Strict):
    dataset: Literal["digits", "cifar10"] = "digits"
    root: str | None = None
    image_size: int = Field(16, gt=0)
    train_subset: int | None = Field(None, gt=0)
    test_subset: int | None = Field(None, gt=0)


class FedModel(_Strict):
    backbone: Literal["moon_cnn", "convnet_small", "resnet18", "resnet34", "resnet50"] = "moon_cnn"
    width: int | None = Field(None, gt=0)
    proj_dim: int = Field(256, gt=0)


class Federation(_Strict):
    num_parties: int = Field(10, ge=1)
    beta: float = Field(0.5, gt=0)
    min_size: int = Field(10, ge=1)
    rounds: int = Field(10, ge=1)
    local_epochs: int = Field(1, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-5, ge=0)
    fraction: float = Field(1.0, gt=0, le=1)
    algorithms: list[Algorithm] = ["fedavg", "fedprox", "moon"]
    prox_mu: float = Field(0.01, ge=0)
    moon_mu: float = Field(5.0, ge=0)
    temperature: float = Field(0.5, gt=0)
    moon_buffer: int = Field(1, ge=1)
    round_timeout: float = Field(3600.0, gt=0)


class Faults(_Strict):
    fail: list[int] = []
    corrupt: list[int] = []
    corrupt_mode: Literal["nan", "shape"] = "nan"
    at_round: int = Field(1, ge=1)


class FedTrainer(_Strict):
    seed: int = 0
    client_cpus: float = Field(1.0, gt=0)
    threads: int = Field(1, ge=1)


class FederatedRecipe(_Strict):
    name: str
    description: str = ""
    data: FedData = FedData()
    model: FedModel = FedModel()
    federation: Federation = Federation()
    faults: Faults = Faults()
    trainer: FedTrainer = FedTrainer()

    @field_validator("name")
    @classmethod
    def _one_component(cls, name: str) -> str:
        return check_run_name(name)

    @model_validator(mode="after")
    def _faults_name_parties(self) -> FederatedRecipe:
        n = self.federation.num_parties
        for section in ("fail", "corrupt"):
            for pid in getattr(self.faults, section):
                if not 0 <= pid < n:
                    raise ValueError(f"faults.{section} names party {pid} but there are {n} parties (ids 0-{n - 1})")
        return self


def validate_federated(raw: dict[str, Any]) -> FederatedRecipe:
    try:
        return FederatedRecipe.model_validate(raw)
    except ValidationError as err:
        raise RecipeError(f"recipe '{raw.get('name', '?')}': {_explain(err, raw, FederatedRecipe)}") from None


def mu_of(recipe: FederatedRecipe, algorithm: str) -> float:
    """The weight of an algorithm's extra local term: none for FedAvg, FedProx's proximal mu, MOON's mu."""
    f = recipe.federation
    return {"fedavg": 0.0, "fedprox": f.prox_mu, "moon": f.moon_mu}[algorithm]


def settings_for(
    recipe: FederatedRecipe, algorithm: str, data_root: str | None, results_file: Path | None
) -> dict[str, Any]:
    """The flat Flower run config of one algorithm."""
    f, d = recipe.federation, recipe.data
    mu = mu_of(recipe, algorithm)
    return {
        "dataset": d.dataset,
        "data-root": str(data_root or d.root or os.environ.get("CONTRASTKIT_DATA", "")),
        "image-size": d.image_size,
        "train-subset": d.train_subset or 0,
        "test-subset": d.test_subset or 0,
        "seed": recipe.trainer.seed,
        "num-parties": f.num_parties,
        "dirichlet-beta": f.beta,
        "min-size": f.min_size,
        "backbone": recipe.model.backbone,
        "width": recipe.model.width or 0,
        "proj-dim": recipe.model.proj_dim,
        "algorithm": algorithm,
        "rounds": f.rounds,
        "local-epochs": f.local_epochs,
        "batch-size": f.batch_size,
        "lr": f.lr,
        "momentum": f.momentum,
        "weight-decay": f.weight_decay,
        "mu": mu,
        "temperature": f.temperature,
        "moon-buffer": f.moon_buffer,
        "fraction": f.fraction,
        "round-timeout": f.round_timeout,
        "fault-fail": ",".join(map(str, recipe.faults.fail)),
        "fault-corrupt": ",".join(map(str, recipe.faults.corrupt)),
        "fault-corrupt-mode": recipe.faults.corrupt_mode,
        "fault-round": recipe.faults.at_round,
        "threads": recipe.trainer.threads,
        "results-file": str(results_file or ""),
    }


def federate(
    raw: dict[str, Any],
    *,
    data_root: str | None = None,
    runs_dir: str | Path = "runs",
    command: str = "",
    quiet: bool = False,
) -> dict[str, Any]:
    """Simulate every algorithm of a federated recipe; returns the results (also in the run folder).
    ``quiet``: no header or line per round on the console."""
    from contrastkit.federated.apps import load_data

    recipe = validate_federated(raw)
    run_dir = Path(runs_dir) / recipe.name / datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / "recipe.yaml", yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False))
    base = settings_for(recipe, "fedavg", data_root, None)
    data = load_data(base)
    hist = label_histograms(data.splits.train_labels, data.parts, data.splits.num_classes)
    _write_clients(run_dir, hist)
    algorithms = recipe.federation.algorithms
    files: dict[str, Path] = {a: run_dir / f"rounds_{a}.json" for a in algorithms}
    settings = settings_for(recipe, algorithms[0], data_root, None)
    settings.update(
        {
            "algorithms": ",".join(algorithms),
            "mus": ",".join(str(mu_of(recipe, a)) for a in algorithms),
            "results-file": "rounds_{algorithm}.json",  # inside the run folder: see federated.simulation
            "announce": not quiet,
            "quiet": quiet,
        }
    )
    start = time.perf_counter()
    simulate(run_dir, settings, recipe.federation.num_parties, recipe.trainer.client_cpus, quiet)
    simulation_seconds = time.perf_counter() - start
    if not any(f.exists() for f in files.values()):
        raise FlowerRunError(f"the Flower simulation recorded no round; see {run_dir / 'flower.log'}")
    histories: dict[str, list[dict[str, Any]]] = {
        a: json.loads(f.read_text()) if f.exists() else [] for a, f in files.items()
    }
    seconds = {a: sum(r["seconds"] for r in h) for a, h in histories.items()}
    _write_metrics(run_dir, histories)
    _plot_accuracy(run_dir, histories)
    results = {
        "recipe": recipe.name,
        "description": recipe.description,
        "data": data.splits.source,
        "parties": recipe.federation.num_parties,
        "beta": recipe.federation.beta,
        "rounds": recipe.federation.rounds,
        "local_epochs": recipe.federation.local_epochs,
        "seed": recipe.trainer.seed,
        "command": command or f"contrastkit federate {recipe.name}",
        "wall_seconds": seconds,
        "simulation_seconds": simulation_seconds,
        "final_accuracy": {a: (h[-1]["accuracy"] if h else None) for a, h in histories.items()},
        "best_accuracy": {a: (max(r["accuracy"] for r in h) if h else None) for a, h in histories.items()},
        "median_round_seconds": {a: median_round_seconds(h) for a, h in histories.items()},
        "failed": {a: {r["round"]: r.get("failed") for r in h if r.get("failed")} for a, h in histories.items()},
        "rejected": {a: {r["round"]: r.get("rejected") for r in h if r.get("rejected")} for a, h in histories.items()},
        "party_sizes": hist.sum(1).tolist(),
        "run_dir": str(run_dir),
    }
    results["environment"] = environment()
    finals: dict[str, float | None] = {a: (h[-1]["accuracy"] if h else None) for a, h in histories.items()}
    warnings = [
        w
        for a, final in finals.items()
        if (w := near_chance_warning(f"{a} final accuracy", final, data.splits.num_classes))
    ]
    if warnings:
        results["warnings"] = warnings
    write_atomic(run_dir / "results.json", json.dumps(results, indent=2))
    _write_report(run_dir, results, hist)
    return results


def median_round_seconds(history: list[dict[str, Any]]) -> float | None:
    """Median wall time of rounds 2.. (round 1 also pays for starting the simulation's workers;
    the median, because a few rounds slowed by other work on the machine would move a mean)."""
    rounds = [r["seconds"] for r in history if r["round"] > 1]
    return statistics.median(rounds) if rounds else None


def _write_clients(run_dir: Path, hist: Any) -> None:
    with open(run_dir / "clients.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["partition", "size", *[f"class_{c}" for c in range(hist.shape[1])]])
        for pid, row in enumerate(hist.tolist()):
            writer.writerow([pid, sum(row), *row])
    fig, ax = plt.subplots(figsize=(6, 0.35 * hist.shape[0] + 1.2))
    left = [0] * hist.shape[0]
    cmap = plt.get_cmap("tab10")
    for c in range(hist.shape[1]):
        ax.barh(range(hist.shape[0]), hist[:, c].tolist(), left=left, color=cmap(c % 10), label=str(c))
        left = [a + b for a, b in zip(left, hist[:, c].tolist())]
    ax.set_yticks(range(hist.shape[0]))
    ax.set_ylabel("party")
    ax.set_xlabel("training samples by class")
    ax.legend(ncol=min(10, hist.shape[1]), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    fig.tight_layout()
    fig.savefig(run_dir / "clients.png", dpi=120)
    plt.close(fig)


def _write_metrics(run_dir: Path, histories: dict[str, list[dict[str, Any]]]) -> None:
    with open(run_dir / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["algorithm", "round", "accuracy", "loss", "seconds", "failed", "rejected"])
        for algorithm, history in histories.items():
            for r in history:
                writer.writerow(
                    [
                        algorithm,
                        r["round"],
                        r["accuracy"],
                        r["loss"],
                        r["seconds"],
                        "; ".join(r.get("failed", [])),
                        "; ".join(r.get("rejected", [])),
                    ]
                )


def _plot_accuracy(run_dir: Path, histories: dict[str, list[dict[str, Any]]]) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for algorithm, history in histories.items():
        ax.plot([r["round"] for r in history], [r["accuracy"] for r in history], "o-", ms=3, label=algorithm)
    ax.set_xlabel("round")
    ax.set_ylabel("global test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "accuracy.png", dpi=120)
    plt.close(fig)


def _write_report(run_dir: Path, r: dict[str, Any], hist: Any) -> None:
    lines = [
        f"# {r['recipe']}: federated",
        "",
        r["description"],
        "",
        f"- Data: {r['data']}; {r['parties']} parties, Dirichlet beta {r['beta']} (sizes {min(r['party_sizes'])}"
        f"..{max(r['party_sizes'])}); {r['rounds']} rounds x {r['local_epochs']} local epochs; seed {r['seed']}",
        f"- Reproduce: `{r['command']}`",
        "",
        *(f"> **Warning:** {w}\n" for w in r.get("warnings", [])),
        f"- One simulation ran every algorithm in turn: {r['simulation_seconds']:.0f} s in all, starting its "
        "workers included; an algorithm's wall time is the sum of its rounds.",
        "",
        "| algorithm | final accuracy | best accuracy | median round from round 2 (s) | wall (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for a in r["final_accuracy"]:
        final, best, sec = r["final_accuracy"][a], r["best_accuracy"][a], r["median_round_seconds"][a]
        fmt = lambda v, spec: "—" if v is None else format(v, spec)  # noqa: E731
        lines.append(
            f"| {a} | {fmt(final, '.2f')} | {fmt(best, '.2f')} | {fmt(sec, '.1f')} | {r['wall_seconds'][a]:.0f} |"
        )
    problems = [(a, rnd, "failed", x) for a, d in r["failed"].items() for rnd, xs in d.items() for x in xs]
    problems += [(a, rnd, "rejected", x) for a, d in r["rejected"].items() for rnd, xs in d.items() for x in xs]
    lines += ["", "## Parties that failed or were rejected", ""]
    lines += [f"- {a}, round {rnd}: {kind} — {x}" for a, rnd, kind, x in problems] or ["None."]
    lines += [
        "",
        "## Global accuracy per round",
        "",
        "![accuracy.png](accuracy.png)",
        "",
        "## Label histograms of the parties",
        "",
        "![clients.png](clients.png)",
        "",
    ]
    write_atomic(run_dir / "report.md", "\n".join(lines))
