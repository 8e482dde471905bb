"""Where a run's time went (issue 33, item 3): the shares of waiting for data, steps, the kNN
monitor and the rest, in results.json and the report; a warning, once, naming the knob when more
than 10% of the training time goes to waiting for batches."""

from __future__ import annotations

import json
import time

import lightning as L
import pytest

from contrastkit.config import load_recipe, smoke
from contrastkit.pipeline.run import train


def _recipe(epochs: int = 2, batches: int = 12) -> dict:
    raw = smoke(load_recipe("moco-digits"))
    raw["optim"]["epochs"] = epochs
    raw["trainer"]["limit_train_batches"] = batches
    raw["data"]["batch_size"] = 16
    return raw


def test_every_run_says_where_its_time_went(tmp_path):
    results = train(_recipe(), runs_dir=tmp_path, progress=False)
    shares = results["time"]
    assert shares["epochs"] == 2 and shares["evaluation_seconds"] > 0
    total = shares["data_wait"] + shares["step"] + shares["monitor"] + shares["other"]
    assert total == pytest.approx(1.0, abs=0.01) and shares["step"] > shares["data_wait"]
    report = (tmp_path / "moco-digits").glob("*/report.md").__next__().read_text()
    assert "of it: waiting for data" in report and "final evaluation" in report


class _SlowLoader(L.Callback):
    """Stands for a slow data path: time spent after a step and before the next batch arrives."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        time.sleep(0.05)


def test_waiting_for_data_is_warned_once_naming_the_knob(tmp_path, capsys):
    results = train(_recipe(epochs=3), runs_dir=tmp_path, progress=False, callbacks=[_SlowLoader()])
    assert results["time"]["data_wait"] > 0.3
    err = [line for line in capsys.readouterr().err.splitlines() if "waiting for the next batch" in line]
    assert len(err) == 1 and "data.num_workers" in err[0]
    assert any("data.num_workers" in w for w in results["warnings"])
    saved = json.loads((tmp_path / "moco-digits").glob("*/results.json").__next__().read_text())
    assert saved["time"] == results["time"]
