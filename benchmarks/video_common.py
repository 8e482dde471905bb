"""Pieces the video benchmarks share: same-process timing (round-robin medians), peak memory,
mean ± std, merging seed runs, and the real-content check on ``../shared/data/video``."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

REAL_VIDEOS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4")


def median_times(contenders: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds of each callable, run round-robin after one warm-up call each."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def peak_mib(fn: Callable[[], None]) -> float:
    """Peak of the tensor memory ``fn`` allocates (CPU profiler memory events), MiB."""
    with torch.profiler.profile(profile_memory=True) as prof:
        fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    level = peak = 0
    for _, nbytes in events:
        level += nbytes
        peak = max(peak, level)
    return peak / 2**20


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def random_init_row(runs: dict[str, list[dict[str, Any]]], keys: tuple[str, ...]) -> str:
    """The table row of the untrained encoders: one result per seed, from the first arm that ran
    that seed (the untrained encoder depends on the seed only)."""
    per_seed: dict[int, dict[str, float]] = {}
    for rs in runs.values():
        for r in rs:
            per_seed.setdefault(r["seed"], r["random_init"])
    cells = " | ".join(mean_std([init[k] for init in per_seed.values()]) for k in keys)
    return f"| random init (seeds {', '.join(map(str, sorted(per_seed)))}) | {cells} |"


def merge_runs(report: dict[str, Any], earlier: list[dict[str, Any]]) -> None:
    """Add the seeds of earlier result files to ``report`` (speed: this run's, else an earlier one's)."""
    report["merged_from"] = [e["command"] for e in earlier] + [report["command"]]
    runs = report.setdefault("accuracy", {})
    for e in earlier:
        for label, rs in e.get("accuracy", {}).items():
            runs.setdefault(label, []).extend(rs)
        report["seeds"] = sorted({*report["seeds"], *e["seeds"]})
        report["wall_minutes"] += e["wall_minutes"]
        for key in ("speed", "supervised"):
            if key not in report and key in e:
                report[key] = e[key]
        for label, check in e.get("real_content", {}).items():  # each arm's first file with one
            report.setdefault("real_content", {}).setdefault(label, check)
    for label, rs in runs.items():
        seeds = [r["seed"] for r in rs]
        if len(seeds) != len(set(seeds)):
            raise SystemExit(f"seed listed twice for {label}: {seeds}")
        rs.sort(key=lambda r: r["seed"])


@torch.no_grad()
def real_content_check(
    encoder: nn.Module,
    preprocess: Callable[[torch.Tensor], torch.Tensor],
    data_root: str | Path,
    *,
    size: int = 32,
    segments: int = 4,
    frames_per_segment: int = 8,
) -> dict[str, Any]:
    """On the four real clips: features of ``segments`` consecutive parts of each video (each
    ``frames_per_segment`` frames spread over the part, ``encoder`` on ``[N, C, T, H, W]``).

    Returns the mean cosine between parts of the same video and between parts of different
    videos (excluding the carphone pair, which is one content twice), whether the first holds
    above the second for every video, and whether the pristine and distorted carphone encodings
    are each other's nearest neighbour among the four whole-video features.
    """
    from contrastkit.data.video_io import probe, read_frames

    folder = Path(data_root) / "video"
    features, owners = [], []
    was = encoder.training
    encoder.eval()
    for v, name in enumerate(REAL_VIDEOS):
        path = folder / name
        count = probe(path).num_frames
        bounds = torch.linspace(0, count, segments + 1).long()
        for s in range(segments):
            index = torch.linspace(int(bounds[s]), int(bounds[s + 1]) - 1, frames_per_segment).round().long()
            clip = read_frames(path, index.tolist(), size=size)  # [T, H, W, 3], shorter side = size
            h, w = clip.shape[1:3]
            top, left = (h - size) // 2, (w - size) // 2
            clip = clip[:, top : top + size, left : left + size].permute(3, 0, 1, 2)[None]  # [1, 3, T, S, S]
            features.append(encoder(preprocess(clip)).float()[0])
            owners.append(v)
    encoder.train(was)
    z = F.normalize(torch.stack(features), dim=1)
    owner = torch.tensor(owners)
    sim = z @ z.t()
    same = (owner[:, None] == owner[None, :]) & ~torch.eye(len(owner), dtype=torch.bool)
    carphone = {2, 3}
    pair = torch.tensor([[a in carphone and b in carphone for b in owners] for a in owners])
    different = (owner[:, None] != owner[None, :]) & ~pair
    per_video = {}
    for v, name in enumerate(REAL_VIDEOS):
        rows = owner == v
        per_video[name] = (
            float(sim[rows][:, owner == v][same[rows][:, owner == v]].mean()),
            float(sim[rows][different[rows]].mean()),
        )
    whole = F.normalize(torch.stack([z[owner == v].mean(0) for v in range(len(REAL_VIDEOS))]), dim=1)
    whole_sim = whole @ whole.t()
    whole_sim.fill_diagonal_(-2)
    nearest = whole_sim.argmax(1).tolist()
    return {
        "same_video_cos": float(sim[same].mean()),
        "different_video_cos": float(sim[different].mean()),
        "per_video": per_video,
        "same_closer_for_every_video": all(a > b for a, b in per_video.values()),
        "carphone_nearest_neighbours": nearest[2] == 3 and nearest[3] == 2,
        "nearest": {REAL_VIDEOS[i]: REAL_VIDEOS[j] for i, j in enumerate(nearest)},
    }


def real_content_lines(check: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown lines of ``real_content_check`` results per arm."""
    seeds = sorted({c["seed"] for c in check.values()})
    lines = [
        "",
        "## Real content (`../shared/data/video`, 4 clips x 4 parts, the trained encoders of seed"
        f"{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})",
        "",
        "| arm | cos same video | cos different videos | same > different, every video | carphone pair nearest |",
        "|---|---:|---:|---|---|",
    ]
    for label, c in check.items():
        lines.append(
            f"| {label} | {c['same_video_cos']:.3f} | {c['different_video_cos']:.3f} | "
            f"{'yes' if c['same_closer_for_every_video'] else 'no'} | {'yes' if c['carphone_nearest_neighbours'] else 'no'} |"
        )
    return lines


class RealContent(L.Callback):
    """Runs ``real_content_check`` on the trained encoder when fitting ends (the method's
    ``clip_encoder`` where it has one, e.g. VCLR's frame encoder averaged over time)."""

    def __init__(self, data_root: str) -> None:
        self.data_root = data_root
        self.result: dict[str, Any] | None = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        encoder = getattr(pl_module, "clip_encoder", pl_module.backbone)
        self.result = real_content_check(encoder, pl_module.preprocess, self.data_root)
