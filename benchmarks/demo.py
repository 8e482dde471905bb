"""The demo's claim over pretraining seeds: ``make demo`` trains one seed of ``moco-hcl-digits``
and reports the gain over the same network at random initialisation with few labels; this runs
that recipe for several seeds (each seed draws new initial weights, new views and new labelled
subsets) and writes the gain's mean and spread.

Run:  python benchmarks/demo.py                       (seeds 0 1 2, about 1 minute each on 2 cores)
      python benchmarks/demo.py --seeds 0 --epochs 1  (smoke)
Results: ``benchmarks/results/demo.{json,md}``; the README quotes the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from contrastkit.config import apply_overrides, load_recipe
from contrastkit.evaluation.low_label import few_label_key
from contrastkit.pipeline.run import train

RESULTS = Path(__file__).parent / "results"
RECIPE = "moco-hcl-digits"


def _mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {std:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs (smoke passes)")
    parser.add_argument("--runs-dir", default="runs/bench-demo")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    runs = []
    for seed in args.seeds:
        overrides = [f"trainer.seed={seed}"] + ([f"optim.epochs={args.epochs}"] if args.epochs else [])
        raw = apply_overrides(load_recipe(RECIPE), overrides)
        print(f"== {RECIPE} seed {seed}", flush=True)
        result = train(raw, runs_dir=args.runs_dir, command=f"python benchmarks/demo.py --seeds {seed}", progress=False)
        runs.append({"seed": seed, "final": result["final"], "random_init": result["random_init"]})
        args.out.mkdir(parents=True, exist_ok=True)
        write(args, runs, result["metrics"])


def write(args: argparse.Namespace, runs: list[dict[str, Any]], metrics: list[dict[str, str]]) -> None:
    report = {
        "recipe": RECIPE,
        "command": "python benchmarks/demo.py" + (f" --epochs {args.epochs}" if args.epochs else ""),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "runs": runs,
    }
    (args.out / "demo.json").write_text(json.dumps(report, indent=2))
    seeds = ", ".join(str(r["seed"]) for r in runs)
    lines = [
        f"# `make demo` over pretraining seeds ({RECIPE})",
        "",
        f"`{report['command']}` — {report['date']}, seeds {seeds}. Mean ± std over the seeds of each seed's",
        "number; a few-label number of one seed is itself the mean over its 10 draws of the labelled images.",
        "",
        "| metric | trained | random init | gain (points) |",
        "|---|---:|---:|---:|",
    ]
    for m in metrics:
        key = m["key"]
        trained = [r["final"][key] for r in runs if r["final"].get(key) is not None]
        init = [r["random_init"][key] for r in runs if (r["random_init"] or {}).get(key) is not None]
        if not trained or len(init) != len(trained):
            continue
        gains = [t - i for t, i in zip(trained, init, strict=True)]
        lines.append(f"| {m['label']} | {_mean_std(trained)} | {_mean_std(init)} | {_mean_std(gains)} |")
    low = few_label_key(0.01)
    per_seed = ", ".join(f"{r['final'][low] - r['random_init'][low]:+.1f}" for r in runs if low in r["final"])
    lines += ["", f"Gain at 1% of the labels, per seed: {per_seed}.", ""]
    (args.out / "demo.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
