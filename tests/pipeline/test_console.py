"""A quiet console (issue 21 item 2): no Lightning tips, device lines or known deprecation notices."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The installed ``contrastkit`` command in a fresh process (its console as a user sees it)."""
    return subprocess.run([str(BIN / "contrastkit"), *args], capture_output=True, text=True, timeout=900)


def test_train_smoke_prints_only_its_summary(tmp_path):
    done = _cli("train", "simclr-digits", "--smoke", "--no-progress", "--runs-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    lines = (done.stdout + done.stderr).splitlines()
    assert len(lines) < 40, lines
    text = "\n".join(lines)
    for noise in ("Tip:", "GPU available", "TPU available", "LeafSpec", "Sparse invariant checks"):
        assert noise not in text, noise
    assert "kNN top-1" in text and "report:" in text


@pytest.mark.parametrize("recipe", ["ccl-synthetic", "crossclr-synthetic"])
def test_a_clean_run_leaves_stderr_empty(recipe, tmp_path):
    """Issue 32, item 9: Lightning's warnings about runs without monitor data reached stderr."""
    done = _cli("train", recipe, "--smoke", "--no-progress", "--runs-dir", str(tmp_path))
    assert done.returncode == 0 and done.stderr == "", done.stderr[-2000:]


def test_an_onnx_export_prints_one_line(tmp_path):
    pytest.importorskip("onnxscript", reason="onnxscript is in the export extra")
    assert _cli("train", "moco-digits", "--smoke", "--quiet", "--runs-dir", str(tmp_path)).returncode == 0
    (run,) = (tmp_path / "moco-digits").iterdir()
    done = _cli("export", str(run), "--format", "onnx", "--out", str(tmp_path / "m.onnx"))
    assert done.returncode == 0 and done.stderr == "" and len(done.stdout.splitlines()) == 1, done.stdout


def test_near_chance_accuracy_is_flagged():
    from contrastkit.pipeline.report import near_chance_warning

    assert near_chance_warning("kNN top-1", 35.0, 10) is None
    warning = near_chance_warning("MOON final accuracy", 10.03, 10)
    assert warning is not None and "near chance (10.0% for 10 classes)" in warning
    assert near_chance_warning("probe", None, 10) is None


def test_a_near_chance_warning_reaches_console_and_report(tmp_path, capsys):
    from contrastkit.cli import _print_summary
    from contrastkit.pipeline.report import write_report

    warning = "kNN top-1 is 11.0%, near chance (10.0% for 10 classes): ..."
    results = {
        "recipe": "r",
        "method": "m",
        "data": "d",
        "model": "convnet_small",
        "epochs": 1,
        "batch_size": 8,
        "world_size": 1,
        "seed": 0,
        "metrics": [{"key": "knn_top1", "label": "kNN top-1"}],
        "protocol": "",
        "train_seconds": 1.0,
        "command": "contrastkit train r",
        "final": {"knn_top1": 11.0},
        "random_init": {"knn_top1": 10.5},
        "run_dir": str(tmp_path),
        "warnings": [warning],
    }
    write_report(tmp_path, results, [])
    assert f"> **Warning:** {warning}" in (tmp_path / "report.md").read_text()
    _print_summary(results)
    assert f"  warning: {warning}" in capsys.readouterr().out


def test_federate_smoke_keeps_flower_and_ray_logs_in_the_run_folder(tmp_path):
    done = _cli("federate", "moon-digits", "--smoke", "--quiet", "--runs-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    lines = (done.stdout + done.stderr).splitlines()
    assert len(lines) < 15, lines  # --quiet: the summary only (a line per round without it)
    assert "round" not in done.stdout.split("moon-digits:")[0]
    assert "moon     final accuracy" in done.stdout and "report:" in done.stdout
    (run,) = (tmp_path / "moon-digits").iterdir()
    assert "Starting" in (run / "flower.log").read_text()  # Flower's own lines went to the file
