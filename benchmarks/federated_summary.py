"""Seed summary of several ``federated_cifar10.py`` runs: FedAvg vs FedProx vs MOON.

Run:  python benchmarks/federated_summary.py benchmarks/results/federated_cifar10_beta0.1_seed0 \\
          benchmarks/results/federated_cifar10_beta0.1_seed1 --out benchmarks/results/federated_beta0.1_seeds.md

Reads each folder's ``federated_cifar10.json`` (one seed each, same protocol) and reports, per
algorithm, the final-round accuracy and the mean over the last ``--last`` rounds (per-round test
accuracy under strong label skew swings by several points from one round to the next), per seed
and as the mean over seeds. Round times are not summarised: compare them within one quiet run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any


def _load(folder: Path) -> dict[str, Any]:
    path = folder / "federated_cifar10.json"
    if not path.is_file():
        raise SystemExit(f"federated_summary: no federated_cifar10.json in {folder}")
    report: dict[str, Any] = json.loads(path.read_text())
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="result folders written with --out")
    parser.add_argument("--last", type=int, default=5, help="rounds averaged at the end")
    parser.add_argument("--out", type=Path, required=True, help="Markdown file to write")
    args = parser.parse_args()
    reports = [_load(folder) for folder in args.runs]
    protocols = {(r["results"]["beta"], r["results"]["rounds"], r["results"]["local_epochs"]) for r in reports}
    if len(protocols) != 1:
        raise SystemExit(f"federated_summary: the runs differ in (beta, rounds, local epochs): {sorted(protocols)}")
    beta, rounds, epochs = protocols.pop()
    algorithms = list(reports[0]["per_round_accuracy"])
    lines = [
        "# FedAvg vs FedProx vs MOON over seeds",
        "",
        f"Command: `python benchmarks/federated_summary.py {' '.join(sys.argv[1:])}`  ",
        "Runs: " + ", ".join("`" + r["command"] + "`" for r in reports) + ".",
        "",
        f"Dirichlet beta {beta}, {rounds} rounds, {epochs} local epochs, seeds "
        f"{', '.join(str(r['results']['seed']) for r in reports)}. Accuracy on the test subset: final round, "
        f"and the mean of the last {args.last} rounds.",
        "",
        "| algorithm | final, per seed | final, mean | last-rounds mean, per seed | last-rounds mean, mean |",
        "|---|---|---:|---|---:|",
    ]
    means: dict[str, float] = {}
    for algorithm in algorithms:
        finals = [r["per_round_accuracy"][algorithm][-1] for r in reports]
        tails = [statistics.mean(r["per_round_accuracy"][algorithm][-args.last :]) for r in reports]
        means[algorithm] = statistics.mean(tails)
        lines.append(
            f"| {algorithm} | {', '.join(f'{v:.2f}' for v in finals)} | {statistics.mean(finals):.2f} | "
            f"{', '.join(f'{v:.2f}' for v in tails)} | {means[algorithm]:.2f} |"
        )
    if "moon" in means and "fedavg" in means:
        verdict = "holds" if means["moon"] > means["fedavg"] else "does not hold"
        lines += [
            "",
            f"- MOON above FedAvg (last-{args.last}-rounds mean over seeds): **{verdict}** "
            f"({means['moon']:.2f} vs {means['fedavg']:.2f}).",
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
