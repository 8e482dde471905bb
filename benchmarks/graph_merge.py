"""Merge the per-process accuracy files of ``graph_accuracy_gpu.sh`` into ``results/graph.json``.

Run:  python benchmarks/graph_merge.py OUT/*/graph_accuracy_partial.json --machine "NVIDIA H200"
Then: python benchmarks/graph.py --data-root ../shared/data --skip-accuracy   (adds the CPU speed section)
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
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    accuracy: dict[str, list[dict]] = {}
    for path in args.partials:
        accuracy.update(json.loads(path.read_text()))
    command = "benchmarks/graph_accuracy_gpu.sh DATA_ROOT OUT && python benchmarks/graph_merge.py OUT/*/graph_accuracy_partial.json"
    report = {"accuracy": accuracy, "accuracy_command": command, "accuracy_machine": args.machine}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "graph.json").write_text(json.dumps({**report, "command": command, "machine": args.machine}, indent=2))
    print({k: len(v) for k, v in accuracy.items()})


if __name__ == "__main__":
    main()
