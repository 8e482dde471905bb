"""Run folders stay inside the runs directory: a recipe's name is one path component (issue 22, row 6)."""

from __future__ import annotations

import pytest

from contrastkit.cli import main
from contrastkit.config import RecipeError, load_recipe, validate


@pytest.mark.parametrize("name", ["../../elsewhere", "/tmp/abs", "a/b", "..", ".", "", "a\\b", "x\x00y"])
def test_names_that_are_not_one_path_component_are_refused(name):
    raw = load_recipe("moco-digits") | {"name": name}
    with pytest.raises(RecipeError, match="name"):
        validate(raw)


def test_the_cli_refuses_a_traversing_name_before_writing_anything(tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(["train", "moco-digits", "--smoke", "--runs-dir", str(runs), "--set", "name=../../elsewhere"])
    assert code == 2 and not runs.exists() and not (tmp_path / "elsewhere").exists()
    assert "name" in capsys.readouterr().err


def test_federated_recipes_follow_the_same_rule():
    from contrastkit.federated.run import validate_federated

    raw = load_recipe("moon-digits") | {"name": "../up"}
    with pytest.raises(RecipeError, match="name"):
        validate_federated(raw)


@pytest.mark.parametrize("override", ["data.batch_size=null", "optim=[1,2]", "eval=5"])
def test_smoke_runs_validate_first_so_bad_values_are_one_line(override, tmp_path, capsys):
    """Issue 22, row 9: ``--smoke`` used to shrink before validating and crash on such values."""
    code = main(["train", "moco-digits", "--smoke", "--runs-dir", str(tmp_path / "runs"), "--set", override])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("contrastkit: error:")
    assert not (tmp_path / "runs").exists()


def test_eval_keeps_the_training_command_and_records_itself_beside_it(tmp_path):
    """Issue 22, row 13: ``contrastkit eval RUN`` used to overwrite the training command."""
    import json

    runs = tmp_path / "runs"
    assert main(["train", "moco-digits", "--smoke", "--no-progress", "--runs-dir", str(runs)]) == 0
    (run,) = (runs / "moco-digits").iterdir()
    trained_with = json.loads((run / "results.json").read_text())["command"]
    assert trained_with.startswith("contrastkit train moco-digits")
    assert main(["eval", str(run), "--no-progress"]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["command"] == trained_with and results["evaluated_with"] == f"contrastkit eval {run}"
    report = (run / "report.md").read_text()
    assert f"`{trained_with}`" in report and f"`contrastkit eval {run}`" in report


def test_a_recipe_file_without_a_suffix_is_read_as_a_file(tmp_path):
    """Issue 22, row 15: an existing file named without '.yaml' was reported as 'not a file'."""
    import yaml

    from contrastkit.config import load_recipe

    path = tmp_path / "myrecipe"
    path.write_text(yaml.safe_dump(load_recipe("moco-digits") | {"name": "mine"}))
    assert load_recipe(str(path))["name"] == "mine"
    assert load_recipe("moco-digits")["method"]["name"] == "moco"  # shipped names still win when no such file


@pytest.mark.parametrize("section", ["fail", "corrupt"])
def test_faults_naming_parties_that_do_not_exist_are_refused(section):
    """Issue 22, row 15b: ``faults.fail=[9]`` with 5 parties was silently ignored."""
    from contrastkit.federated.run import validate_federated

    raw = load_recipe("moon-digits")
    raw["federation"] = {**raw.get("federation", {}), "num_parties": 5}
    raw["faults"] = {section: [1, 9]}
    with pytest.raises(RecipeError, match=r"party 9 .*0-4"):
        validate_federated(raw)
    raw["faults"] = {section: [4]}
    validate_federated(raw)


def test_resume_tolerates_a_torn_last_line_in_steps_csv(tmp_path):
    """Issue 22, row 11: a torn last line in steps.csv made --resume fail with an IndexError."""
    runs = tmp_path / "runs"
    assert main(["train", "moco-digits", "--smoke", "--no-progress", "--runs-dir", str(runs)]) == 0
    (run,) = (runs / "moco-digits").iterdir()
    steps = run / "steps.csv"
    steps.write_text(steps.read_text() + "17")  # a write cut short by a kill
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    lines = steps.read_text().splitlines()
    assert all(len(line.split(",")) == len(lines[0].split(",")) for line in lines)


@pytest.mark.parametrize("damage", ["truncate", "random", "empty"])
def test_a_damaged_checkpoint_is_one_line_for_eval_and_resume(damage, tmp_path, capsys):
    """Issue 22, row 1: a truncated, random or empty last.ckpt gave a traceback (exit 1)."""
    import os

    runs = tmp_path / "runs"
    assert main(["train", "moco-digits", "--smoke", "--no-progress", "--runs-dir", str(runs)]) == 0
    (run,) = (runs / "moco-digits").iterdir()
    ckpt = run / "checkpoints" / "last.ckpt"
    if damage == "truncate":
        with open(ckpt, "r+b") as f:
            f.truncate(100)
    else:
        ckpt.write_bytes(os.urandom(4096) if damage == "random" else b"")
    capsys.readouterr()
    for args in (["eval", str(run), "--no-progress"], ["train", "--resume", str(run), "--no-progress"]):
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "last.ckpt" in err[0] and "checkpoint" in err[0]


def _edit_recipe(run, section, key, value):
    import yaml

    path = run / "recipe.yaml"
    raw = yaml.safe_load(path.read_text())
    if (section, key, value) == ("method", "name", "simclr"):
        raw["method"] = {"name": "simclr"}  # a valid SimCLR section: only the checkpoint can object
    else:
        raw[section][key] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.mark.parametrize(
    "section,key,value", [("method", "name", "mochi"), ("method", "name", "simclr"), ("method", "queue_size", 512)]
)
def test_resume_refuses_a_recipe_that_differs_from_the_checkpoint(section, key, value, tmp_path, capsys):
    """Issue 22, rows 4-5: an edited recipe.yaml was accepted (mislabelled report) or crashed in load_state_dict."""
    runs = tmp_path / "runs"
    assert main(["train", "moco-digits", "--smoke", "--no-progress", "--runs-dir", str(runs)]) == 0
    (run,) = (runs / "moco-digits").iterdir()
    _edit_recipe(run, section, key, value)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{section}.{key}" in err[0] and "checkpoint" in err[0]


@pytest.mark.parametrize("section,key,value", [("model", "width", 8), ("method", "name", "simclr")])
def test_eval_refuses_a_recipe_that_differs_from_the_checkpoint(section, key, value, tmp_path, capsys):
    """Issue 32, item 6: eval on such a run gave a 22-line traceback; the report stays as it was."""
    runs = tmp_path / "runs"
    assert main(["train", "moco-digits", "--smoke", "--no-progress", "--runs-dir", str(runs)]) == 0
    (run,) = (runs / "moco-digits").iterdir()
    report = (run / "report.md").read_text()
    _edit_recipe(run, section, key, value)
    capsys.readouterr()
    assert main(["eval", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "last.ckpt does not fit" in err[0] and "recipe.yaml" in err[0], err
    assert (run / "report.md").read_text() == report


def test_resume_accepts_more_epochs_and_says_so(tmp_path):
    import json

    runs = tmp_path / "runs"
    assert main(["train", "moco-digits", "--smoke", "--no-progress", "--runs-dir", str(runs)]) == 0
    (run,) = (runs / "moco-digits").iterdir()
    _edit_recipe(run, "optim", "epochs", 3)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["changed_on_resume"] == ["optim.epochs"] and "optim.epochs" in (run / "report.md").read_text()


@pytest.mark.parametrize("when", ["before the first checkpoint", "after the first checkpoint"])
def test_ctrl_c_exits_130_with_a_true_hint(when, tmp_path):
    """Issue 22, rows 2-3: Ctrl-C gave Lightning's exit 1, or promised a checkpoint that did not exist."""
    import signal
    import subprocess
    import sys
    import time

    runs = tmp_path / "runs"
    args = [sys.executable, "-m", "contrastkit.cli", "train", "moco-digits", "--no-progress", "--runs-dir", str(runs)]
    args += ["--set", "optim.epochs=200", "--set", "data.train_subset=256", "--set", "eval.linear_probe=false"]
    # a child inherits an ignored SIGINT (Python then never raises KeyboardInterrupt): in the full
    # suite something before this test leaves SIGINT ignored in the pytest process
    proc = subprocess.Popen(
        args,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 240

    def found(pattern):
        return list(runs.glob(pattern)) if runs.exists() else []

    target = "*/*/recipe.yaml" if when.startswith("before") else "*/*/checkpoints/last.ckpt"
    while not found(target) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert found(target), "the run never got there"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 130, err[-2000:]
    if when.startswith("before"):
        assert "no checkpoint was written yet" in last
    else:
        assert "--resume" in last and "intact" in last


@pytest.mark.parametrize("flags", [["--devices", "0"], ["--accelerator", "gpu"], ["--strategy", "no-such-strategy"]])
def test_a_bad_hardware_request_is_one_line_and_leaves_no_run_folder(flags, tmp_path, capsys):
    """Issue 22, rows 7-8: a traceback, exit 1 and a half-made run folder."""
    if flags[-1] == "gpu" and __import__("torch").cuda.is_available():
        pytest.skip("this machine has a GPU")
    runs = tmp_path / "runs"
    code = main(["train", "moco-digits", "--smoke", "--no-progress", "--runs-dir", str(runs), *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("contrastkit: error:"), err
    assert not runs.exists() or not any(p for p in runs.rglob("*") if p.parent != runs)  # no run folder


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    """Two benchmark processes started together shared one folder (metrics and checkpoints mixed)."""
    from contrastkit.pipeline import run

    monkeypatch.delenv(run.RUN_DIR_ENV, raising=False)
    folders = []
    for _ in range(3):  # what another process does between our check and our first file
        folders.append(run._new_run_dir(tmp_path, "same"))
        monkeypatch.delenv(run.RUN_DIR_ENV, raising=False)
    assert len(set(folders)) == 3 and all(f.is_dir() for f in folders)


def test_smoke_keeps_what_the_user_set_on_the_command_line(tmp_path):
    """Issue 22, row 10: ``--smoke`` silently replaced the user's epochs."""
    import json

    runs = tmp_path / "runs"
    args = ["train", "moco-digits", "--smoke", "--no-progress", "--runs-dir", str(runs)]
    assert main([*args, "--set", "optim.epochs=3", "--set", "data.batch_size=16"]) == 0
    (run,) = (runs / "moco-digits").iterdir()
    results = json.loads((run / "results.json").read_text())
    assert results["epochs"] == 3 and results["batch_size"] == 16


def test_ctrl_c_between_the_first_file_and_training_is_an_interruption_of_the_run(tmp_path, monkeypatch):
    """Ctrl-C while random_init.json was written escaped as a bare KeyboardInterrupt: the CLI then
    said no run had started, though the run folder existed (seen once in the ctrl-C test above)."""
    from pathlib import Path

    import contrastkit.pipeline.run as run

    real = run.write_atomic

    def interrupted_write(path, text):
        if Path(path).name == "random_init.json":
            raise KeyboardInterrupt
        real(path, text)

    monkeypatch.setattr(run, "write_atomic", interrupted_write)
    raw = load_recipe("moco-digits")
    raw["optim"]["epochs"] = 1
    raw["data"]["train_subset"] = 256
    raw["eval"]["linear_probe"] = False
    with pytest.raises(run.Interrupted) as info:
        run.train(raw, runs_dir=str(tmp_path / "runs"), progress=False)
    assert "no checkpoint was written yet" in info.value.hint
