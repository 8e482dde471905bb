"""Video decoding: PyAV (ours) vs torchcodec vs decord, frames per second, same process.

    python benchmarks/video_decode.py --data-root ../shared/data            (about 5 min)
    python benchmarks/video_decode.py --data-root ../shared/data --repeats 1 (a smoke pass)

Inputs: the recipe's mp4s (20 generated moving-object videos of 32 frames, 32x32, written here
the way ``moving_objects`` writes them) and the real clips of ``<data-root>/video/*.mp4``.
Each decoder reads every video in two patterns — **sequential** (every frame) and **windows**
(4 windows of 16 consecutive frames at seeded random starts, the access of clip sampling) — at
two output sizes (32 and 112 px shorter side; generated videos at 32 only), resized inside the
decoder (PyAV's ``reformat``, torchcodec's ``Resize`` transform, decord's ``width``/``height``).
Two thread settings: one thread (one video after another, one FFmpeg thread) and all cores (a
pool of one worker per core over the videos, as ``decode_videos`` decodes a dataset). Round-robin
over decoders, median of ``--repeats``; ratios are against PyAV in the same row. The frames are
compared with PyAV's at native size (first 16 frames of each real clip): identical, or the
largest difference.

Needs the ``bench`` extra (torchcodec, decord) and FFmpeg's shared libraries for torchcodec
(``apt-get install libavcodec59 libavformat59 libavutil57 libswscale6 ...`` on Debian 12).
Results: ``benchmarks/results/video_decode.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contrastkit.data.moving_objects import generate_moving_objects
from contrastkit.data.video_io import probe, read_frames
from harness import median_times

RESULTS = Path(__file__).parent / "results"
WINDOWS, WINDOW = 4, 16


def _target(path: Path, size: int) -> tuple[int, int]:
    info = probe(path)
    short = min(info.height, info.width)
    return round(info.height * size / short), round(info.width * size / short)


def pyav(path: Path, indices: list[int] | None, size: tuple[int, int], threads: int) -> int:
    return len(read_frames(path, indices, size=size, threads=threads))


def torchcodec(path: Path, indices: list[int] | None, size: tuple[int, int], threads: int) -> int:
    from torchcodec.decoders import VideoDecoder
    from torchcodec.transforms import Resize

    decoder = VideoDecoder(str(path), num_ffmpeg_threads=threads, transforms=[Resize(size)], dimension_order="NHWC")
    if indices is None:
        return len(decoder.get_frames_in_range(0, decoder.metadata.num_frames).data)
    return len(decoder.get_frames_at(indices).data)


def decord(path: Path, indices: list[int] | None, size: tuple[int, int], threads: int) -> int:
    import decord as dec

    reader = dec.VideoReader(str(path), width=size[1], height=size[0], num_threads=threads)
    return len(reader.get_batch(indices if indices is not None else list(range(len(reader)))).asnumpy())


DECODERS: dict[str, Callable[[Path, list[int] | None, tuple[int, int], int], int]] = {
    "PyAV": pyav,
    "torchcodec": torchcodec,
    "decord": decord,
}


def windows(path: Path, g: torch.Generator) -> list[int]:
    count = probe(path).num_frames
    starts = torch.randint(0, max(1, count - WINDOW), (WINDOWS,), generator=g).tolist()
    return [min(count - 1, s + i) for s in sorted(starts) for i in range(WINDOW)]


def decoding(name: str, videos: list[Path], pattern: str, size: int, workers: int) -> tuple[int, Callable[[], None]]:
    """The frames one pass decodes, and the pass: every video of ``videos`` through decoder ``name``."""
    decode = DECODERS[name]
    g = torch.Generator().manual_seed(0)
    jobs = [(v, windows(v, g) if pattern == "windows" else None, _target(v, size)) for v in videos]
    frames = sum(len(idx) if idx is not None else probe(v).num_frames for v, idx, _ in jobs)

    def one() -> None:
        if workers == 1:
            for v, idx, target in jobs:
                decode(v, idx, target, 1)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(lambda job: decode(job[0], job[1], job[2], 1), jobs))

    return frames, one


def same_frames(videos: list[Path]) -> dict[str, str]:
    """Each decoder's first 16 frames at native size against PyAV's."""
    import decord as dec
    from torchcodec.decoders import VideoDecoder

    out = {}
    for name in ("torchcodec", "decord"):
        worst, differing = 0, 0
        for v in videos:
            ours = read_frames(v, list(range(16))).numpy()
            if name == "torchcodec":
                theirs = VideoDecoder(str(v), dimension_order="NHWC").get_frames_at(list(range(16))).data.numpy()
            else:
                theirs = dec.VideoReader(str(v)).get_batch(list(range(16))).asnumpy()
            diff = np.abs(ours.astype(np.int16) - theirs.astype(np.int16))
            worst, differing = max(worst, int(diff.max())), differing + int((diff > 0).sum())
        out[name] = "identical" if worst == 0 else f"differs: max |Δ| {worst}/255 on {differing} values"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.manual_seed(0)
    real = sorted((Path(args.data_root) / "video").glob("*.mp4"))
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        generated_root = generate_moving_objects(Path(tmp) / "gen", train=20, test=0, frames=32, size=32, seed=0)
        generated = sorted(generated_root.rglob("*.mp4"))
        sets = [("recipe mp4s (32x32, 32 frames)", generated, 32), ("real clips", real, 32), ("real clips", real, 112)]
        rows = []
        for label, videos, size in sets:
            for pattern in ("sequential", "windows"):
                for workers in (1, cores):
                    passes = {n: decoding(n, videos, pattern, size, workers) for n in DECODERS}
                    seconds = median_times({n: run for n, (_, run) in passes.items()}, args.repeats)
                    fps = {n: passes[n][0] / seconds[n] for n in DECODERS}
                    row = {"videos": label, "size": size, "pattern": pattern, "threads": workers, "fps": fps}
                    rows.append(row)
                    print(row, flush=True)
        equal = same_frames(real)
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": f"python benchmarks/video_decode.py --data-root {args.data_root} --repeats {args.repeats}",
        "machine": f"{platform.processor() or platform.machine()}, {cores} cores, torch {torch.__version__}",
        "versions": _versions(),
        "rows": rows,
        "same_frames": equal,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "video_decode.json").write_text(json.dumps(report, indent=2))
    (args.out / "video_decode.md").write_text(markdown(report))
    print(markdown(report))


def _versions() -> dict[str, str]:
    import av
    import decord as dec
    import torchcodec as tc

    return {"PyAV": av.__version__, "torchcodec": tc.__version__, "decord": dec.__version__}


def markdown(report: dict[str, Any]) -> str:
    v = report["versions"]
    lines = [
        "# Video decoding: PyAV vs torchcodec vs decord",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}; {report['machine']}; PyAV {v['PyAV']}, torchcodec {v['torchcodec']}, "
        f"decord {v['decord']}.",
        "",
        "Frames per second, median of round-robin repeats; x = against PyAV in the same row.",
        "",
        "| videos | size | access | threads | PyAV | torchcodec | decord |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        base = r["fps"]["PyAV"]
        cells = [f"{r['fps']['PyAV']:.0f}"] + [
            f"{r['fps'][n]:.0f} ({r['fps'][n] / base:.2f}x)" for n in ("torchcodec", "decord")
        ]
        lines.append(f"| {r['videos']} | {r['size']} | {r['pattern']} | {r['threads']} | " + " | ".join(cells) + " |")
    lines += ["", "Frames at native size against PyAV's (first 16 frames of each real clip):", ""]
    lines += [f"- {name}: {verdict}" for name, verdict in report["same_frames"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
