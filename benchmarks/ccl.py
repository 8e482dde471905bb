"""CCL's card protocol on seeded clips with image and audio teacher features: five arms over seeds.

Run:  python benchmarks/ccl.py                          (arms x 5 seeds)
      python benchmarks/ccl.py --seeds 0 --epochs 2     (a smoke pass)
      python benchmarks/ccl.py --seeds 1 2 --out DIR, then --merge-only --merge A.json B.json

Protocol (``ccl.md`` §6, recipe ``ccl-synthetic``): 10 classes = 5 shapes x 2 directions, noisy
8-frame clips of 32x32, 20 labelled training clips per class, 50 test clips per class; a 64-d
image teacher informative for every class; a 64-d audio teacher uninformative ("music") for
classes 5-9 and missing for 10% of the videos; the tiny 3D CNN student, the same steps and seeds:

- (1) CE only; (2) CE + direct alignment ``SNCE(f_v, f_A)``; (3) CCL(A); (4) CCL(I);
- (5) CCL(AI) with w = 0.5.

Reported: the student's top-1 on the test clips, retrieval R@1 with its features, top-1 on the
gap classes (5-9) and on the others, mean ± std over seeds; the card's expectations (5) >= (4) >
(1) on top-1 and (3) >= (2) on the gap classes, checked and reported as measured.
Results: ``benchmarks/results/ccl.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from contrastkit.config import apply_overrides, load_recipe
from contrastkit.pipeline.run import train
from video_common import mean_std, merge_runs

RESULTS = Path(__file__).parent / "results"
RUNS = "runs/bench-ccl"
ARMS = {
    "(1) CE only": ["method.teachers=none"],
    "(2) CE + direct SNCE to audio": ["method.teachers=audio", "method.direct=true"],
    "(3) CCL(A)": ["method.teachers=audio"],
    "(4) CCL(I)": ["method.teachers=image"],
    "(5) CCL(AI), w = 0.5": ["method.teachers=both", "method.loss_weight=0.5"],
}
KEYS = ("student_top1", "student_retrieval_r1", "gap_classes_top1", "other_classes_top1")


def _recipe(arm: list[str], seed: int) -> dict[str, Any]:
    raw = apply_overrides(load_recipe("ccl-synthetic"), [*arm, f"trainer.seed={seed}"])
    if ARGS.epochs:
        raw = apply_overrides(raw, [f"optim.epochs={ARGS.epochs}"])
    return raw


def run_accuracy() -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {}
    for seed in ARGS.seeds:
        for label, arm in ARMS.items():
            print(f"== {label} seed {seed}", flush=True)
            command = "contrastkit train ccl-synthetic " + " ".join(
                f"--set {a}" for a in [*arm, f"trainer.seed={seed}"]
            )
            results = train(_recipe(arm, seed), runs_dir=RUNS, command=command, progress=False)
            runs.setdefault(label, []).append(
                {
                    "seed": seed,
                    "final": results["final"],
                    "random_init": results["random_init"],
                    "run": results["run_dir"],
                }
            )
    return runs


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# CCL on seeded clips with image and audio teachers",
        "",
        *(f"Command: `{c}`  " for c in report.get("merged_from", [report["command"]])),
        f"Date: {report['date']}; seeds {report['seeds']}; wall time {report['wall_minutes']:.0f} min; "
        f"{report['machine']}.",
        "",
        "| arm | student top-1 | retrieval R@1 | top-1, gap classes 5-9 | top-1, classes 0-4 |",
        "|---|---:|---:|---:|---:|",
    ]
    runs = report["accuracy"]
    first = next(iter(runs.values()))
    lines.append("| random init | " + " | ".join(mean_std([r["random_init"][k] for r in first]) for k in KEYS) + " |")
    for label, rs in runs.items():
        lines.append(f"| {label} | " + " | ".join(mean_std([r["final"][k] for r in rs]) for k in KEYS) + " |")

    def avg(i: int, key: str) -> float:
        return statistics.mean(r["final"][key] for r in runs[list(ARMS)[i]])

    a1, a2, a3, a4, a5 = (avg(i, "student_top1") for i in range(5))
    g2, g3 = avg(1, "gap_classes_top1"), avg(2, "gap_classes_top1")
    lines += [
        "",
        "Expected (card §6): (5) >= (4) > (1) on top-1; (3) >= (2) on the gap classes. Measured (means over seeds):",
        f"- (5) {a5:.2f} >= (4) {a4:.2f}: {'holds' if a5 >= a4 else 'does not hold'}",
        f"- (4) {a4:.2f} > (1) {a1:.2f}: {'holds' if a4 > a1 else 'does not hold'}",
        f"- gap classes: (3) {g3:.2f} >= (2) {g2:.2f}: {'holds' if g3 >= g2 else 'does not hold'}",
        f"- for reference, (2) and (3) overall: {a2:.2f}, {a3:.2f}",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (smoke passes)")
    parser.add_argument("--merge", type=Path, nargs="+", default=[], help="earlier result files whose seeds to add")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--merge-only", action="store_true", help="train nothing: only join the --merge files")
    ARGS = parser.parse_args()
    if ARGS.merge_only:
        ARGS.seeds = []
    start = time.time()
    command = "python benchmarks/ccl.py"
    command += f" --seeds {' '.join(map(str, ARGS.seeds))}" if ARGS.seeds not in ([0, 1, 2, 3, 4], []) else ""
    command += " --merge-only" if ARGS.merge_only else ""
    command += f" --epochs {ARGS.epochs}" if ARGS.epochs else ""
    command += f" --merge {' '.join(map(str, ARGS.merge))}" if ARGS.merge else ""
    report: dict[str, Any] = {
        "command": command,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{torch.get_num_threads()} threads, torch {torch.__version__}",
        "seeds": list(ARGS.seeds),
        "accuracy": run_accuracy() if ARGS.seeds else {},
    }
    report["wall_minutes"] = (time.time() - start) / 60
    if ARGS.merge:
        merge_runs(report, [json.loads(f.read_text()) for f in ARGS.merge])
    stem = "ccl" if not ARGS.epochs else "ccl_smoke"
    ARGS.out.mkdir(parents=True, exist_ok=True)
    (ARGS.out / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str))
    text = markdown(report)
    (ARGS.out / f"{stem}.md").write_text(text)
    print(text)


ARGS: argparse.Namespace

if __name__ == "__main__":
    main()
