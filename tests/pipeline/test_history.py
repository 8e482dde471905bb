"""Run records are append-only (issue 32, item 8): every train, resume and eval is a line of
``history.jsonl``; the Reproduce line is the original command plus the resumes, the training time
adds up, and a run stopped early says how many epochs it trained — in its report and in compare."""

from __future__ import annotations

import json

import lightning as L
import pytest

from contrastkit.cli import main
from contrastkit.config import load_recipe, smoke
from contrastkit.pipeline.history import read_history
from contrastkit.pipeline.run import Interrupted, evaluate_run, train


def _lines(run):
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def test_a_resume_adds_to_the_record_instead_of_replacing_it(tmp_path):
    runs = tmp_path / "runs"
    first = ["train", "moco-digits", "--smoke", "--no-progress", "--runs-dir", str(runs), "--set", "optim.epochs=1"]
    assert main(first) == 0
    (run,) = (runs / "moco-digits").iterdir()
    before = json.loads((run / "results.json").read_text())
    recipe = (run / "recipe.yaml").read_text().replace("epochs: 1\n", "epochs: 2\n")
    (run / "recipe.yaml").write_text(recipe)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    after = json.loads((run / "results.json").read_text())
    assert after["command"] == before["command"] and "--smoke" in after["command"]
    assert after["resumed_with"] == [f"contrastkit train --resume {run} --no-progress"]
    assert [line["action"] for line in _lines(run)] == ["train", "trained", "resume", "trained"]
    seconds = [line["seconds"] for line in _lines(run) if line["action"] == "trained"]
    assert after["train_seconds"] == pytest.approx(sum(seconds)) and after["train_seconds"] > before["train_seconds"]
    assert after["epochs_trained"] == 2 and after["finished"] is True
    report = (run / "report.md").read_text()
    assert f"Reproduce: `{before['command']}`, then `contrastkit train --resume {run} --no-progress`" in report


class _CtrlC(L.Callback):
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt


def test_an_interrupted_run_says_it_is_unfinished_in_eval_and_compare(tmp_path):
    raw = smoke(load_recipe("simclr-digits"))
    raw["optim"]["epochs"] = 3
    command = "contrastkit train simclr-digits --smoke"
    with pytest.raises(Interrupted):
        train(raw, runs_dir=tmp_path, progress=False, command=command, callbacks=[_CtrlC()])
    (run,) = (tmp_path / "simclr-digits").iterdir()
    assert [line["action"] for line in _lines(run)] == ["train", "interrupted"]
    assert read_history(run).epochs_trained == 1
    results = evaluate_run(run, progress=False)
    assert results["epochs_trained"] == 1 and results["finished"] is False and results["command"] == command
    assert "1 of 3 epochs (unfinished)" in (run / "report.md").read_text()
    assert [line["action"] for line in _lines(run)][-1] == "eval"
    page = tmp_path / "page.html"
    assert main(["compare", str(run), "--out", str(page)]) == 0
    assert "seed 0 (unfinished)" in page.read_text() and "1 of 3 epochs (unfinished)" in page.read_text()


def test_a_torn_history_line_is_skipped(tmp_path):
    (tmp_path / "history.jsonl").write_text(
        '{"action": "train", "command": "a"}\n{"action": "trained", "seconds": 2, "epochs": 1}\n{"action": "resu'
    )
    history = read_history(tmp_path)
    assert (history.command, history.train_seconds, history.epochs_trained, history.lines) == ("a", 2.0, 1, 2)
