"""Recipe validation and the CLI's error contract: one line on stderr, exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from contrastkit.cli import main
from contrastkit.config import RecipeError, apply_overrides, list_recipes, load_recipe, smoke, validate


def test_every_shipped_recipe_validates_and_has_a_description():
    recipes = list_recipes()
    assert "moco-hcl-digits" in recipes
    from contrastkit.federated.run import validate_federated

    for name, description in recipes.items():
        assert description, name
        raw = load_recipe(name)
        (validate_federated if "federation" in raw else validate)(raw)


def test_unknown_key_is_named_with_the_allowed_ones():
    raw = apply_overrides(load_recipe("moco-hcl-digits"), ["optim.learning_rate=0.1"])
    with pytest.raises(RecipeError, match=r"unknown key 'optim.learning_rate'; allowed in optim: cosine, epochs, lr"):
        validate(raw)


def test_unknown_method_key_lists_that_methods_options():
    raw = apply_overrides(load_recipe("simclr-digits"), ["method.queue_size=10"])
    with pytest.raises(RecipeError, match=r"unknown key 'method.queue_size'; allowed in method: beta, name"):
        validate(raw)


def test_bad_values_and_names():
    with pytest.raises(RecipeError, match="method.name must be one of"):
        validate(apply_overrides(load_recipe("moco-digits"), ["method.name=byol"]))
    with pytest.raises(RecipeError, match="tau_plus"):
        validate(apply_overrides(load_recipe("moco-digits"), ["method.tau_plus=1.5"]))
    with pytest.raises(RecipeError, match="num_hard"):
        validate(apply_overrides(load_recipe("mochi-digits"), ["method.num_hard=5000"]))
    with pytest.raises(RecipeError, match="no recipe 'nope'"):
        load_recipe("nope")


def test_overrides_parse_yaml_values_and_smoke_shrinks():
    raw = apply_overrides(
        load_recipe("moco-cifar10"), ["optim.epochs=7", "method.symmetric=true", "eval.monitor_bank=null"]
    )
    assert raw["optim"]["epochs"] == 7 and raw["method"]["symmetric"] is True and raw["eval"]["monitor_bank"] is None
    small = validate(smoke(raw))
    assert small.optim.epochs == 2 and small.data.train_subset == 512 and small.method.queue_size <= 256


def _exit_code(*args: str) -> int:
    try:
        return main(list(args))
    except SystemExit as stop:  # argparse's own errors
        return int(stop.code or 0)


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "nope"], "no recipe 'nope'"),
        (["train", "moco-digits", "--set", "optim.lrr=1"], "unknown key 'optim.lrr'"),
        (["train", "moco-digits", "--set", "optim.lr=-1"], "optim.lr"),
        (["train", "moco-digits", "--set", "oops"], "--set expects key=value"),
        (["train", "moco-cifar10", "--data-root", "/nonexistent"], "CIFAR-10 not found"),
        (["train", "--resume", "/nonexistent"], "cannot resume"),
        (["eval", "/nonexistent"], "not a run folder"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_cli_user_errors_exit_2_with_one_line(args, message, capsys):
    assert _exit_code(*args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_the_installed_command_exits_2_with_one_line():
    done = subprocess.run(
        [sys.executable, "-m", "contrastkit.cli", "train", "moco-digits", "--set", "optim.lrr=1"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "unknown key 'optim.lrr'" in done.stderr


def test_recipes_command_lists_one_line_each(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == len(list_recipes()) and out[0].split()[0] in list_recipes()


def test_unknown_dataset_and_backbone_name_the_registered_ones():
    with pytest.raises(RecipeError, match=r"data.dataset: unknown dataset 'imagenet'; registered: .*cifar10.*digits"):
        validate(apply_overrides(load_recipe("moco-digits"), ["data.dataset=imagenet"]))
    with pytest.raises(RecipeError, match=r"model.backbone: unknown backbone 'vit'; registered: convnet_small"):
        validate(apply_overrides(load_recipe("moco-digits"), ["model.backbone=vit"]))
    with pytest.raises(RecipeError, match=r"data.dataset 'cora' does not fit method moco; use one of cifar10, digits"):
        validate(apply_overrides(load_recipe("moco-digits"), ["data.dataset=cora"]))
    with pytest.raises(RecipeError, match=r"does not fit method mvgrl \(level graph\); use one of imdb-binary"):
        validate(apply_overrides(load_recipe("mvgrl-cora"), ["method.level=graph"]))


def test_federated_unknown_key_lists_that_sections_keys():
    from contrastkit.federated.run import validate_federated

    raw = apply_overrides(load_recipe("moon-digits"), ["data.batch_size=32"])
    allowed = "dataset, image_size, root, test_subset, train_subset"
    with pytest.raises(RecipeError, match=rf"unknown key 'data.batch_size'; allowed in data: {allowed}$"):
        validate_federated(raw)


def test_datasets_declare_their_own_options():
    """An image dataset refuses clip options and names its own; a clip dataset takes them."""
    from contrastkit.data.images import ImageData
    from contrastkit.data.video_folders import ClipData

    raw = load_recipe("moco-digits")
    with pytest.raises(
        RecipeError, match=r"unknown key 'data.video_frames'; allowed in data: augmentation, batch_size"
    ):
        validate({**raw, "data": {**raw["data"], "video_frames": 8}})
    assert type(validate(raw).data) is ImageData
    clips = validate(load_recipe("videomoco-synthetic")).data
    assert isinstance(clips, ClipData) and clips.clip_length == 16


def test_recipes_stored_by_earlier_versions_still_load():
    """A run folder's recipe.yaml from before: every dataset's options under data, and the key
    encoder's EMA rate under method.momentum."""
    from contrastkit.config import upgrade_stored_recipe

    stored = validate(load_recipe("moco-digits")).to_dict()
    stored["method"]["momentum"] = stored["method"].pop("ema_momentum")
    stored["data"].update(video_frames=32, clip_length=16, text_encoder="minilm", glyph_contrast=0.35, download=False)
    with pytest.raises(RecipeError, match="unknown key 'data.video_frames'"):
        validate(stored)
    upgraded = upgrade_stored_recipe(stored)
    assert "momentum" in stored["method"]  # the stored copy is left as it was
    assert validate(upgraded).to_dict() == validate(load_recipe("moco-digits")).to_dict()


def test_a_dataset_without_its_tasks_options_is_refused_in_one_line(tmp_path):
    from contrastkit.data.images import ImageData
    from contrastkit.pipeline.tasks.base import data_settings
    from contrastkit.registry import DATASETS, register_dataset

    register_dataset("toy-bare-images", task="images")(lambda settings, root, seed: None)
    try:
        recipe = validate({**load_recipe("moco-digits"), "data": {"dataset": "toy-bare-images"}})
        with pytest.raises(
            RecipeError, match=r"declares DataSettings, which lacks the ImageData options .*settings=ImageData"
        ):
            data_settings(recipe, ImageData)
    finally:
        DATASETS.remove("toy-bare-images")


def test_an_old_option_name_trains_with_a_one_line_note(tmp_path, capsys):
    import warnings

    raw = load_recipe("moco-digits")
    raw["method"]["momentum"] = raw["method"].pop("ema_momentum")
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["train", str(tmp_path / "old.yaml"), "--smoke", "--quiet", "--runs-dir", str(tmp_path)]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "momentum" in line]
    assert notes and set(notes) == {
        "contrastkit: note: method.momentum is now method.ema_momentum (the key encoder's EMA rate; "
        "optim.momentum is SGD's); the old name still works"
    }
    (run,) = (tmp_path / "moco-digits").iterdir()
    assert yaml.safe_load((run / "recipe.yaml").read_text())["method"]["ema_momentum"] == 0.99


def test_a_closed_pipe_on_stdout_ends_the_program_quietly():
    """``contrastkit recipes | head -1``: the reader leaves early; no traceback, exit 1."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "contrastkit.cli", "recipes"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()  # no reader: the first write fails with EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1 and "Traceback" not in err, err


def test_bare_command_prints_the_usage_and_version_prints_the_version(capsys):
    from contrastkit import __version__

    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: contrastkit") and "train" in out and "zoo" in out
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"contrastkit {__version__}"


def test_every_argument_of_every_command_has_its_help():
    import argparse

    from contrastkit.cli import _parser

    (commands,) = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    missing = [
        f"{name} {action.dest}"
        for name, parser in commands.choices.items()
        for action in parser._actions
        if not action.help and not isinstance(action, argparse._SubParsersAction)
    ]
    assert not missing, missing
