"""Recipes: YAML files validated into typed settings, with errors that say what to fix.

A recipe has the sections ``method``, ``data``, ``model``, ``optim``, ``eval`` and ``trainer``
(and optionally ``plugins``: modules that register more methods, tasks, datasets, backbones).
``method.name`` picks a registered method; the rest of ``method`` are that method's own options,
validated by the params class it registered. Likewise ``data.dataset`` picks a registered dataset
and the rest of ``data`` are its options, validated by the settings class it registered (the
task's common ones included). ``model.backbone`` names a registered backbone. Unknown keys are
rejected with the list of allowed ones. This module holds no method or dataset names: they live in
``contrastkit.registry``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from contrastkit.registry import (
    BACKBONES,
    DATASETS,
    METHODS,
    TASKS,
    DataSettings,
    MethodParams,
    RegistryError,
    load_plugins,
)

__all__ = [
    "Recipe",
    "RecipeError",
    "apply_overrides",
    "flatten_keys",
    "list_recipes",
    "load_recipe",
    "smoke",
    "upgrade_stored_recipe",
]


class RecipeError(ValueError):
    """A recipe is missing, malformed or holds an unknown or invalid key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSettings(_Strict):
    """The ``model:`` section. ``backbone`` names a registered backbone.

    ``init`` starts it from trained weights, keys matched strictly: ``zoo:NAME`` (``contrastkit zoo
    list``), ``run:RUN_DIR`` (the backbone a run trained) or a state-dict file; 2-D weights are
    inflated into a 3-D counterpart.
    ``freeze`` keeps it there (no gradient, BatchNorm on running statistics). ``weights`` loads a
    published file leniently (torchvision's video ResNets: key names mapped, heads skipped).
    """

    backbone: str = "convnet_small"
    width: int | None = Field(None, gt=0)
    weights: str | None = None
    init: str | None = None
    freeze: bool = False

    @model_validator(mode="after")
    def _freeze_needs_weights(self) -> ModelSettings:
        if self.freeze and not (self.init or self.weights):
            raise ValueError("model.freeze keeps a trained backbone as it is: set model.init as well")
        return self

    @field_validator("backbone")
    @classmethod
    def _registered(cls, name: str) -> str:
        if name not in BACKBONES and not name.startswith(("torchvision/", "timm/")):
            raise ValueError(
                f"unknown backbone {name!r}; registered: {', '.join(BACKBONES.names())}, "
                "or torchvision/<name>, timm/<name>"
            )
        return name


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
    label_fractions: list[float] = Field(default_factory=lambda: [0.01, 0.1])
    label_draws: int = Field(10, gt=0)

    @field_validator("label_fractions")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        bad = [f for f in value if not 0.0 < f <= 1.0]
        if bad:
            raise ValueError(f"label fractions must be in (0, 1], got {bad}")
        return value

    embedding_map_points: int = Field(1500, gt=0)
    node_repeats: int = Field(50, gt=0)
    clips_per_video: int = Field(4, gt=0)
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
    logger: Literal["csv", "tensorboard", "wandb", "mlflow"] = "csv"
    smoke: bool = False  # set by --smoke: tiny sizes, labelled as such in the report, results and compare


def flatten_keys(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 0.1}}`` -> ``{"optim.lr": 0.1}`` (a recipe's dotted keys, as ``--set`` names them)."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten_keys(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def check_run_name(name: str) -> str:
    """A recipe's name becomes a folder under the runs directory: it must be one path component."""
    bad = not name or name in (".", "..") or any(c in name for c in ("/", "\\", "\x00")) or Path(name).is_absolute()
    if bad:
        raise ValueError(f"name {name!r} must be a single folder name (no '/', '\\', '..' or absolute path)")
    return name


class Recipe(_Strict):
    """A validated recipe. ``method`` is the registered method's own params class."""

    name: str

    @field_validator("name")
    @classmethod
    def _one_component(cls, name: str) -> str:
        return check_run_name(name)

    description: str = ""
    plugins: list[str] = []
    method: SerializeAsAny[MethodParams]
    data: SerializeAsAny[DataSettings]
    model: ModelSettings = ModelSettings()
    optim: OptimSettings = OptimSettings()
    eval: EvalSettings = EvalSettings()
    trainer: TrainerSettings = TrainerSettings()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def task(self) -> str:
        """The registered task (modality) this recipe trains on."""
        return METHODS.get(self.method.name).task_for(self.method)

    @model_validator(mode="after")
    def _data_fits_method(self) -> Recipe:
        task, dataset = self.task, self.data.dataset
        if DATASETS.get(dataset).task != task:
            allowed = [name for name, entry in DATASETS.items() if entry.task == task]
            raise ValueError(
                f"data.dataset {dataset!r} does not fit method {self.method.description()}; "
                f"use one of {', '.join(allowed)}"
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


def _allowed_keys(model: type[BaseModel], loc: list[str]) -> list[str]:
    """Field names of the (nested) model that holds the key at ``loc``."""
    for part in loc[:-1]:
        info = model.model_fields.get(part)
        nested = info.annotation if info is not None else None
        if not (isinstance(nested, type) and issubclass(nested, BaseModel)):
            break
        model = nested
    return sorted(model.model_fields)


def _explain(err: ValidationError, raw: dict[str, Any], model: type[BaseModel] | None = None, prefix: str = "") -> str:
    """One readable line for a pydantic error: unknown keys named with the allowed ones."""
    model = model or Recipe
    problems = []
    for item in err.errors():
        loc = [str(p) for p in item["loc"]]
        where = ".".join([prefix, *loc] if prefix else loc)
        if item["type"] == "extra_forbidden":
            section = prefix or (loc[0] if len(loc) > 1 else "")
            allowed = _allowed_keys(model, loc)
            problems.append(
                f"unknown key '{where}'; allowed{' in ' + section if section else ''}: {', '.join(allowed)}"
            )
        elif item["type"] == "missing":
            problems.append(f"{where} is required")
        elif item["type"] == "value_error":
            message = str(item["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        else:
            problems.append(f"{where}: {item['msg']} (got {item.get('input')!r})")
    return "; ".join(problems)


def validate(raw: dict[str, Any]) -> Recipe:
    """Validate a recipe dictionary, raising ``RecipeError`` with a readable message.

    Plugins named under ``plugins:`` are imported first, so their methods, tasks, datasets
    and backbones are known; then ``method`` is validated by its registered params class and
    the rest by ``Recipe``.
    """
    if not isinstance(raw, dict):
        raise RecipeError(f"a recipe must be a mapping, got {type(raw).__name__}")
    name = raw.get("name", "?")
    plugins = raw.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise RecipeError(f"recipe '{name}': plugins must be a list of module names or .py paths, got {plugins!r}")
    try:
        load_plugins(plugins)
    except RegistryError as err:
        raise RecipeError(f"recipe '{name}': {err}") from None
    method = raw.get("method")
    if not isinstance(method, dict) or "name" not in method:
        raise RecipeError(f"recipe '{name}': method must be a mapping with a name; one of {', '.join(METHODS.names())}")
    if method["name"] not in METHODS:
        raise RecipeError(
            f"recipe '{name}': method.name must be one of {', '.join(METHODS.names())}, got {method['name']!r}"
        )
    params = _section(METHODS.get(method["name"]).params, method, raw, "method")
    data = raw.get("data")
    if not isinstance(data, dict) or "dataset" not in data:
        raise RecipeError(
            f"recipe '{name}': data must be a mapping with a dataset; one of {', '.join(DATASETS.names())}"
        )
    if data["dataset"] not in DATASETS:
        known = ", ".join(DATASETS.names())
        raise RecipeError(f"recipe '{name}': data.dataset: unknown dataset {data['dataset']!r}; registered: {known}")
    task = METHODS.get(params.name).task_for(params)
    if DATASETS.get(data["dataset"]).task != task:
        fitting = ", ".join(n for n, entry in DATASETS.items() if entry.task == task)
        raise RecipeError(
            f"recipe '{name}': data.dataset {data['dataset']!r} does not fit method {params.description()}; "
            f"use one of {fitting}"
        )
    settings = _section(DATASETS.get(data["dataset"]).settings, data, raw, "data")
    try:
        return Recipe.model_validate({**raw, "method": params, "data": settings})
    except ValidationError as err:
        raise RecipeError(f"recipe '{name}': {_explain(err, raw)}") from None


LEGACY_DATA_KEYS = (
    "path",
    "image_size",
    "augmentation",
    "labels",
    "download",
    "normalize_features",
    "video_frames",
    "clip_length",
    "clip_stride",
    "per_frame_views",
    "cache_dir",
    "text_encoder",
    "video_input",
    "glyph_contrast",
)
"""The ``data:`` keys every stored recipe held when one settings class served every dataset."""


def upgrade_stored_recipe(raw: dict[str, Any]) -> dict[str, Any]:
    """A recipe stored by an earlier version (a run folder's ``recipe.yaml``, a checkpoint's copy)
    in today's terms: method options under their new names (``MethodParams.renamed``) and the
    ``data:`` options its dataset does not declare dropped (they were stored for every dataset
    and read by none but their own)."""
    out = copy.deepcopy(raw)
    method, data = out.get("method"), out.get("data")
    if isinstance(method, dict) and method.get("name") in METHODS:
        for old, (new, _) in METHODS.get(method["name"]).params.renamed.items():
            if old in method and new not in method:
                method[new] = method.pop(old)
    if isinstance(data, dict) and data.get("dataset") in DATASETS:
        declared = DATASETS.get(data["dataset"]).settings.model_fields
        for key in LEGACY_DATA_KEYS:
            if key in data and key not in declared:
                del data[key]
    return out


M = TypeVar("M", bound=BaseModel)


def _section(kind: type[M], section: dict[str, Any], raw: dict[str, Any], prefix: str) -> M:
    """A recipe section validated by the class its registered entry declared (a method's params,
    a dataset's settings); ``RecipeError`` in one line naming the keys."""
    try:
        return kind.model_validate(section)
    except ValidationError as err:
        raise RecipeError(f"recipe '{raw.get('name', '?')}': {_explain(err, raw, kind, prefix=prefix)}") from None


def load_recipe(name_or_path: str) -> dict[str, Any]:
    """The raw dictionary of a shipped recipe (by name) or of a YAML file (by path)."""
    path = Path(name_or_path)
    if not path.suffix and not path.is_file():
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
    if isinstance(raw.get("plugins"), list):  # plugin files next to the recipe, whatever the working directory
        raw["plugins"] = [_plugin_path(p, path.parent) for p in raw["plugins"]]
    return raw


def _plugin_path(plugin: Any, folder: Path) -> Any:
    if isinstance(plugin, str) and plugin.endswith(".py") and not Path(plugin).is_absolute():
        if (folder / plugin).is_file():
            return str((folder / plugin).resolve())
    return plugin


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (values parsed as YAML) to a raw recipe.

    A method's loss options live in its ``method:`` section; ``loss.<key>`` is accepted as the same
    key there (``--set loss.vgg_weights=PATH`` is ``--set method.vgg_weights=PATH``).
    """
    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise RecipeError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if parts[0] == "loss" and len(parts) > 1:
            parts[0] = "method"
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise RecipeError(f"--set {key}: '{part}' is not a section")
            node = child
        node[parts[-1]] = yaml.safe_load(value)
    return out


def smoke(raw: dict[str, Any], keep: Sequence[str] = ()) -> dict[str, Any]:
    """Shrink a recipe to a seconds-long run that still exercises every stage.

    ``keep`` lists dotted keys the user set on the command line (``--set optim.epochs=3``):
    those keep the user's value.

    The common sizes are set here; the recipe's task and method then shrink their own
    settings (``Task.smoke``, ``MethodParams.smoke``). The recipe is validated first, so a bad
    value is reported as it would be without ``--smoke`` (``RecipeError``).
    """
    validate(raw)
    out = copy.deepcopy(raw)
    data = out.setdefault("data", {})
    data["train_subset"] = min(int(data.get("train_subset") or 512), 512)
    data["test_subset"] = min(int(data.get("test_subset") or 200), 200)
    data["batch_size"] = min(int(data.get("batch_size", 256)), 64)
    out.setdefault("optim", {})["epochs"] = 2
    out["optim"]["warmup_epochs"] = 0
    ev = out.setdefault("eval", {})
    ev.update(probe_epochs=5, embedding_map_points=200, monitor_bank=None, monitor_every=1)
    out.setdefault("trainer", {}).update(limit_train_batches=3, smoke=True)
    method = out.get("method")
    if not isinstance(method, dict) or method.get("name") not in _methods_after_plugins(out):
        return out
    entry = METHODS.get(method["name"])
    entry.params.smoke(method)
    try:
        task = entry.task_for(entry.params.model_validate(method))
    except ValidationError:
        return out
    TASKS.get(task).smoke(out)
    return _restore(out, raw, keep)


def _restore(out: dict[str, Any], raw: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    for key in keys:
        source, target = raw, out
        *path, last = key.split(".")
        for part in path:
            if not isinstance(source.get(part), dict):
                break
            source = source[part]
            target = target.setdefault(part, {})
        else:
            if last in source:
                target[last] = copy.deepcopy(source[last])
    return out


def _methods_after_plugins(raw: dict[str, Any]) -> list[str]:
    plugins = raw.get("plugins", [])
    if isinstance(plugins, list) and all(isinstance(p, str) for p in plugins):
        try:
            load_plugins(plugins)
        except RegistryError:
            pass
    return METHODS.names()
