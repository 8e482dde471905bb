"""A verdict in every report (issue 32, item 3): the main metric against its baseline — random
init, or for restoration the unchanged input — said as better, within the spread, or worse, in
the console's last lines and the report's first; smoke runs labelled as such everywhere; dehaze
warns when the run's model is worse than doing nothing."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from contrastkit.cli import main
from contrastkit.pipeline.tasks.base import Evaluation, Task, verdict_line


def test_the_verdict_line_reads_the_gap_against_twice_the_spread():
    assert verdict_line("kNN", 60.0, 50.0, "random init", 2.0).startswith("Verdict: better than random init")
    assert verdict_line("kNN", 53.0, 50.0, "random init", 2.0).startswith("Verdict: within the spread of random init")
    assert verdict_line("kNN", 40.0, 50.0, "random init", 2.0).startswith("Verdict: WORSE than random init")
    assert "no spread known" in verdict_line("R@1", 40.0, 50.0, "random init", None)


def test_an_accuracy_spread_is_the_binomial_error_of_its_test_samples():
    from types import SimpleNamespace

    task = Task.__new__(Task)
    task.metrics = [("top1", "top-1")]
    task.recipe = SimpleNamespace(model=SimpleNamespace(init=None, weights=None))
    few, many = torch.zeros(20), torch.zeros(20000)  # 20 or 20000 test samples
    assert "within the spread" in task.verdict(Evaluation({"top1": 60.0}, labels=few), {"top1": 50.0})
    assert "better than the same network at random init" in task.verdict(
        Evaluation({"top1": 60.0}, labels=many), {"top1": 50.0}
    )
    task.recipe.model.init = "zoo:x"  # started from weights: the baseline is where it started
    assert "better than the same network's starting weights (zoo:x)" in task.verdict(
        Evaluation({"top1": 60.0}, labels=many), {"top1": 50.0}
    )


def test_a_smoke_run_is_labelled_and_its_verdict_is_first_in_the_report_and_last_on_the_console(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "moco-digits", "--smoke", "--no-progress", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert "[smoke run" in next(line for line in out if line.startswith("moco-digits (moco)"))
    assert out[-2].strip().startswith("Verdict:") and out[-1].strip().startswith("report:")
    (run,) = (runs / "moco-digits").iterdir()
    report = (run / "report.md").read_text().splitlines()
    assert "smoke run" in report[0] and report[2].startswith("**Verdict:")
    results = json.loads((run / "results.json").read_text())
    assert results["smoke"] is True and results["verdict"] in report[2]
    page = tmp_path / "page.html"
    assert main(["compare", str(run), "--out", str(page)]) == 0 and "(smoke)" in page.read_text()


def test_a_dehazing_model_worse_than_its_input_is_said_in_training_and_in_dehaze(tmp_path, capsys):
    runs = tmp_path / "runs"
    args = ["train", "aecr-synthetic", "--smoke", "--no-progress", "--runs-dir", str(runs), "--set", "optim.epochs=1"]
    assert main([*args, "--set", "method.cr_weight=0"]) == 0
    (run,) = (runs / "aecr-synthetic").iterdir()
    verdict = json.loads((run / "results.json").read_text())["verdict"]
    assert verdict.startswith("Verdict: WORSE than the unchanged hazy input")  # one smoke epoch: about -5 dB
    capsys.readouterr()
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(photo)
    assert main(["dehaze", str(photo), "--run", str(run), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "worse than the unchanged hazy input" in warnings[0]
