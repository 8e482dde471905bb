"""Training throughput with 1 and 2 processes (Lightning DDP, gloo on CPU).

Run:  python benchmarks/scaling.py --data-root ../shared/data      (a few minutes)

Each configuration is a real ``contrastkit train`` run of ``moco-cifar10`` on a 4096-image
subset for 3 epochs with evaluation switched off; throughput is the images/s of the last epoch
from the run's ``metrics.csv`` (all processes' images counted). The machine's cores are split
between the processes (``trainer.threads``). Results: ``benchmarks/results/scaling.{json,md}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
EIGHT_GPUS = (
    "contrastkit train moco-cifar10 --data-root /data --devices 8 --strategy ddp --accelerator gpu "
    "--set optim.lr=0.48 --set data.batch_size=256   # effective batch 2048; lr scaled linearly from 0.06 per 256"
)


def _run(devices: int, threads: int, data_root: str, epochs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as runs:
        command = [
            sys.executable,
            "-m",
            "contrastkit.cli",
            "train",
            "moco-cifar10",
            "--data-root",
            data_root,
            "--runs-dir",
            runs,
            "--no-progress",
            "--accelerator",
            "cpu",
            "--set",
            "data.train_subset=4096",
            "--set",
            "data.test_subset=500",
            "--set",
            f"optim.epochs={epochs}",
            "--set",
            "eval.linear_probe=false",
            "--set",
            f"eval.monitor_every={epochs + 1}",
            "--set",
            f"trainer.threads={threads}",
            "--set",
            "eval.embedding_map_points=200",
        ]
        if devices > 1:
            command += ["--devices", str(devices), "--strategy", "ddp"]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if done.returncode != 0:
            raise RuntimeError(f"run failed ({devices} processes): {done.stderr[-1500:]}")
        (run,) = (Path(runs) / "moco-cifar10").iterdir()
        with open(run / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        return {
            "processes": devices,
            "threads_per_process": threads,
            "images_per_second_per_epoch": [float(r["images_per_second"]) for r in rows],
            "images_per_second": float(rows[-1]["images_per_second"]),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    single = _run(1, cores, args.data_root, args.epochs)
    double = _run(2, max(1, cores // 2), args.data_root, args.epochs)
    report = {
        "command": f"python benchmarks/scaling.py --data-root {args.data_root}",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cores": cores,
        "runs": [single, double],
        "speedup": double["images_per_second"] / single["images_per_second"],
        "eight_gpu_command": EIGHT_GPUS,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scaling.json").write_text(json.dumps(report, indent=2))
    lines = [
        "# Scaling: 1 vs 2 processes (DDP, gloo, CPU)",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}; {cores} cores.",
        "",
        "| processes | threads per process | images/s (last epoch) | per epoch |",
        "|---:|---:|---:|---|",
    ]
    for r in report["runs"]:
        per_epoch = ", ".join(f"{v:.0f}" for v in r["images_per_second_per_epoch"])
        lines.append(f"| {r['processes']} | {r['threads_per_process']} | {r['images_per_second']:.0f} | {per_epoch} |")
    lines += [
        "",
        f"Speed-up of 2 processes over 1: **{report['speedup']:.2f}x** on {cores} cores: both set-ups use "
        "every core, so DDP can only add communication here; it pays off across GPUs and machines.",
        "",
        "On 8 GPUs a user runs:",
        "",
        f"```bash\n{EIGHT_GPUS}\n```",
        "",
    ]
    (args.out / "scaling.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
