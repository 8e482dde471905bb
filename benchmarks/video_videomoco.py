"""VideoMoCo's card protocol on generated moving-object videos: four arms, seeds, speed.

Run:  python benchmarks/video_videomoco.py --data-root ../shared/data              (arms x 3 seeds)
      python benchmarks/video_videomoco.py --data-root ../shared/data --seeds 0 --epochs 2 --train-subset 256
                                                                                  (a smoke pass)
      python benchmarks/video_videomoco.py --data-root ../shared/data --seeds 1 2 --skip-speed --out DIR
      python benchmarks/video_videomoco.py --data-root ../shared/data --skip-accuracy --merge A.json B.json
                                                   (seeds run apart, then merged with a fresh speed run)

Protocol (``videomoco.md`` §6, recipe ``videomoco-synthetic``): 8-direction moving-object videos
(CIFAR-10 textures with a data root holding CIFAR-10; backgrounds and textures drawn from a pool
of 8, dataset ``moving_objects_shared``, so appearance does not identify a video — with
``--dataset moving_objects`` every video has its own and instance discrimination needs no
motion), 16-frame clips of 32x32, the tiny 3D CNN, the same steps and seeds for every arm:

- (a) MoCo on clips: ``drop=none``, ``decay=1``;
- (b) + temporal decay ``t = 0.98``;
- (c) + random drop of 25% of the frames (the control the paper lacks), no decay;
- (d) VideoMoCo: adversarial drop by G + decay, D alone for the first 30% of epochs.

Each run is a ``contrastkit train`` run folder. Reported: the linear probe on clean test clips
and with 25% / 50% of the frames dropped at random, kNN, and the feature consistency, mean ±
std over seeds; the card's expected ordering ((d) loses less under dropping than (a), and (d) >=
(a) clean) is checked and reported as measured. Speed (same process, round-robin, median):
a VideoMoCo step (G's update and the encoder's) against a MoCo step on the same encoder and
batch, with the parts timed alone; the clip loader (decode from mp4, and read back from the
cache) in clips per second against what a training step consumes, decoding on one thread and
on every core; peak memory of each.
Results: ``benchmarks/results/video_videomoco.{json,md}`` (``_unique`` for ``moving_objects``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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
    method_step,
    new_report,
    paired,
    peak_mib,
    profile_lines,
    profile_ops,
    run_record,
    speed_table,
)

BENCH = ArmBenchmark(
    script="video_videomoco",
    recipe="videomoco-synthetic",
    runs_dir="runs/bench-video",
    arms={
        "(a) MoCo": ["method.drop=none", "method.decay=1.0"],
        "(b) MoCo + decay": ["method.drop=none", "method.decay=0.98"],
        "(c) MoCo + random drop": ["method.drop=random", "method.decay=1.0"],
        "(d) VideoMoCo (G + decay)": ["method.drop=adversarial", "method.decay=0.98"],
    },
    fixed=lambda args: [f"data.dataset={args.dataset}"],
)
ARMS = BENCH.arms
KEYS = ("linear_probe_top1", "linear_probe_drop25", "linear_probe_drop50", "knn_top1", "consistency_drop25")


def _recipe(arm: list[str], seed: int) -> dict[str, Any]:
    return BENCH.recipe_of(ARGS, arm, seed)


def collect_runs(folder: Path) -> dict[str, Any]:
    """The arms of ``ARGS.seeds`` from finished run folders under ``folder`` (each run's
    ``results.json`` records its command), for runs whose benchmark process did not get to write
    its report; only seeds with every arm finished are kept."""
    runs: dict[str, list[dict[str, Any]]] = {}
    expected = validate(_recipe([], 0))
    size = f"{expected.data.train_subset or 2000} train"
    for results_file in sorted(folder.glob("*/results.json")):
        results = json.loads(results_file.read_text())
        command = results.get("command", "")
        same_size = results.get("epochs") == expected.optim.epochs and size in results.get("data", "")
        if f"data.dataset={ARGS.dataset}" not in command or not same_size:  # e.g. smoke passes
            continue
        seed = next((int(w.split("=")[1]) for w in command.split() if w.startswith("trainer.seed=")), None)
        label = next((name for name, arm in ARMS.items() if all(f"--set {a}" in command for a in arm)), None)
        if seed in ARGS.seeds and label is not None:
            runs.setdefault(label, []).append(run_record(seed, results))
    complete = [s for s in ARGS.seeds if all(any(r["seed"] == s for r in runs.get(label, [])) for label in ARMS)]
    return {label: [r for r in rs if r["seed"] in complete] for label, rs in runs.items() if complete}


def run_speed() -> dict[str, Any]:
    """Steps on one batch of the recipe's size, outside Lightning, with manual optimisers."""
    from contrastkit.data.video_folders import decode_videos, default_decode_workers
    from contrastkit.pipeline.tasks import build_task
    from contrastkit.views.clips import adversarial_frame_drop

    torch.manual_seed(0)
    raw = _recipe(ARMS["(d) VideoMoCo (G + decay)"], 0)
    recipe = validate(raw)
    task = build_task(recipe, ARGS.data_root)
    video = task.method
    moco_raw = validate(_recipe(ARMS["(a) MoCo"], 0))
    moco = build_task(moco_raw, ARGS.data_root).method
    moco.load_state_dict(
        {k: v for k, v in video.state_dict().items() if not k.startswith("frame_scorer")}, strict=False
    )
    batch_size = recipe.data.batch_size
    clips = task.train.frames[:batch_size]
    opt_g = torch.optim.SGD(video.frame_scorer.parameters(), lr=0.03, momentum=0.9)
    opt_d = torch.optim.SGD([*video.backbone.parameters(), *video.projection.parameters()], lr=0.03, momentum=0.9)
    opt_m = torch.optim.SGD([*moco.backbone.parameters(), *moco.projection.parameters()], lr=0.03, momentum=0.9)

    moco_step = method_step(moco, clips, opt_m)

    x_q, x_k = video.views(clips)
    k = video.keys(x_k)[0]
    count = video.dropped_count(x_q.shape[2])

    encoder = [p for m in (video.backbone, video.projection) for p in m.parameters()]

    @contextmanager
    def encoder_frozen() -> Iterator[None]:  # G's turn in training: toggle_optimizer freezes the other player
        for p in encoder:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in encoder:
                p.requires_grad_(True)

    def generator_part() -> None:  # G forward, the two query forwards, the backward of G's loss to G
        with encoder_frozen():
            loss = video.generator_loss(x_q, k, count)
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()

    def videomoco_step() -> None:  # what VideoMoCo.step does per batch, with plain optimisers
        video.on_train_batch_start(None, 0)
        xq, xk = video.views(clips)
        key = video.keys(xk)[0]
        with encoder_frozen():
            loss_g = video.generator_loss(xq, key, count)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
        with torch.no_grad():
            scores = video.frame_scorer(xq)
        loss = video.criterion(video.query(adversarial_frame_drop(xq, scores, count)), key)
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()

    parts = {"MoCo step": moco_step, "VideoMoCo step": videomoco_step, "G's part alone": generator_part}
    medians = median_times(parts, ARGS.speed_repeats)
    profiles = {name: profile_ops(fn) for name, fn in parts.items()}
    step_clips_per_s = batch_size / medians["VideoMoCo step"]
    files = task.videos.train_files[: ARGS.loader_videos]
    labels = task.videos.train_labels[: ARGS.loader_videos]
    d = recipe.data
    workers = default_decode_workers()
    decode_s = {}
    for n in sorted({1, workers}):
        start = time.perf_counter()
        decoded = decode_videos(files, labels, frames=d.video_frames, size=d.image_size, workers=n)
        decode_s[n] = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as cache:
        decode_videos(files, labels, frames=d.video_frames, size=d.image_size, cache_dir=cache)
        start = time.perf_counter()
        decode_videos(files, labels, frames=d.video_frames, size=d.image_size, cache_dir=cache)
        cached_s = time.perf_counter() - start
    array_mib = decoded.frames.numel() / 2**20
    return {
        "batch": batch_size,
        "repeats": ARGS.speed_repeats,
        "median_s": medians,
        "videomoco_over_moco": medians["VideoMoCo step"] / medians["MoCo step"],
        "peak_mib": {
            "MoCo step": peak_mib(moco_step),
            "VideoMoCo step": peak_mib(videomoco_step),
            "G's part alone": peak_mib(generator_part),
        },
        "profile": profiles,
        "step_clips_per_s": step_clips_per_s,
        "loader_videos": len(files),
        "decode_workers": workers,
        "decode_videos_per_s": len(files) / decode_s[workers],
        "decode_one_thread_videos_per_s": len(files) / decode_s[1],
        "cache_videos_per_s": len(files) / cached_s,
        "decode_over_step": len(files) / decode_s[workers] / step_clips_per_s,
        "cache_over_step": len(files) / cached_s / step_clips_per_s,
        "decoded_array_mib": array_mib,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = header("VideoMoCo on generated moving-object videos", report)
    runs = report.get("accuracy")
    if runs:
        lines += [
            "| arm | probe clean | probe 25% dropped | probe 50% dropped | kNN | consistency (cos x 100) |",
            "|---|---:|---:|---:|---:|---:|",
            *arm_rows(runs, KEYS),
        ]
        a, d = "(a) MoCo", "(d) VideoMoCo (G + decay)"
        if runs.get(a) and runs.get(d):

            def drop_loss(r: dict[str, Any]) -> float:
                return r["final"]["linear_probe_top1"] - r["final"]["linear_probe_drop25"]

            loss_a = sum(map(drop_loss, runs[a])) / len(runs[a])
            loss_d = sum(map(drop_loss, runs[d])) / len(runs[d])
            clean_a, clean_d = arm_mean(runs, a, "linear_probe_top1"), arm_mean(runs, d, "linear_probe_top1")
            pairs = paired(runs[a], runs[d])
            fewer = sum(drop_loss(rd) < drop_loss(ra) for ra, rd in pairs)
            cleaner = sum(rd["final"]["linear_probe_top1"] >= ra["final"]["linear_probe_top1"] for ra, rd in pairs)
            lines += [
                "",
                "Expected (card §6): (d) loses less probe accuracy than (a) when 25% of the frames are dropped, and "
                "(d) >= (a) on clean clips. Measured (means; then seeds where it holds, paired by seed):",
                f"- loss under 25% drop: (d) {loss_d:.2f} vs (a) {loss_a:.2f} points — "
                f"{holds(loss_d < loss_a)} ({fewer}/{len(pairs)} seeds)",
                f"- clean probe: (d) {clean_d:.2f} vs (a) {clean_a:.2f} — "
                f"{holds(clean_d >= clean_a)} ({cleaner}/{len(pairs)} seeds)",
            ]
    speed = report.get("speed")
    if speed:
        title = f"Speed (one process, round-robin, median of {speed['repeats']}, batch {speed['batch']})"
        lines += speed_table(title, speed, "part")
        lines += [
            "",
            f"- VideoMoCo step / MoCo step: **{speed['videomoco_over_moco']:.2f}x** (target <= 1.8x).",
            f"- Loader: {speed['decode_videos_per_s']:.0f} videos/s decoded from mp4 on "
            f"{speed.get('decode_workers', 1)} threads "
            f"({speed['decode_over_step']:.1f}x what a step consumes, {speed['step_clips_per_s']:.0f} clips/s; "
            f"{speed.get('decode_one_thread_videos_per_s', speed['decode_videos_per_s']):.0f} videos/s on one), "
            f"{speed['cache_videos_per_s']:.0f} videos/s read back from the cache ({speed['cache_over_step']:.0f}x); "
            f"target >= 2x. The decoded array of those {speed['loader_videos']} videos takes "
            f"{speed['decoded_array_mib']:.1f} MiB (uint8). A run decodes each video once (threads, every core) "
            "and trains every epoch from the array.",
        ]
        lines += profile_lines(speed.get("profile", {}))
    return "\n".join(lines) + "\n"


def main() -> None:
    global ARGS
    parser = BENCH.parser(
        __doc__.splitlines()[0],
        data_root="a folder with cifar10/ for real textures (else noise)",
        subsets=True,
        speed=True,
    )
    parser.add_argument("--loader-videos", type=int, default=200)
    parser.add_argument(
        "--collect", type=Path, default=None, help="read the seeds' arms from finished run folders here"
    )
    parser.add_argument(
        "--dataset",
        default="moving_objects_shared",
        help="moving_objects_shared (backgrounds and textures from a pool of 8) or moving_objects (one per video)",
    )
    ARGS = parser.parse_args()
    start = time.time()
    report = new_report(BENCH.command(parser, ARGS), [] if ARGS.skip_accuracy else ARGS.seeds)
    if not ARGS.skip_speed:
        report["speed"] = run_speed()
        print(json.dumps(report["speed"], indent=2), flush=True)
    if ARGS.collect is not None:
        report["accuracy"] = collect_runs(ARGS.collect)
        report["seeds"] = sorted({r["seed"] for rs in report["accuracy"].values() for r in rs})
        report["collected_from"] = str(ARGS.collect)
        start -= sum(
            json.loads(Path(r["run"], "results.json").read_text())["train_seconds"]
            for rs in report["accuracy"].values()
            for r in rs
        )
    elif not ARGS.skip_accuracy:
        report["accuracy"] = BENCH.run_arms(ARGS)
    stem = "video_videomoco" if not (ARGS.epochs or ARGS.train_subset) else "video_videomoco_smoke"
    finish(report, ARGS, stem + ("_unique" if ARGS.dataset == "moving_objects" else ""), markdown, start)


ARGS: argparse.Namespace

if __name__ == "__main__":
    main()
