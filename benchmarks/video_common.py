"""What the video benchmarks share beyond ``harness``: the real-content check on
``../shared/data/video`` and the arms run with it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

REAL_VIDEOS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4")


def run_arms_with_real_content(bench: Any, args: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``bench.run_arms`` over ``args.seeds``; the first seed's trained encoders also go through
    ``real_content_check`` (with a data root). Returns the runs and the checks by arm."""
    real: dict[str, Any] = {}

    def check(i: int) -> RealContent | None:
        return RealContent(args.data_root) if i == 0 and args.data_root else None

    def keep(label: str, run: dict[str, Any], done: RealContent | None) -> None:
        if done is not None and done.result is not None:
            real[label] = {"seed": run["seed"], **done.result}

    return bench.run_arms(args, check, keep), real


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
