"""SIGKILL at seeded random moments across a multi-epoch run and its resumes (issue 22): the run
that finally completes equals the uninterrupted one - weights, metrics, steps and results.

Kill moments are drawn over the work that remains (start-up and evaluations included), so kills
land while importing, evaluating the random init, training, writing checkpoints and writing the
report. Three kills run in ``make test``; twenty under ``-m slow``.
"""

from __future__ import annotations

import csv
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

BIN = Path(sys.executable).parent
EPOCHS = 10
ARGS = [
    "train",
    "moco-digits",
    "--smoke",
    "--no-progress",
    "--set",
    f"optim.epochs={EPOCHS}",
    "--set",
    "trainer.limit_train_batches=8",
    "--set",
    "eval.linear_probe=false",
]
TIMING = {"epoch_seconds", "images_per_second", "data_seconds", "step_seconds", "monitor_seconds"}


def _only_run(runs: Path) -> Path | None:
    folders = sorted((runs / "moco-digits").iterdir()) if (runs / "moco-digits").is_dir() else []
    return folders[-1] if folders else None


def _epochs_done(run: Path | None) -> int:
    ckpt = None if run is None else run / "checkpoints" / "last.ckpt"
    if ckpt is None or not ckpt.is_file():
        return 0
    return int(torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"]) + 1


def _metric_rows(run: Path | None) -> int:
    """Epochs written to metrics.csv so far (cheap to poll, unlike loading the checkpoint)."""
    try:
        return max(0, len((run / "metrics.csv").read_text().splitlines()) - 1) if run is not None else 0
    except FileNotFoundError:
        return 0


def _metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def _steps(run: Path) -> list[tuple[str, str, str]]:
    with open(run / "steps.csv", newline="") as f:
        return [tuple(r) for r in csv.reader(f)]  # type: ignore[misc]


def run_with_kills(tmp_path: Path, kills: int, seed: int) -> None:
    start = time.perf_counter()
    reference = subprocess.run(
        [str(BIN / "contrastkit"), *ARGS, "--runs-dir", str(tmp_path / "ref")], capture_output=True, timeout=900
    )
    total = time.perf_counter() - start
    assert reference.returncode == 0
    ref = _only_run(tmp_path / "ref")
    assert ref is not None
    train_seconds = json.loads((ref / "results.json").read_text())["train_seconds"]
    overhead = max(1.0, total - train_seconds)

    rng = random.Random(seed)
    runs = tmp_path / "killed"
    landed, attempts = 0, 0
    where: list[int] = []  # epochs checkpointed when each kill landed
    while True:
        attempts += 1
        assert attempts < 4 * kills + 10, "the run never completed"
        run = _only_run(runs)
        if run is not None and (run / "checkpoints" / "last.ckpt").is_file():
            command = [str(BIN / "contrastkit"), "train", "--resume", str(run), "--no-progress"]
        else:  # killed before its first checkpoint: start again (a new run folder)
            command = [str(BIN / "contrastkit"), *ARGS, "--runs-dir", str(runs)]
        log = open(tmp_path / f"attempt{attempts}.log", "w")
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        if landed < kills:
            done = _epochs_done(run)
            left = (1 - done / EPOCHS) * train_seconds
            if (landed == 0 or rng.random() < 0.7) and done < EPOCHS:
                # most kills land inside a training epoch drawn from those left: wait until the run
                # has written the epochs before it (metrics.csv rows), then a random part of one
                target = rng.randint(done, EPOCHS - 1)
                while proc.poll() is None and _metric_rows(_only_run(runs)) < target:
                    time.sleep(0.005)
                delay = rng.uniform(0, train_seconds / EPOCHS)
            else:  # the rest anywhere: start-up, evaluation, checkpoint and report writing
                delay = rng.uniform(0.05, 0.95) * (overhead + left)
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                landed += 1
                where.append(_epochs_done(_only_run(runs)))
                continue
        else:
            proc.wait(timeout=900)
        log.close()
        assert proc.returncode == 0, (tmp_path / f"attempt{attempts}.log").read_text()[-2000:]
        break
    assert landed >= min(kills, 2), f"only {landed} of {kills} kills landed before the run completed"
    print(f"{landed} kills landed; epochs checkpointed at each: {where}")

    final = _only_run(runs)
    assert final is not None
    a = torch.load(ref / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(final / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert _metrics(final) == _metrics(ref)
    assert _steps(final) == _steps(ref)
    ra, rb = json.loads((ref / "results.json").read_text()), json.loads((final / "results.json").read_text())
    assert ra["final"] == rb["final"] and ra["random_init"] == rb["random_init"]
    assert not list(final.rglob("*.tmp"))


def test_three_kills_leave_a_run_equal_to_the_uninterrupted_one(tmp_path):
    run_with_kills(tmp_path, kills=3, seed=0)


@pytest.mark.slow
def test_twenty_kills_leave_a_run_equal_to_the_uninterrupted_one(tmp_path):
    run_with_kills(tmp_path, kills=20, seed=1)
