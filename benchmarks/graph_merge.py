"""Merge per-process accuracy files (``graph_accuracy_gpu.sh``, ``graph.py --skip-speed``) into ``results/graph.json``.

Run:  python benchmarks/graph_merge.py OUT/*/graph_accuracy_partial.json --machine "NVIDIA H200"
Runs are merged per (dataset, seed); later files win. A speed section already in ``graph.json`` is kept and ``graph.md``
is rewritten; without one, add it with
``python benchmarks/graph.py --data-root ../shared/data --skip-accuracy``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("partials", nargs="+", type=Path)
    parser.add_argument("--machine", required=True, help="where the accuracy runs trained")
    parser.add_argument("--command", default=None, help="how the partial files were made (default: the GPU script)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    accuracy: dict[str, list[dict]] = {}
    for path in args.partials:  # runs are merged per (dataset, seed); a later file wins
        for key, runs in json.loads(path.read_text()).items():
            by_seed = {r["seed"]: r for r in accuracy.get(key, [])} | {r["seed"]: r for r in runs}
            accuracy[key] = [by_seed[seed] for seed in sorted(by_seed)]
    command = args.command or (
        "benchmarks/graph_accuracy_gpu.sh DATA_ROOT OUT && "
        "python benchmarks/graph_merge.py OUT/*/graph_accuracy_partial.json"
    )
    report = {"accuracy": accuracy, "accuracy_command": command, "accuracy_machine": args.machine}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "graph.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    merged = {**old, **report} if "speed" in old else {**report, "command": command, "machine": args.machine}
    path.write_text(json.dumps(merged, indent=2))
    if "speed" in merged:
        from graph import markdown  # the sibling benchmark script

        (args.out / "graph.md").write_text(markdown(merged))
    print({k: len(v) for k, v in accuracy.items()})


if __name__ == "__main__":
    main()
