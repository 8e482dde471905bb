"""``trainer.logger`` (issue 21 item 6): contrastkit's CSV by default, Lightning's loggers on request,
the run folder unchanged; a logger whose package is missing is one line and exit 2."""

from __future__ import annotations

import importlib.util

import pytest

from contrastkit.cli import main

ARGS = ["train", "simclr-digits", "--smoke", "--no-progress", "--set", "eval.linear_probe=false"]


@pytest.mark.skipif(
    importlib.util.find_spec("tensorboardX") is None and importlib.util.find_spec("tensorboard") is None,
    reason="neither tensorboard nor tensorboardX is installed",
)
def test_tensorboard_logger_writes_events_beside_the_usual_files(tmp_path):
    assert main([*ARGS, "--runs-dir", str(tmp_path), "--set", "trainer.logger=tensorboard"]) == 0
    run = next((tmp_path / "simclr-digits").iterdir())
    assert list((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert {"metrics.csv", "steps.csv", "report.md", "results.json"} <= {p.name for p in run.iterdir()}


@pytest.mark.parametrize("kind", ["wandb", "mlflow"])
def test_a_logger_without_its_package_is_one_line(kind, tmp_path, capsys):
    if importlib.util.find_spec(kind) is not None:
        pytest.skip(f"{kind} is installed")
    assert main([*ARGS, "--runs-dir", str(tmp_path), "--set", f"trainer.logger={kind}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"trainer.logger={kind} needs {kind} installed" in err
    assert not (tmp_path / "simclr-digits").exists()  # refused before any run folder


def test_an_unknown_logger_lists_the_choices(tmp_path, capsys):
    assert main([*ARGS, "--runs-dir", str(tmp_path), "--set", "trainer.logger=comet"]) == 2
    assert "csv" in capsys.readouterr().err
