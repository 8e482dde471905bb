"""Does the SVM solver move the graph-level score? Primal (ours) against the official dual solver.

Run:  python benchmarks/graph_svm_solvers.py --data-root ../shared/data --dataset ptc_mr   (about 8 min)

The official code scores graph embeddings with ``GridSearchCV(LinearSVC())``, whose default dual
coordinate descent stops at ``max_iter`` for large ``C`` and then depends on its random coordinate
order. ``contrastkit.evaluation.svm_graph_classification`` solves the same objective in the primal
(deterministic). This scores the same embeddings both ways: the randomly initialised MVGRL encoder of
each seed (no training, so only the solver differs), the same outer folds, and the dual solver with
``--dual-orders`` random coordinate orders (``svm_graph_classification(..., dual=True)``). Results: ``benchmarks/results/graph_svm_solvers_<dataset>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import torch

from contrastkit.data.graphs import load_graph_dataset
from contrastkit.evaluation.graph import svm_graph_classification
from contrastkit.methods.mvgrl_graph import MVGRLGraph

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--dataset", default="ptc_mr", choices=["mutag", "ptc_mr", "imdb-binary"])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--dual-orders", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*converge.*")
    start = time.perf_counter()
    data = load_graph_dataset(args.dataset, args.data_root)
    rows = []
    for seed in args.seeds:
        torch.manual_seed(seed)
        embeddings = MVGRLGraph(data, layers=args.layers, train_encoders=False, seed=seed).embed()
        primal = svm_graph_classification(embeddings, data.labels, seed=seed)[0]
        dual = [
            svm_graph_classification(embeddings, data.labels, seed=seed, dual=True, dual_order=order)[0]
            for order in range(args.dual_orders)
        ]
        rows.append({"seed": seed, "primal": primal, "dual": dual})
        print(rows[-1], flush=True)
    command = (
        f"python benchmarks/graph_svm_solvers.py --data-root DATA_ROOT --dataset {args.dataset} --layers {args.layers}"
        f" --seeds {' '.join(map(str, args.seeds))} --dual-orders {args.dual_orders}"
    )
    report = {
        "command": command,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_minutes": (time.perf_counter() - start) / 60,
        "rows": rows,
    }
    lines = [
        f"# Primal vs dual LinearSVC on {args.dataset} (random-init MVGRL, {args.layers} layers)",
        "",
        f"Command: `{command}`  ",
        f"Date: {report['date']}; wall time {report['wall_minutes']:.0f} min.",
        "",
        "10-fold CV accuracy, C grid-searched inside the folds; the same embeddings and outer folds per seed.",
        "",
        "| seed | primal (ours) | dual (official), one per coordinate order |",
        "|---:|---:|---|",
        *(f"| {r['seed']} | {r['primal']:.2f} | {', '.join(f'{d:.2f}' for d in r['dual'])} |" for r in rows),
        "",
        f"Mean: primal {statistics.mean(r['primal'] for r in rows):.2f}, "
        f"dual {statistics.mean(d for r in rows for d in r['dual']):.2f}.",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"graph_svm_solvers_{args.dataset}.json").write_text(json.dumps(report, indent=2))
    (args.out / f"graph_svm_solvers_{args.dataset}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
