"""Flower ``ClientApp`` and ``ServerApp`` for FedAvg, FedProx and MOON.

Settings travel as a flat mapping of scalars, Flower's run config: the Flower App's
``pyproject.toml`` (``[tool.flwr.app.config]``) as ``contrastkit federate`` writes it, or as a
deployment's operator edits it, read through ``context.run_config`` by the module-level
``client_app`` / ``server_app``. ``build_client_app`` / ``build_server_app`` bind settings over
it for use from Python. Each SuperNode's ``node_config`` names its ``partition-id`` and
``num-partitions``.

``algorithms`` (a comma list, with ``mus`` beside it) runs several algorithms one after another
in one run, so a simulation's workers start once: the ServerApp trains a fresh global model per
algorithm and names each round's algorithm and ``mu`` in the train config it sends
(``ROUND_KEYS``), which the ClientApp applies over its own settings. A ``results-file`` may hold
``{algorithm}``, replaced by each algorithm's name.

MOON's previous local model lives in ``context.state`` (a ``RecordDict`` that Flower keeps per
node across rounds), not in a module-level dict.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from torch import Tensor

from contrastkit._allocator import keep_heap_warm
from contrastkit._files import write_atomic
from contrastkit.data.images import ImageSplits, load_cifar10, load_digits
from contrastkit.federated.local import LocalSettings, evaluate, local_train
from contrastkit.federated.model import FederatedModel
from contrastkit.federated.partition import dirichlet_partition
from contrastkit.federated.simulation import RESULTS_DIR_ENV
from contrastkit.federated.strategy import CheckedFedAvg
from contrastkit.views.image import normalize_images

__all__ = [
    "DEFAULTS",
    "ROUND_KEYS",
    "build_client_app",
    "build_server_app",
    "client_app",
    "server_app",
    "train_on_party",
]

DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "data-root": "",
    "image-size": 16,
    "train-subset": 0,
    "test-subset": 0,
    "seed": 0,
    "num-parties": 10,
    "dirichlet-beta": 0.5,
    "min-size": 10,
    "backbone": "moon_cnn",
    "width": 0,
    "proj-dim": 256,
    "algorithm": "fedavg",
    "rounds": 10,
    "local-epochs": 1,
    "batch-size": 64,
    "lr": 0.01,
    "momentum": 0.9,
    "weight-decay": 1e-5,
    "mu": 0.0,
    "temperature": 0.5,
    "moon-buffer": 1,
    "fraction": 1.0,
    "round-timeout": 3600.0,
    "fault-fail": "",
    "fault-corrupt": "",
    "fault-corrupt-mode": "nan",
    "fault-round": 1,
    "threads": 1,
    "results-file": "",
    "algorithms": "",  # comma list run one after another; empty: just "algorithm"
    "mus": "",  # the mu of each of "algorithms" (comma list); empty: "mu" for all
    "announce": False,  # print a header line before the rounds (contrastkit federate)
    "quiet": False,  # no line per round on the console
}


ROUND_KEYS = ("algorithm", "mu")  # what the ServerApp's train config sets for the parties each round


def settings_of(
    bound: Mapping[str, Any] | None, context: Context, round_config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Defaults, overridden by the run config, by settings bound at build time, and by the
    ``ROUND_KEYS`` of the round's train config."""
    out = dict(DEFAULTS)
    out.update({k: v for k, v in context.run_config.items() if k in DEFAULTS})
    out.update(bound or {})
    out.update({k: v for k, v in (round_config or {}).items() if k in ROUND_KEYS})
    return out


@dataclass
class _Data:
    splits: ImageSplits
    parts: list[Tensor]


@lru_cache(maxsize=4)
def _load(
    dataset: str,
    root: str,
    image_size: int,
    train_subset: int,
    test_subset: int,
    seed: int,
    num_parties: int,
    beta: float,
    min_size: int,
) -> _Data:
    if dataset == "digits":
        splits = load_digits(image_size, seed=seed)
    elif dataset == "cifar10":
        splits = load_cifar10(root or None)
    else:
        raise ValueError(f"federated dataset must be digits or cifar10, got {dataset!r}")
    splits = splits.subset(train_subset or None, test_subset or None, seed)
    parts = dirichlet_partition(splits.train_labels, num_parties, beta, seed=seed, min_size=min_size)
    return _Data(splits, parts)


def load_data(s: Mapping[str, Any], num_parties: int | None = None) -> _Data:
    """The dataset and its Dirichlet partition (cached per process)."""
    return _load(
        str(s["dataset"]),
        str(s["data-root"]),
        int(s["image-size"]),
        int(s["train-subset"]),
        int(s["test-subset"]),
        int(s["seed"]),
        int(num_parties or s["num-parties"]),
        float(s["dirichlet-beta"]),
        int(s["min-size"]),
    )


def build_model(s: Mapping[str, Any], splits: ImageSplits) -> FederatedModel:
    return FederatedModel(
        str(s["backbone"]),
        splits.channels,
        splits.image_size,
        splits.num_classes,
        int(s["proj-dim"]),
        int(s["width"]) or None,
    )


def _preprocess(splits: ImageSplits) -> Any:
    return lambda x: normalize_images(x, splits.mean, splits.std)


def _ids(text: Any) -> set[int]:
    return {int(v) for v in str(text).replace(" ", "").split(",") if v}


# --- client ---------------------------------------------------------------------------------------


def train_on_party(content: RecordDict, context: Context, bound: Mapping[str, Any] | None = None) -> RecordDict:
    """One party's round: the global ``arrays`` in, the trained ``arrays`` and ``metrics`` out."""
    config = dict(content.config_records["config"])
    s = settings_of(bound, context, config)
    torch.set_num_threads(int(s["threads"]))
    keep_heap_warm()  # opt-in ($CONTRASTKIT_KEEP_HEAP_WARM=1): this process is a party's worker
    pid = int(context.node_config.get("partition-id", 0))
    data = load_data(s, int(context.node_config.get("num-partitions", s["num-parties"])))
    server_round = int(config.get("server-round", 1))  # type: ignore[arg-type]
    rows = data.parts[pid]
    model = build_model(s, data.splits)
    model.load_state_dict(content.array_records["arrays"].to_torch_state_dict())
    settings = LocalSettings(
        str(s["algorithm"]),
        int(s["local-epochs"]),
        int(s["batch-size"]),
        float(s["lr"]),
        float(s["momentum"]),
        float(s["weight-decay"]),
        float(s["mu"]),
        float(s["temperature"]),
    )
    global_model = copy.deepcopy(model) if settings.algorithm in ("fedprox", "moon") else None
    previous = _previous_models(context, model, int(s["moon-buffer"])) if settings.algorithm == "moon" else []
    if pid in _ids(s["fault-fail"]) and server_round == int(s["fault-round"]):
        raise RuntimeError(f"injected failure on partition {pid} in round {server_round}")
    g = torch.Generator().manual_seed((int(s["seed"]) * 1009 + server_round) * 1013 + pid)
    start = time.perf_counter()
    losses = local_train(
        model,
        data.splits.train_images[rows],
        data.splits.train_labels[rows],
        settings,
        preprocess=_preprocess(data.splits),
        augment=s["dataset"] == "cifar10",
        generator=g,
        global_model=global_model,
        previous_models=previous,
    )
    state = model.state_dict()
    if settings.algorithm == "moon":
        _remember(context, state, int(s["moon-buffer"]))
    if pid in _ids(s["fault-corrupt"]) and server_round == int(s["fault-round"]):
        state = _corrupt(state, str(s["fault-corrupt-mode"]))
    metrics = MetricRecord(
        {
            "num-examples": len(rows),
            "partition-id": pid,
            "seconds": time.perf_counter() - start,
            **{f"train-{k}": v for k, v in losses.items()},
        }
    )
    return RecordDict({"arrays": ArrayRecord(state), "metrics": metrics})


def _previous_models(context: Context, template: FederatedModel, buffer: int) -> list[FederatedModel]:
    out = []
    for slot in range(buffer):
        record = context.state.get(f"moon.prev.{slot}")
        if isinstance(record, ArrayRecord):
            m = copy.deepcopy(template)
            m.load_state_dict(record.to_torch_state_dict())
            out.append(m)
    return out


def _remember(context: Context, state: Mapping[str, Tensor], buffer: int) -> None:
    """FIFO of the last ``buffer`` local models, newest in slot 0 (a proper deque, not the official code's list)."""
    for slot in range(buffer - 1, 0, -1):
        older = context.state.get(f"moon.prev.{slot - 1}")
        if isinstance(older, ArrayRecord):
            context.state[f"moon.prev.{slot}"] = older
    context.state["moon.prev.0"] = ArrayRecord({k: v.detach().clone() for k, v in state.items()})


def _corrupt(state: Mapping[str, Tensor], mode: str) -> dict[str, Tensor]:
    out = {k: v.clone() for k, v in state.items()}
    first = next(k for k, v in out.items() if v.is_floating_point())
    if mode == "shape":
        out[first] = torch.zeros(3, 3)
    else:
        out[first] = torch.full_like(out[first], float("nan"))
    return out


def build_client_app(bound: Mapping[str, Any] | None = None) -> ClientApp:
    """A ClientApp whose settings are ``bound`` over the run config."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return Message(content=train_on_party(msg.content, context, bound), reply_to=msg)

    return app


# --- server ---------------------------------------------------------------------------------------


def results_path(bound: Mapping[str, Any] | None, s: Mapping[str, Any]) -> Path | None:
    """Where the ServerApp writes its round history.

    ``contrastkit federate`` binds an absolute path inside its run folder. A ``results-file``
    that arrives in a submitted run config is only a file name: it lands in the folder the
    SuperLink's operator chose (``$CONTRASTKIT_FL_RESULTS_DIR``, default ``./contrastkit-results``),
    so whoever submits a run cannot choose where the server writes.
    """
    if bound and bound.get("results-file"):
        return Path(str(bound["results-file"]).replace("{algorithm}", str(s.get("algorithm", ""))))
    name = str(s.get("results-file") or "").replace("{algorithm}", str(s.get("algorithm", "")))
    if not name:
        return None
    if name != Path(name).name or name in (".", "..") or "\\" in name:
        raise ValueError(
            f"results-file {name!r} must be a plain file name; the ServerApp writes it into "
            f"${RESULTS_DIR_ENV} (set by whoever runs the SuperLink)"
        )
    return Path(os.environ.get(RESULTS_DIR_ENV, "contrastkit-results")) / name


def _server_main(grid: Grid, context: Context, bound: Mapping[str, Any] | None) -> None:
    s = settings_of(bound, context)
    results = results_path(bound, s)
    if s.get("announce"):
        print(f"== {s['algorithm']}: {s['num-parties']} parties, {s['rounds']} rounds", flush=True)
    torch.set_num_threads(max(1, int(s["threads"])))
    data = load_data(s)
    torch.manual_seed(int(s["seed"]))
    model = build_model(s, data.splits)
    preprocess = _preprocess(data.splits)
    history: list[dict[str, Any]] = []
    clock = {"last": time.perf_counter()}
    strategy = CheckedFedAvg(
        fraction_train=float(s["fraction"]),
        fraction_evaluate=0.0,
        min_train_nodes=max(1, int(float(s["fraction"]) * int(s["num-parties"]))),
        min_available_nodes=int(s["num-parties"]),
    )

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model.load_state_dict(arrays.to_torch_state_dict())
        result = evaluate(model, data.splits.test_images, data.splits.test_labels, preprocess)
        now = time.perf_counter()
        entry = {
            "round": server_round,
            **result,
            "seconds": now - clock["last"],
            **strategy.round_report.get(server_round, {}),
        }
        clock["last"] = now
        history.append(entry)
        if not s["quiet"]:
            print(
                f"[{s['algorithm']}] round {server_round:3d}/{s['rounds']}: accuracy {result['accuracy']:5.2f}%  "
                f"loss {result['loss']:.3f}  ({entry['seconds']:.1f} s)"
                + (f"  failed {entry['failed']}" if entry.get("failed") else "")
                + (f"  rejected {entry['rejected']}" if entry.get("rejected") else ""),
                flush=True,
            )
        _write(results, history)
        return MetricRecord({"accuracy": result["accuracy"], "loss": result["loss"]})

    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(model.state_dict()),
        num_rounds=int(s["rounds"]),
        timeout=float(s["round-timeout"]),
        train_config=ConfigRecord({k: s[k] for k in ROUND_KEYS}),
        evaluate_fn=evaluate_fn,
    )
    _write(results, history)


def _write(path: Path | None, history: list[dict[str, Any]]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(history, indent=2))


def _each_algorithm(s: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The settings of every algorithm of a run: ``algorithms`` / ``mus``, else the one ``algorithm``."""
    names = [a.strip() for a in str(s["algorithms"]).split(",") if a.strip()]
    if not names:
        return [{}]
    mus = [float(m) for m in str(s["mus"]).split(",") if m.strip()] or [float(s["mu"])] * len(names)
    if len(mus) != len(names):
        raise ValueError(f"mus {s['mus']!r} must give one value for each of algorithms {s['algorithms']!r}")
    return [{"algorithm": a, "mu": mu} for a, mu in zip(names, mus, strict=True)]


def build_server_app(bound: Mapping[str, Any] | None = None) -> ServerApp:
    """A ServerApp whose settings are ``bound`` over the run config; it trains one fresh global
    model for each of the run's algorithms (``_each_algorithm``), one after another."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        for entry in _each_algorithm(settings_of(bound, context)):
            _server_main(grid, context, {**(bound or {}), **entry})

    return app


client_app = build_client_app()
server_app = build_server_app()
