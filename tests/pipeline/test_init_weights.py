"""``model.init`` / ``model.freeze``: a backbone starts from a run or a state-dict file, keys
matched strictly, 2-D weights inflated into a 3-D counterpart, and a frozen one stays as it is."""

from __future__ import annotations

import json

import pytest
import torch

from contrastkit.cli import main
from contrastkit.config import RecipeError, apply_overrides, load_recipe, validate
from contrastkit.nn import ConvNetSmall, inflate
from contrastkit.nn.backbones import load_run_backbone
from contrastkit.pipeline.tasks.base import prepared_backbone


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", "moco-digits", "--smoke", "--quiet", "--runs-dir", str(runs)]) == 0
    (run,) = (runs / "moco-digits").iterdir()
    return run


def _recipe(name, *overrides):
    return validate(apply_overrides(load_recipe(name), list(overrides)))


def test_a_backbone_starts_from_a_run_exactly(digits_run):
    recipe = _recipe("simclr-digits", f"model.init=run:{digits_run}")
    trained, _, _ = load_run_backbone(digits_run)
    started = prepared_backbone(recipe, 1, 16)
    for key, value in trained.state_dict().items():
        assert torch.equal(started.state_dict()[key], value), key
    assert all(p.requires_grad for p in started.parameters())


def test_weights_that_do_not_fit_are_one_line_naming_the_keys(digits_run, tmp_path):
    wider = _recipe("simclr-digits", f"model.init=run:{digits_run}", "model.width=32")
    with pytest.raises(ValueError, match=r"body.0.weight is \(16, 1, 3, 3\) there, \(32, 1, 3, 3\) here"):
        prepared_backbone(wider, 1, 16)
    other = _recipe("simclr-digits", f"model.init=run:{digits_run}", "model.backbone=resnet18")
    with pytest.raises(ValueError) as err:
        prepared_backbone(other, 1, 16)
    assert "\n" not in str(err.value) and "missing " in str(err.value) and "unexpected body.0.weight" in str(err.value)
    torch.save({"nothing": 1}, tmp_path / "empty.pt")
    args = ["train", "simclr-digits", "--smoke", "--quiet", "--runs-dir", str(tmp_path), "--set"]
    assert main([*args, f"model.init={tmp_path / 'nope.pt'}"]) == 2
    assert not (tmp_path / "simclr-digits").exists()


def test_an_image_encoder_inflates_into_its_clip_counterpart(tmp_path):
    image = ConvNetSmall(3, 8)
    torch.save(image.state_dict(), tmp_path / "image.pt")
    recipe = _recipe(
        "videomoco-synthetic", "model.backbone=convnet_small3d", "model.width=8", f"model.init={tmp_path / 'image.pt'}"
    )
    started = prepared_backbone(recipe, 3, 32)
    for key, value in inflate(image).state_dict().items():
        assert torch.equal(started.state_dict()[key], value), key


def test_a_frozen_backbone_stays_as_it_started_and_the_report_says_where_from(digits_run, tmp_path):
    args = ["train", "simclr-digits", "--smoke", "--quiet", "--runs-dir", str(tmp_path)]
    sets = ["--set", f"model.init=run:{digits_run}", "--set", "model.freeze=true"]
    assert main(args + sets) == 0
    (run,) = (tmp_path / "simclr-digits").iterdir()
    before, _, _ = load_run_backbone(digits_run)
    after, _, _ = load_run_backbone(run)
    for key, value in before.state_dict().items():
        assert torch.equal(after.state_dict()[key], value), key  # weights and BatchNorm statistics
    report = (run / "report.md").read_text()
    assert f"initialised from run:{digits_run} (frozen)" in report
    # the untrained row is the network it started as, not a random init, and says so
    assert f"| same network, starting weights (run:{digits_run}) |" in report and "random init" not in report
    assert json.loads((run / "results.json").read_text())["baseline"] == f"starting weights (run:{digits_run})"
    frozen = prepared_backbone(_recipe("simclr-digits", f"model.init=run:{digits_run}", "model.freeze=true"), 1, 16)
    frozen.train()  # a user's own loop: BatchNorm keeps its running statistics all the same
    assert not frozen.training and not any(m.training for m in frozen.modules())
    assert not any(p.requires_grad for p in frozen.parameters())
    assert json.loads((run / "results.json").read_text())["final"]


def test_tasks_without_a_backbone_refuse_it_and_freeze_needs_weights(digits_run, tmp_path):
    with pytest.raises(RecipeError, match="model.freeze keeps a trained backbone as it is: set model.init"):
        _recipe("simclr-digits", "model.freeze=true")
    args = ["train", "mvgrl-sbm", "--smoke", "--quiet", "--runs-dir", str(tmp_path)]
    assert main([*args, "--set", f"model.init=run:{digits_run}"]) == 2
