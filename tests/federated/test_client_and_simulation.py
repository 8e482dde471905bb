"""The ClientApp's MOON state and a real Flower simulation with a failing and a corrupt party."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, RecordDict

from contrastkit.federated.apps import DEFAULTS, build_model, load_data, train_on_party
from contrastkit.federated.run import federate

SETTINGS = {
    "dataset": "digits",
    "num-parties": 3,
    "local-epochs": 1,
    "batch-size": 32,
    "train-subset": 300,
    "test-subset": 100,
    "algorithm": "moon",
    "mu": 1.0,
}


def _message(arrays: ArrayRecord, server_round: int) -> RecordDict:
    return RecordDict({"arrays": arrays, "config": ConfigRecord({"server-round": server_round})})


def test_previous_model_is_exactly_the_last_upload_and_lives_in_context_state():
    settings = {**DEFAULTS, **SETTINGS}
    data = load_data(settings)
    torch.manual_seed(0)
    start = ArrayRecord(build_model(settings, data.splits).state_dict())
    context = Context(
        run_id=1, node_id=7, node_config={"partition-id": 1, "num-partitions": 3}, state=RecordDict(), run_config={}
    )
    assert context.state.get("moon.prev.0") is None  # round 1: no previous model, l_con = 0
    first = train_on_party(_message(start, 1), context, SETTINGS)
    uploaded = first["arrays"].to_torch_state_dict()
    remembered = context.state["moon.prev.0"].to_torch_state_dict()
    assert all(torch.equal(uploaded[k], remembered[k]) for k in uploaded)
    second = train_on_party(_message(start, 2), context, SETTINGS)
    assert int(second["metrics"]["partition-id"]) == 1
    assert int(second["metrics"]["num-examples"]) == len(data.parts[1])
    newest = context.state["moon.prev.0"].to_torch_state_dict()
    assert all(torch.equal(newest[k], v) for k, v in second["arrays"].to_torch_state_dict().items())


def test_simulation_survives_a_failing_and_a_corrupt_party(tmp_path, capsys):
    raw = {
        "name": "fed-test",
        "data": {"dataset": "digits", "image_size": 16, "train_subset": 300, "test_subset": 100},
        "federation": {
            "num_parties": 3,
            "rounds": 2,
            "local_epochs": 1,
            "batch_size": 32,
            "algorithms": ["moon"],
            "moon_mu": 1.0,
        },
        "faults": {"fail": [1], "corrupt": [2], "corrupt_mode": "nan", "at_round": 2},
        "trainer": {"seed": 0},
    }
    results = federate(raw, runs_dir=tmp_path)
    assert "[moon] round   2/2" in capsys.readouterr().out
    run = Path(results["run_dir"])
    history = json.loads((run / "rounds_moon.json").read_text())
    assert [r["round"] for r in history] == [0, 1, 2]
    round2 = history[2]
    assert len(round2["ok"]) == 1
    assert any("partition 1" in f or "injected failure" in f for f in round2["failed"]), round2
    assert any("partition 2" in r and "NaN" in r for r in round2["rejected"]), round2
    assert torch.isfinite(torch.tensor(round2["loss"]))
    report = (run / "report.md").read_text()
    assert "rejected" in report and "failed" in report
    for name in ["metrics.csv", "clients.csv", "accuracy.png", "clients.png", "results.json", "recipe.yaml"]:
        assert (run / name).is_file(), name


@pytest.mark.parametrize("bad", [{"federation": {"algorithms": ["scaffold"]}}, {"federation": {"beta": 0}}])
def test_bad_federated_recipes(bad):
    from contrastkit.config import RecipeError
    from contrastkit.federated.run import validate_federated

    with pytest.raises(RecipeError):
        validate_federated({"name": "x", **bad})
