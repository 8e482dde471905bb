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

import time
from typing import Any

from harness import ArmBenchmark, arm_mean, arm_rows, finish, header, holds, new_report

BENCH = ArmBenchmark(
    script="ccl",
    recipe="ccl-synthetic",
    runs_dir="runs/bench-ccl",
    seeds=[0, 1, 2, 3, 4],
    arms={
        "(1) CE only": ["method.teachers=none"],
        "(2) CE + direct SNCE to audio": ["method.teachers=audio", "method.direct=true"],
        "(3) CCL(A)": ["method.teachers=audio"],
        "(4) CCL(I)": ["method.teachers=image"],
        "(5) CCL(AI), w = 0.5": ["method.teachers=both", "method.loss_weight=0.5"],
    },
)
ARMS = BENCH.arms
KEYS = ("student_top1", "student_retrieval_r1", "gap_classes_top1", "other_classes_top1")


def markdown(report: dict[str, Any]) -> str:
    runs = report["accuracy"]
    lines = [
        *header("CCL on seeded clips with image and audio teachers", report),
        "| arm | student top-1 | retrieval R@1 | top-1, gap classes 5-9 | top-1, classes 0-4 |",
        "|---|---:|---:|---:|---:|",
        *arm_rows(runs, KEYS),
    ]
    names = list(ARMS)
    a1, a2, a3, a4, a5 = (arm_mean(runs, name, "student_top1") for name in names)
    g2, g3 = arm_mean(runs, names[1], "gap_classes_top1"), arm_mean(runs, names[2], "gap_classes_top1")
    lines += [
        "",
        "Expected (card §6): (5) >= (4) > (1) on top-1; (3) >= (2) on the gap classes. Measured (means over seeds):",
        f"- (5) {a5:.2f} >= (4) {a4:.2f}: {holds(a5 >= a4)}",
        f"- (4) {a4:.2f} > (1) {a1:.2f}: {holds(a4 > a1)}",
        f"- gap classes: (3) {g3:.2f} >= (2) {g2:.2f}: {holds(g3 >= g2)}",
        f"- for reference, (2) and (3) overall: {a2:.2f}, {a3:.2f}",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = BENCH.parser(__doc__.splitlines()[0], merge_only=True)
    args = parser.parse_args()
    start = time.time()
    command = BENCH.command(parser, args)
    if args.merge_only:
        args.seeds = []
    report = new_report(command, args.seeds)
    report["accuracy"] = BENCH.run_arms(args) if args.seeds and not args.skip_accuracy else {}
    finish(report, args, "ccl" if not args.epochs else "ccl_smoke", markdown, start)


if __name__ == "__main__":
    main()
