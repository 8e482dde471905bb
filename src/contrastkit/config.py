"""Recipes: YAML files validated into typed settings, with errors that say what to fix.

A recipe has the sections ``method``, ``data``, ``model``, ``optim``, ``eval`` and ``trainer``.
``method.name`` picks the method; the rest of ``method`` are that method's own options.
Unknown keys are rejected with the list of allowed ones.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["Recipe", "RecipeError", "apply_overrides", "list_recipes", "load_recipe", "smoke"]


class RecipeError(ValueError):
    """A recipe is missing, malformed or holds an unknown or invalid key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimCLRParams(_Strict):
    name: Literal["simclr"] = "simclr"
    temperature: float = Field(0.5, gt=0)
    beta: float = Field(0.0, ge=0)
    tau_plus: float = Field(0.0, ge=0, lt=1)
    proj_hidden: int = Field(512, gt=0)
    proj_dim: int = Field(128, gt=0)
    proj_layers: int = Field(2, ge=1)
    proj_batch_norm: bool = True


class MoCoParams(_Strict):
    name: Literal["moco"] = "moco"
    temperature: float = Field(0.2, gt=0)
    queue_size: int = Field(4096, gt=0)
    momentum: float = Field(0.99, ge=0, le=1)
    split_bn: int = Field(4, ge=1)
    shuffle_keys: bool = True
    symmetric: bool = False
    beta: float = Field(0.0, ge=0)
    tau_plus: float = Field(0.0, ge=0, lt=1)
    proj_hidden: int = Field(512, gt=0)
    proj_dim: int = Field(128, gt=0)
    proj_layers: int = Field(2, ge=1)


class MoCHiParams(MoCoParams):
    name: Literal["mochi"] = "mochi"  # type: ignore[assignment]
    num_hard: int = Field(256, gt=0)
    num_pair_mix: int = Field(256, ge=0)
    num_query_mix: int = Field(128, ge=0)
    mix_start_epoch: int = Field(0, ge=0)
    mask_own_keys: bool = True

    @model_validator(mode="after")
    def _hard_fits_queue(self) -> MoCHiParams:
        if self.num_hard > self.queue_size:
            raise ValueError(f"num_hard ({self.num_hard}) must not exceed queue_size ({self.queue_size})")
        return self


class DenseCLParams(MoCoParams):
    name: Literal["densecl"] = "densecl"  # type: ignore[assignment]
    dense_weight: float = Field(0.5, ge=0, le=1)
    dense_hidden: int | None = Field(None, gt=0)
    dense_dim: int = Field(128, gt=0)
    dense_queue_size: int | None = Field(None, gt=0)


class MVGRLParams(_Strict):
    name: Literal["mvgrl"] = "mvgrl"
    level: Literal["node", "graph"] = "node"
    hidden: int = Field(512, gt=0)
    layers: int = Field(4, ge=1)
    diffusion: Literal["ppr", "heat"] = "ppr"
    alpha: float = Field(0.2, gt=0, le=1)
    heat_t: float = Field(5.0, ge=0)
    self_loops: float = Field(1.0, ge=0)
    diffusion_topk: int | None = Field(None, gt=0)
    eps_sparsify: bool = False
    window_size: int = Field(2000, gt=0)
    windows: int = Field(4, gt=0)
    estimator: Literal["jsd", "infonce"] = "jsd"
    beta: float = Field(0.0, ge=0)
    patience: int = Field(20, gt=0)
    train_encoders: bool = True
    official_padding: bool = False


METHOD_PARAMS: dict[str, type[_Strict]] = {
    "simclr": SimCLRParams,
    "moco": MoCoParams,
    "mochi": MoCHiParams,
    "densecl": DenseCLParams,
    "mvgrl": MVGRLParams,
}
IMAGE_DATASETS = ("digits", "cifar10", "image_folder")
NODE_DATASETS = ("sbm", "cora", "citeseer", "pubmed")
GRAPH_DATASETS = ("sbm_graphs", "mutag", "ptc_mr", "imdb-binary", "imdb-multi", "proteins", "reddit-binary")


class DataSettings(_Strict):
    dataset: Literal[
        "digits",
        "cifar10",
        "image_folder",
        "sbm",
        "cora",
        "citeseer",
        "pubmed",
        "sbm_graphs",
        "mutag",
        "ptc_mr",
        "imdb-binary",
        "imdb-multi",
        "proteins",
        "reddit-binary",
    ] = "digits"
    root: str | None = None
    path: str | None = None
    image_size: int = Field(16, gt=0)
    augmentation: Literal["moco_v2", "moco_cifar_demo", "simclr", "digits"] = "digits"
    train_subset: int | None = Field(None, gt=0)
    test_subset: int | None = Field(None, gt=0)
    batch_size: int = Field(256, gt=0)
    num_workers: int = Field(0, ge=0)
    download: bool = False
    normalize_features: bool = True


class ModelSettings(_Strict):
    backbone: Literal["convnet_small", "resnet18", "resnet34", "resnet50", "moon_cnn"] = "convnet_small"
    width: int | None = Field(None, gt=0)


class OptimSettings(_Strict):
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(0.06, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    epochs: int = Field(20, gt=0)
    warmup_epochs: float = Field(0.0, ge=0)
    cosine: bool = True


class EvalSettings(_Strict):
    knn_k: int = Field(200, gt=0)
    knn_temperature: float = Field(0.1, gt=0)
    monitor_every: int = Field(1, ge=1)
    monitor_bank: int | None = Field(None, gt=0)
    linear_probe: bool = True
    probe_epochs: int = Field(100, gt=0)
    embedding_map_points: int = Field(1500, gt=0)
    node_repeats: int = Field(50, gt=0)
    node_weight_decay: float = Field(0.0, ge=0)


class TrainerSettings(_Strict):
    seed: int = 0
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: int | str = 1
    num_nodes: int = Field(1, ge=1)
    strategy: str = "auto"
    precision: str = "32-true"
    threads: int | None = Field(None, gt=0)
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None


class Recipe(_Strict):
    """A validated recipe."""

    name: str
    description: str = ""
    method: SimCLRParams | MoCoParams | MoCHiParams | DenseCLParams | MVGRLParams = Field(discriminator="name")
    data: DataSettings = DataSettings()
    model: ModelSettings = ModelSettings()
    optim: OptimSettings = OptimSettings()
    eval: EvalSettings = EvalSettings()
    trainer: TrainerSettings = TrainerSettings()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @model_validator(mode="after")
    def _data_fits_method(self) -> Recipe:
        method, dataset = self.method, self.data.dataset
        allowed: tuple[str, ...] = IMAGE_DATASETS
        if isinstance(method, MVGRLParams):
            allowed = NODE_DATASETS if method.level == "node" else GRAPH_DATASETS
        if dataset not in allowed:
            level = f" (level {method.level})" if isinstance(method, MVGRLParams) else ""
            raise ValueError(
                f"data.dataset {dataset!r} does not fit method {method.name}{level}; use one of {', '.join(allowed)}"
            )
        return self


def _recipe_dir() -> Path:
    return Path(str(resources.files("contrastkit") / "recipes"))


def list_recipes() -> dict[str, str]:
    """Shipped recipe names with their one-line descriptions."""
    out = {}
    for path in sorted(_recipe_dir().glob("*.yaml")):
        raw = yaml.safe_load(path.read_text()) or {}
        out[path.stem] = str(raw.get("description", "")).strip().splitlines()[0] if raw.get("description") else ""
    return out


def _allowed_keys(section: str, raw_method: dict[str, Any] | None) -> list[str]:
    models: dict[str, type[BaseModel]] = {
        "data": DataSettings,
        "model": ModelSettings,
        "optim": OptimSettings,
        "eval": EvalSettings,
        "trainer": TrainerSettings,
    }
    if section == "method":
        name = (raw_method or {}).get("name", "")
        params = METHOD_PARAMS.get(str(name))
        return sorted(params.model_fields) if params else []
    if section in models:
        return sorted(models[section].model_fields)
    return sorted(Recipe.model_fields)


def _explain(err: ValidationError, raw: dict[str, Any]) -> str:
    problems = []
    for item in err.errors():
        loc = [str(p) for p in item["loc"] if not (isinstance(p, str) and p in METHOD_PARAMS)]
        where = ".".join(loc)
        if item["type"] == "extra_forbidden":
            section = loc[0] if len(loc) > 1 else ""
            allowed = _allowed_keys(section, raw.get("method") if isinstance(raw.get("method"), dict) else None)
            problems.append(
                f"unknown key '{where}'; allowed{' in ' + section if section else ''}: {', '.join(allowed)}"
            )
        elif item["type"] == "value_error":
            message = str(item["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        elif item["type"] == "union_tag_invalid":
            problems.append(f"method.name must be one of {', '.join(METHOD_PARAMS)}, got {item['input']!r}")
        else:
            problems.append(f"{where}: {item['msg']} (got {item.get('input')!r})")
    return "; ".join(problems)


def validate(raw: dict[str, Any]) -> Recipe:
    """Validate a recipe dictionary, raising ``RecipeError`` with a readable message."""
    if not isinstance(raw, dict):
        raise RecipeError(f"a recipe must be a mapping, got {type(raw).__name__}")
    try:
        return Recipe.model_validate(raw)
    except ValidationError as err:
        raise RecipeError(f"recipe '{raw.get('name', '?')}': {_explain(err, raw)}") from None


def load_recipe(name_or_path: str) -> dict[str, Any]:
    """The raw dictionary of a shipped recipe (by name) or of a YAML file (by path)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = _recipe_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(list_recipes())
        raise RecipeError(f"no recipe '{name_or_path}' (not a file, not a shipped recipe); shipped: {known}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise RecipeError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path} must hold a mapping of sections, got {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    return raw


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (values parsed as YAML) to a raw recipe."""
    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise RecipeError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise RecipeError(f"--set {key}: '{part}' is not a section")
            node = child
        node[parts[-1]] = yaml.safe_load(value)
    return out


def smoke(raw: dict[str, Any]) -> dict[str, Any]:
    """Shrink a recipe to a seconds-long run that still exercises every stage."""
    out = copy.deepcopy(raw)
    data = out.setdefault("data", {})
    data["train_subset"] = min(int(data.get("train_subset") or 512), 512)
    data["test_subset"] = min(int(data.get("test_subset") or 200), 200)
    data["batch_size"] = min(int(data.get("batch_size", 256)), 64)
    out.setdefault("optim", {})["epochs"] = 2
    out["optim"]["warmup_epochs"] = 0
    ev = out.setdefault("eval", {})
    ev.update(probe_epochs=5, embedding_map_points=200, monitor_bank=None, monitor_every=1)
    trainer = out.setdefault("trainer", {})
    trainer["limit_train_batches"] = 3
    method = out.get("method", {})
    if isinstance(method, dict) and method.get("name") == "mvgrl":
        method["patience"] = min(int(method.get("patience", 20)), 5)
        method["hidden"] = min(int(method.get("hidden", 512)), 64)
        ev["node_repeats"] = 3
        data["train_subset"] = 64  # graph level: 64 graphs (stratified); node level: ignored
        out["optim"]["epochs"] = 5
        return out
    if isinstance(method, dict):
        method["queue_size"] = min(int(method.get("queue_size", 256)), 256) if "queue_size" in method else None
        if method["queue_size"] is None:
            del method["queue_size"]
        if "num_hard" in method:
            method["num_hard"] = min(int(method["num_hard"]), 64)
            method["mix_start_epoch"] = min(int(method.get("mix_start_epoch", 0)), 1)
        if "dense_queue_size" in method and method["dense_queue_size"]:
            method["dense_queue_size"] = 256
    return out
