"""Every recipe honours ``--data-root`` (issue 32, item 4): a root that does not hold what the
recipe's dataset reads is one line naming what was looked for, before any run folder is made; a
generated or bundled dataset says the flag is not used."""

from __future__ import annotations

import pytest

from contrastkit.cli import main
from contrastkit.config import list_recipes, load_recipe, smoke, validate
from contrastkit.data.errors import DataError
from contrastkit.pipeline.tasks.base import load_dataset
from contrastkit.registry import DATASETS

TRAIN = [n for n in list_recipes() if "federation" not in load_recipe(n)]
# read a path of the user's own (data.path / data.root), not the data root: their errors are tested with them
OWN_PATH = {"crossclr-features", "aecr-reside", "simclr-folder", "videomoco-ucf101", "vclr-ucf101"}


@pytest.mark.parametrize("name", [n for n in TRAIN if n not in OWN_PATH])
def test_a_root_without_the_recipes_data_is_refused_or_declared_unused(name, tmp_path):
    recipe = validate(smoke(load_recipe(name)))
    entry = DATASETS.get(recipe.data.dataset)
    if not entry.reads_root:
        return  # generated or bundled: the CLI says --data-root is not used (tested below)
    with pytest.raises(DataError) as raised:
        load_dataset(recipe, tmp_path)
    message = str(raised.value)
    assert "\n" not in message and (str(tmp_path) in message or "--data-root" in message), message


@pytest.mark.parametrize(
    "name,looked_for", [("videomoco-synthetic", "cifar10/"), ("aecr-synthetic", "dehaze/sots_indoor_d4")]
)
def test_the_cli_refuses_before_making_a_run_folder(name, looked_for, tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(
        ["train", name, "--smoke", "--no-progress", "--data-root", str(tmp_path / "empty"), "--runs-dir", str(runs)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and looked_for in err[0], err
    assert not runs.exists()


def test_a_generated_dataset_says_the_root_is_not_used(tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(["train", "moco-digits", "--smoke", "--quiet", "--data-root", str(tmp_path), "--runs-dir", str(runs)])
    assert code == 0
    assert (
        f"digits is generated or bundled and reads no data root; --data-root {tmp_path} is not used"
        in capsys.readouterr().err
    )
