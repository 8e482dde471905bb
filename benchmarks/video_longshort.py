"""Long/short views' card protocol on generated appearance + motion-phase videos: the
decomposition against a single-representation SimCLR and two ablations; a real-content check;
speed.

Run:  python benchmarks/video_longshort.py --data-root ../shared/data                (arms x 3 seeds)
      python benchmarks/video_longshort.py --data-root ../shared/data --seeds 0 --epochs 1 --train-subset 128
                                                                                    (a smoke pass)
      python benchmarks/video_longshort.py ... --seeds 1 2 --skip-speed --out DIR, then --merge A.json B.json

Protocol (``longshort.md`` §6, recipe ``longshort-synthetic``): 64-frame videos of 32x32 with a
static appearance class and 4 motion phases (per-frame labels), the tiny 3D CNN (feature 64 =
32 stationary + 32 non-stationary), K = 4 short views, the same steps and seeds for every arm:

- long/short: ``L_stat + L_nons`` with the shuffled-aggregate negative;
- SimCLR: NT-Xent between two long views through one head on the whole feature (its "parts"
  are the two halves of one representation);
- without ``order_negative``;
- K = 1 (``L_nons`` then has the form of ``L_stat``: no decomposition pressure);
- + temporal negatives: our ``L_temp`` (``method.lambda_t=1``, not the card's; each short view
  must be told apart from its own video's other short views);
- the same with every short view circularly shifted by its own offset of up to 4 px
  (``method.short_shift=4``), so position no longer identifies a short view;
- the card's objective with colour jitter drawn per view, the crop still shared
  (``method.colour_per_view=true``), so colour statistics no longer pair a video's views. This
  is the recipe's default since it was measured; the other long/short arms keep the one shared
  colour draw they were run with (``method.colour_per_view=false``);
- the ``order_negative`` and K = 1 ablations again with colours drawn per view (the recipe's
  default), read against that arm.

``--arms 6`` runs only the last arm (indices in ``--help``); ``--merge`` joins result files.

Reported (frozen encoder, linear probes): clip classification of the appearance on h^s, h^n and
their concatenation (4 clips of 16 frames per video); per-frame phase segmentation from 8-frame
windows (frame accuracy on h^s, h^n and the whole feature; Edit and F1 on the whole feature);
temporal variance of h^s and h^n (% of total); mean ± std over seeds; the card's expectations
checked and reported as measured. Speed (same process, round-robin, median): a long/short step
against a single-view clip SimCLR step processing the same number of frames per video.
Results: ``benchmarks/results/video_longshort.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from contrastkit.config import validate
from harness import (
    ArmBenchmark,
    arm_mean,
    arm_rows,
    finish,
    header,
    holds,
    median_times,
    new_report,
    peak_mib,
    speed_table,
)
from video_common import real_content_lines, run_arms_with_real_content

SHARED = "method.colour_per_view=false"  # the first runs: one colour draw for all views of a video
BENCH = ArmBenchmark(
    script="video_longshort",
    recipe="longshort-synthetic",
    runs_dir="runs/bench-longshort",
    arms={
        "long/short (K=4, order negative)": [SHARED],
        "SimCLR, one representation": ["method.objective=simclr"],
        "without order_negative": [SHARED, "method.order_negative=false"],
        "K = 1": [SHARED, "method.short_views=1", "method.order_negative=false"],
        "+ temporal negatives (lambda_t = 1)": [SHARED, "method.lambda_t=1.0"],
        "+ temporal negatives, short views shifted (4 px)": [SHARED, "method.lambda_t=1.0", "method.short_shift=4"],
        "colours drawn per view": ["method.colour_per_view=true"],
        "colours per view, without order_negative": ["method.colour_per_view=true", "method.order_negative=false"],
        "colours per view, K = 1": [
            "method.colour_per_view=true",
            "method.short_views=1",
            "method.order_negative=false",
        ],
    },
)
ARMS = BENCH.arms
COLOUR = "colours drawn per view"
# the arm each ablation's segmentation gap is read against (the rest: the first long/short arm)
REFERENCE_OF = {"colours per view, without order_negative": COLOUR, "colours per view, K = 1": COLOUR}
DECOMPOSING = (
    "long/short (K=4, order negative)",
    "+ temporal negatives (lambda_t = 1)",
    "+ temporal negatives, short views shifted (4 px)",
    "colours drawn per view",
)
SIMCLR = "SimCLR, one representation"
KEYS = (
    "linear_probe_stationary",
    "linear_probe_nonstationary",
    "linear_probe_top1",
    "seg_frame_acc_stationary",
    "seg_frame_acc_nonstationary",
    "seg_frame_acc",
    "seg_edit",
    "seg_f1@25",
    "temporal_variance_stationary",
    "temporal_variance_nonstationary",
)
HEADER = "cls h^s | cls h^n | cls both | seg h^s | seg h^n | seg both | Edit | F1@25 | tvar h^s | tvar h^n"


def _recipe(arm: list[str], seed: int) -> dict[str, Any]:
    return BENCH.recipe_of(ARGS, arm, seed)


def run_accuracy() -> tuple[dict[str, Any], dict[str, Any]]:
    return run_arms_with_real_content(BENCH, ARGS)


def run_speed() -> dict[str, Any]:
    """One batch of the recipe's size outside Lightning: long/short (16 + 4 x 8 = 48 frames per
    video) against SimCLR on two 24-frame views (48 frames per video), same encoder, Adam."""
    from contrastkit.pipeline.tasks import build_task

    torch.manual_seed(0)
    recipe = validate(_recipe([], 0))
    task = build_task(recipe, ARGS.data_root)
    longshort = task.method
    simclr_recipe = validate(_recipe(["method.objective=simclr", "method.long_length=24", "method.long_stride=2"], 0))
    simclr = build_task(simclr_recipe, ARGS.data_root).method
    b = recipe.data.batch_size
    batch = {"input": task.train.frames[:b], "index": torch.arange(b)}
    opts = {m: torch.optim.Adam(m.parameters(), lr=1e-3) for m in (longshort, simclr)}

    def step(model: Any) -> None:
        loss = model.step(batch).loss
        opts[model].zero_grad(set_to_none=True)
        loss.backward()
        opts[model].step()

    contenders = {
        "SimCLR step (2 x 24 frames)": lambda: step(simclr),
        "long/short step (16 + 4 x 8)": lambda: step(longshort),
    }
    medians = median_times(contenders, ARGS.speed_repeats)
    names = list(contenders)
    return {
        "batch": b,
        "repeats": ARGS.speed_repeats,
        "median_s": medians,
        "longshort_over_simclr": medians[names[1]] / medians[names[0]],
        "peak_mib": {k: peak_mib(fn) for k, fn in contenders.items()},
    }


def markdown(report: dict[str, Any]) -> str:
    lines = header("Long/short views on generated appearance + motion-phase videos", report)
    runs = report.get("accuracy")
    if runs:
        lines += [
            "cls = appearance probe on clips (4 classes, chance 25%); seg = per-frame phase probe on 8-frame windows "
            "(4 phases, chance 25%); tvar = temporal variance within videos, % of the total.",
            "",
            f"| arm | {HEADER} |",
            "|---|" + "---:|" * len(KEYS),
            *arm_rows(runs, KEYS, report["seeds"]),
        ]

        def avg(label: str, key: str) -> float:
            return arm_mean(runs, label, key)

        baseline = list(DECOMPOSING)[0]
        for main_arm in [a for a in DECOMPOSING if a in runs]:
            checks = [
                (
                    "acc_cls(h^s) > acc_cls(h^n)",
                    avg(main_arm, "linear_probe_stationary"),
                    avg(main_arm, "linear_probe_nonstationary"),
                ),
                (
                    "acc_seg(h^n) > acc_seg(h^s)",
                    avg(main_arm, "seg_frame_acc_nonstationary"),
                    avg(main_arm, "seg_frame_acc_stationary"),
                ),
                (
                    "temporal variance h^n > h^s",
                    avg(main_arm, "temporal_variance_nonstationary"),
                    avg(main_arm, "temporal_variance_stationary"),
                ),
            ]
            if SIMCLR in runs:
                checks.append(
                    (
                        "acc_seg(h^n) > SimCLR's seg (whole feature)",
                        avg(main_arm, "seg_frame_acc_nonstationary"),
                        avg(SIMCLR, "seg_frame_acc"),
                    )
                )
            lines += ["", f"Expected (card §6), measured on `{main_arm}` (means over seeds):"]
            lines += [f"- {name}: {x:.2f} vs {y:.2f} — {holds(x > y)}" for name, x, y in checks]

        def gap(label: str) -> float:
            return avg(label, "seg_frame_acc_nonstationary") - avg(label, "seg_frame_acc_stationary")

        for label in [a for a in ARMS if a in runs and a not in (baseline, SIMCLR)]:
            reference = REFERENCE_OF.get(label, baseline)
            if reference in runs and reference != label:
                lines.append(f"- seg gap h^n - h^s, {label}: {gap(label):.2f} ({reference}: {gap(reference):.2f})")
    if report.get("real_content"):
        lines += real_content_lines(report["real_content"])
    speed = report.get("speed")
    if speed:
        title = f"Speed (one process, round-robin, median of {speed['repeats']}, batch {speed['batch']}, 48 frames per video)"
        lines += speed_table(title, speed)
        lines += ["", f"- long/short step / SimCLR step: **{speed['longshort_over_simclr']:.2f}x** (target <= 1.3x)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    global ARGS
    parser = BENCH.parser(
        __doc__.splitlines()[0],
        data_root="a folder with video/ for the real-content check",
        subsets=True,
        speed=True,
        choose_arms=True,
    )
    ARGS = parser.parse_args()
    start = time.time()
    report = new_report(BENCH.command(parser, ARGS), [] if ARGS.skip_accuracy else ARGS.seeds)
    if not ARGS.skip_speed:
        report["speed"] = run_speed()
        print(json.dumps(report["speed"], indent=2), flush=True)
    if not ARGS.skip_accuracy:
        report["accuracy"], report["real_content"] = run_accuracy()
    finish(report, ARGS, "video_longshort" if not ARGS.train_subset else "video_longshort_smoke", markdown, start)


ARGS: argparse.Namespace

if __name__ == "__main__":
    main()
