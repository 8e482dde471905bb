"""A new modality is one plugin file + a recipe: ``tests/plugins/toy_vectors.py`` registers a
dataset, a task and a method outside the package, and the unchanged CLI trains, evaluates and
resumes it (the recipe names the plugin; run folders record it, so eval and resume find it)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml

from contrastkit.cli import main
from contrastkit.config import RecipeError, load_recipe, validate

PLUGIN_RECIPE = Path(__file__).resolve().parents[1] / "plugins" / "toy-vectors.yaml"


def test_user_plugin_trains_evaluates_and_resumes_through_the_cli(tmp_path, capsys):
    assert main(["train", str(PLUGIN_RECIPE), "--no-progress", "--runs-dir", str(tmp_path)]) == 0
    (run,) = (tmp_path / "toy-vectors").iterdir()
    results = json.loads((run / "results.json").read_text())
    assert results["method"] == "noisy-views" and results["metrics"][0]["key"] == "knn"
    assert 0 <= results["final"]["knn"] <= 100 and "knn" in results["random_init"]
    assert {"loss.png", "embedding.png", "report.md", "checkpoints/last.ckpt"} <= {
        str(p.relative_to(run)) for p in run.rglob("*")
    }
    with open(run / "steps.csv") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5, losses
    recorded = yaml.safe_load((run / "recipe.yaml").read_text())["plugins"]
    assert recorded == [str(PLUGIN_RECIPE.parent / "toy_vectors.py")]  # absolute: eval/resume from anywhere

    assert main(["eval", str(run), "--no-progress"]) == 0
    again = json.loads((run / "results.json").read_text())
    assert again["final"]["knn"] == pytest.approx(results["final"]["knn"])

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "results.json").unlink()
    assert main(["train", "--resume", str(copy), "--no-progress"]) == 0
    assert "toy-vectors (noisy-views)" in capsys.readouterr().out


def test_plugin_entries_are_validated_like_built_ins(tmp_path):
    raw = load_recipe(str(PLUGIN_RECIPE))
    with pytest.raises(RecipeError, match=r"unknown key 'method.noize'; allowed in method: name, noise, temperature"):
        validate({**raw, "method": {"name": "noisy-views", "noize": 1}})
    with pytest.raises(RecipeError, match=r"unknown key 'data.clusterz'; allowed in data: .*clusters, dataset"):
        validate({**raw, "data": {"dataset": "toy_clusters", "clusterz": 3}})
    with pytest.raises(RecipeError, match=r"data.clusters: Input should be greater than or equal to 2"):
        validate({**raw, "data": {"dataset": "toy_clusters", "clusters": 1}})
    assert validate({**raw, "data": {"dataset": "toy_clusters", "clusters": 3}}).data.clusters == 3
    with pytest.raises(RecipeError, match=r"data.dataset 'digits' does not fit method noisy-views; use one of"):
        validate({**raw, "data": {"dataset": "digits"}})
    with pytest.raises(RecipeError, match="plugin file nope.py not found"):
        validate({**raw, "plugins": ["nope.py"]})
    with pytest.raises(RecipeError, match="plugin module 'no_such_module_xyz' cannot be imported"):
        validate({**raw, "plugins": ["no_such_module_xyz"]})


@pytest.mark.parametrize("example", [0, 1], ids=["image-method", "clip-method"])
def test_the_adding_a_method_examples_in_the_docs_run(example, tmp_path):
    """docs/design.md's example methods and recipes, copied out as written, train at smoke size
    through the unchanged CLI."""
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "design.md").read_text()
    section = doc.split("## Adding a method", 1)[1]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[example]
    recipe = re.findall(r"```yaml\n(.*?)```", section, re.S)[example]
    (plugin,) = yaml.safe_load(recipe)["plugins"]
    name = re.match(r"# (\S+)\.yaml", recipe).group(1)
    (tmp_path / plugin).write_text(code)
    (tmp_path / f"{name}.yaml").write_text(recipe)
    args = ["train", str(tmp_path / f"{name}.yaml"), "--smoke", "--no-progress", "--runs-dir", str(tmp_path)]
    assert main(args) == 0
    (run,) = (tmp_path / name).iterdir()
    results = json.loads((run / "results.json").read_text())
    assert results["method"] == yaml.safe_load(recipe)["method"]["name"]
    assert all(value is not None for value in results["final"].values() if isinstance(value, float))
