"""FedAvg vs FedProx vs MOON on the CIFAR-10 copy with Flower's simulation.

Run:  python benchmarks/federated_cifar10.py --data-root ../shared/data          (about 5 min on 2 cores)
      python benchmarks/federated_cifar10.py --data-root ../shared/data --rounds 2 --train-subset 2000   (smoke)

Protocol (``moon.md`` §8 and §10, CPU-sized): 10 parties, Dirichlet beta = 0.5 over a stratified
training subset, the paper's per-round local work per sample (E = 10 local epochs, batch 64,
SGD lr 0.01 momentum 0.9 wd 1e-5), fewer rounds; MOON mu = 5, tau = 0.5; FedProx mu = 0.01;
the simple CNN with the 256-d projection head for every algorithm; the same seed, initial
weights and partition for all three; global test accuracy on a stratified 2,000-image test
subset after every round. This is ``contrastkit federate moon-cifar10`` with those overrides.
Round wall time: median over rounds 2.. (round 1 also starts the simulation's workers; the
median, so that a few rounds slowed by other work on the machine do not move it).
``--from-run RUN_DIR`` writes the report of a finished run folder again without training.
Results: ``benchmarks/results/federated_cifar10.{json,md}`` and the run folder's plots.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from contrastkit._allocator import ENV as ALLOCATOR_ENV
from contrastkit.config import apply_overrides, load_recipe
from contrastkit.federated.run import federate, median_round_seconds

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--local-epochs", type=int, default=10)
    parser.add_argument("--train-subset", type=int, default=10000)
    parser.add_argument("--test-subset", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--beta", type=float, default=0.5, help="Dirichlet concentration of the label skew")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--from-run",
        type=Path,
        metavar="RUN_DIR",
        help="write the report of an existing run folder (runs/bench-federated/moon-cifar10/...) without training",
    )
    parser.add_argument(
        "--cold-heap", action="store_true", help="leave glibc's heap settings alone (the library's default)"
    )
    args = parser.parse_args()
    if not args.cold_heap:  # the timings in docs/federated.md were taken with the parties' heap kept warm
        os.environ[ALLOCATOR_ENV] = "1"
    overrides = [
        f"federation.rounds={args.rounds}",
        f"federation.local_epochs={args.local_epochs}",
        f"data.train_subset={args.train_subset}",
        f"data.test_subset={args.test_subset}",
        f"trainer.seed={args.seed}",
        f"federation.beta={args.beta}",
    ]
    command = (
        f"python benchmarks/federated_cifar10.py --data-root {args.data_root} --rounds {args.rounds} "
        f"--local-epochs {args.local_epochs} --train-subset {args.train_subset} --test-subset {args.test_subset} "
        f"--seed {args.seed}"
        + (f" --beta {args.beta}" if args.beta != 0.5 else "")
        + (f" --out {args.out}" if args.out != RESULTS else "")
    )
    if args.from_run:
        results = json.loads((args.from_run / "results.json").read_text())
        command = results["command"]
    else:
        results = federate(
            apply_overrides(load_recipe("moon-cifar10"), overrides),
            data_root=args.data_root,
            runs_dir="runs/bench-federated",
            command=command,
        )
    run = Path(results["run_dir"])
    histories = {a: json.loads((run / f"rounds_{a}.json").read_text()) for a in results["final_accuracy"]}
    round_seconds = {a: median_round_seconds(h) for a, h in histories.items()}
    data = yaml.safe_load((run / "recipe.yaml").read_text())["data"]
    rounds, local_epochs = results["rounds"], results["local_epochs"]
    train_subset, test_subset = data["train_subset"], data["test_subset"]
    report: dict[str, Any] = {
        "command": command,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "results": results,
        "median_round_seconds": round_seconds,
        "per_round_accuracy": {a: [r["accuracy"] for r in h] for a, h in histories.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "federated_cifar10.json").write_text(json.dumps(report, indent=2))
    shutil.copy(run / "accuracy.png", args.out / "federated_cifar10_accuracy.png")
    fedavg_round = round_seconds["fedavg"]
    lines = [
        "# FedAvg vs FedProx vs MOON on the CIFAR-10 copy (Flower simulation)",
        "",
        f"Command: `{command}`  ",
        f"Date: {report['date']}."
        + (f" Report written again from the run folder `{run}` (`--from-run`)." if args.from_run else ""),
        "",
        f"{results['parties']} parties, Dirichlet beta {results['beta']} over a stratified {train_subset}-image "
        f"training subset (party sizes {min(results['party_sizes'])}..{max(results['party_sizes'])}), "
        f"{local_epochs} local epochs per round, {rounds} rounds, same seed / initial weights / partition "
        f"for every algorithm; accuracy on a stratified {test_subset}-image test subset.",
        "",
        "| algorithm | final accuracy | best accuracy | median round (s, rounds 2..) | round time vs FedAvg |",
        "|---|---:|---:|---:|---:|",
    ]
    for a in results["final_accuracy"]:
        sec = round_seconds[a]
        ratio = f"{sec / fedavg_round:.2f}x" if sec and fedavg_round else "—"
        lines.append(
            f"| {a} | {results['final_accuracy'][a]:.2f} | {results['best_accuracy'][a]:.2f} | "
            f"{sec or 0:.1f} | {ratio} |"
        )
    final = results["final_accuracy"]
    moon_sec, avg_sec = round_seconds.get("moon"), round_seconds.get("fedavg")
    if "moon" in final and "fedavg" in final:
        lines += [
            "",
            f"- MOON above FedAvg at equal rounds: **{'holds' if final['moon'] > final['fedavg'] else 'does not hold'}** "
            f"({final['moon']:.2f} vs {final['fedavg']:.2f} after {rounds} rounds, one seed).",
        ]
    if moon_sec and avg_sec:
        lines.append(
            f"- MOON round / FedAvg round: **{moon_sec / avg_sec:.2f}x** (target < 1.5x). A MOON step is FedAvg's "
            "forward + backward plus no-grad forwards of the global and previous models, run stacked as one network "
            "(`federated/frozen.py`), and the model-contrastive term; a round also evaluates and aggregates, which "
            "costs every algorithm the same. Per-batch breakdown: `python benchmarks/moon_step.py` (`moon_step.md`)."
        )
    lines += [
        "",
        "Accuracy per round:",
        "",
        "| round | " + " | ".join(histories) + " |",
        "|---:|" + "---:|" * len(histories),
    ]
    for i in range(max(len(h) for h in histories.values())):
        cells = [f"{h[i]['accuracy']:.2f}" if i < len(h) else "—" for h in histories.values()]
        lines.append(f"| {i} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "![accuracy per round](federated_cifar10_accuracy.png)",
        "",
        "Paper (full scale: 50k images, 100 rounds): MOON 69.1, FedAvg 66.3, FedProx 66.9; Flower's "
        "reproduction MOON 70.71.",
        "",
    ]
    (args.out / "federated_cifar10.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
