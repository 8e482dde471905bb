"""Registries: the one place the pipeline looks up methods, tasks, datasets and backbones by name.

Each entry is declared next to its own code — a method next to its class (with its pydantic
params, its smoke-size overrides and the task it trains on), a dataset next to its loader (with
the task it feeds), a task next to its data module and evaluation, a backbone next to its
builder — so ``config``, ``pipeline/run`` and ``pipeline/report`` hold no method or dataset
names. A new paper registers its own entries from its own module; recipes
name that module under ``plugins:`` (or an installed package declares it in the
``contrastkit.plugins`` entry-point group) and ``contrastkit train`` finds it.

This module imports nothing heavy (pydantic only), so recipe validation stays fast.

Examples:
    >>> from contrastkit.registry import METHODS
    >>> "moco" in METHODS.names()
    True
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "BACKBONES",
    "DATASETS",
    "DataSettings",
    "METHODS",
    "TASKS",
    "BackboneEntry",
    "DatasetEntry",
    "MethodEntry",
    "MethodParams",
    "Registry",
    "RegistryError",
    "RenamedOption",
    "load_builtins",
    "load_plugins",
    "register_backbone",
    "register_dataset",
    "register_method",
    "register_task",
]

T = TypeVar("T")
P = TypeVar("P", bound="MethodParams")


class RegistryError(ValueError):
    """An unknown name, a name registered twice, or a plugin that cannot be imported."""


class Registry(Generic[T]):
    """Named entries of one kind; ``get`` names the known ones when a name is missing.

    Args:
        kind: what the entries are ("method", "task", ...), used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Register ``entry`` under ``name``; a second registration of a name needs ``replace``."""
        if name in self._entries and not replace and self._entries[name] is not entry:
            raise RegistryError(f"a {self.kind} named {name!r} is already registered; pass replace=True to override")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        if name not in self._entries:  # built-ins load on a miss only: a known name costs no imports
            load_builtins()
        if name not in self._entries:
            raise RegistryError(f"unknown {self.kind} {name!r}; registered: {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        load_builtins()
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        load_builtins()
        return sorted(self._entries.items())

    def remove(self, name: str) -> None:
        """Forget ``name`` (tests and interactive sessions)."""
        self._entries.pop(name, None)

    def __contains__(self, name: object) -> bool:
        if name not in self._entries:
            load_builtins()
        return name in self._entries


class MethodParams(BaseModel):
    """Base of every method's recipe options (``method:`` section): strict, frozen, named.

    Subclasses set ``name`` to a ``Literal`` of their registered name and may override
    ``smoke`` to shrink their own options for ``--smoke`` runs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    renamed: ClassVar[dict[str, tuple[str, str]]] = {}
    """Old option names still accepted: ``{old: (new, why)}``; each use warns in one line."""

    @model_validator(mode="before")
    @classmethod
    def _renamed_options(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(old in data for old in cls.renamed):
            return data
        data = dict(data)
        for old, (new, why) in cls.renamed.items():
            if old not in data:
                continue
            if new in data:
                raise ValueError(f"{old} and {new} name one option ({why}); keep {new} only")
            data[new] = data.pop(old)
            warnings.warn(f"method.{old} is now method.{new} ({why}); the old name still works", RenamedOption, 2)
        return data

    @classmethod
    def smoke(cls, method: dict[str, Any]) -> None:
        """Shrink this method's options in a raw ``method:`` mapping, in place (default: nothing)."""

    @classmethod
    def resolve(cls: type[P], params: MethodParams | None, options: dict[str, Any]) -> tuple[P, dict[str, Any]]:
        """A method constructor's options: ``(params, rest)``.

        The fields of this class found in ``options`` override ``params`` (or the class's
        defaults) and are validated like a recipe's ``method:`` section; ``rest`` are the other
        keyword arguments, for the base class. So a default lives in the params class only, and
        ``MoCo(backbone, augmentation, temperature=0.1)`` equals the recipe ``{name: moco,
        temperature: 0.1}``.

        Raises:
            ValueError: an option out of its bounds, or ``params`` of another method.
        """
        from pydantic import ValidationError

        fields = (set(cls.model_fields) | set(cls.renamed)) - {"name"}
        chosen = {key: options.pop(key) for key in list(options) if key in fields}
        if params is not None and not isinstance(params, cls):
            raise ValueError(f"params must be {cls.__name__}, got {type(params).__name__}")
        if params is not None and not chosen:
            return params, options
        base = params.model_dump(exclude={"name"}) if params is not None else {}
        try:
            return cls.model_validate({**base, **chosen}), options
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise ValueError(f"{cls.__name__}: {problems}") from None

    def description(self) -> str:
        """How the report and errors name this configuration (e.g. ``mvgrl (level node)``)."""
        return self.name


class RenamedOption(UserWarning):
    """A recipe or constructor used an option's old name; it still works, under the new one."""


class DataSettings(BaseModel):
    """Base of every dataset's recipe options (the ``data:`` section): strict, frozen.

    A dataset declares the options it reads in a subclass and registers it with
    ``register_dataset(..., settings=...)``; the options its task reads come from the task's
    own subclass of this (``data.images.ImageData``, ``data.video_folders.ClipData``, ...), which
    such a dataset extends. These fields are the ones every task and loader share.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    dataset: str
    root: str | None = None
    train_subset: int | None = Field(None, gt=0)
    test_subset: int | None = Field(None, gt=0)
    batch_size: int = Field(256, gt=0)
    num_workers: int = Field(0, ge=0)


@dataclass(frozen=True)
class MethodEntry:
    """A registered method.

    Attributes:
        name: the recipe's ``method.name``.
        params: its pydantic options class.
        task: the task (modality) it trains on, or a function of its params (MVGRL: by level).
        build: ``build(params, **inputs) -> LightningModule``; ``inputs`` are what the task
            provides (an image task: backbone, augmentation, optimizer, ...). Defaults to the
            class called with the inputs and every option but ``name``.
        summary: one line for ``contrastkit recipes`` style listings.
    """

    name: str
    params: type[MethodParams]
    task: str | Callable[[Any], str]
    build: Callable[..., Any]
    summary: str = ""

    def task_for(self, params: MethodParams) -> str:
        return self.task(params) if callable(self.task) else self.task


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: the task (modality) it feeds and its loader.

    ``load(settings, root, seed)`` receives the recipe's ``data`` section (validated by
    ``settings``, the dataset's ``DataSettings`` subclass), the data root (``--data-root`` /
    ``$CONTRASTKIT_DATA`` / ``data.root``, may be None) and the seed, and returns what its task
    expects (image splits, a graph, a set of graphs, ...).
    """

    name: str
    task: str
    load: Callable[..., Any]
    summary: str = ""
    settings: type[DataSettings] = DataSettings
    reads_root: bool = True  # False: generated or bundled, a data root is not used


@dataclass(frozen=True)
class BackboneEntry:
    """A registered backbone: ``build(in_channels, width, image_size) -> Backbone``."""

    name: str
    build: Callable[..., Any]
    summary: str = ""
    options: dict[str, Any] = field(default_factory=dict)


METHODS: Registry[MethodEntry] = Registry("method")
TASKS: Registry[Any] = Registry("task")
DATASETS: Registry[DatasetEntry] = Registry("dataset")
BACKBONES: Registry[BackboneEntry] = Registry("backbone")


def _default_build(cls: Any) -> Callable[..., Any]:
    """``cls(params=params, **inputs)``; a class without a ``params`` argument gets the options
    as keyword arguments instead."""
    takes_params = "params" in inspect.signature(cls).parameters

    def build(params: MethodParams, **inputs: Any) -> Any:
        if takes_params:
            return cls(params=params, **inputs)
        return cls(**inputs, **params.model_dump(exclude={"name"}))

    return build


def _check_takes_base_arguments(name: str, cls: Any) -> None:
    """Refuse a class whose own ``__init__`` cannot pass its base class's keyword arguments on
    (a plugin that forgot ``**base`` would otherwise fail later with a bare ``TypeError``)."""
    if not isinstance(cls, type) or "__init__" not in vars(cls):
        return
    own = inspect.signature(vars(cls)["__init__"]).parameters
    if any(p.kind is p.VAR_KEYWORD for p in own.values()):
        return
    base = next((b for b in cls.__mro__[1:] if "__init__" in vars(b) and b.__module__.startswith("contrastkit")), None)
    if base is None:
        return
    wanted = [
        p.name
        for p in inspect.signature(vars(base)["__init__"]).parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is not p.empty
    ]
    missing = [arg for arg in wanted if arg not in own]
    if missing:
        raise RegistryError(
            f"method {name!r}: {cls.__name__}.__init__ cannot take {base.__name__}'s arguments "
            f"({', '.join(missing)}); add **base to its signature and pass it to super().__init__"
        )


def register_method(
    name: str,
    params: type[MethodParams],
    task: str | Callable[[Any], str],
    *,
    build: Callable[..., Any] | None = None,
    summary: str = "",
    replace: bool = False,
) -> Callable[[T], T]:
    """Class decorator: register a method under ``name`` (see ``MethodEntry``).

    Examples:
        >>> from typing import Literal
        >>> class ToyParams(MethodParams):
        ...     name: Literal["toy-doc"] = "toy-doc"
        ...     temperature: float = 0.1
        >>> @register_method("toy-doc", ToyParams, task="images")
        ... class Toy:
        ...     def __init__(self, backbone=None, temperature=0.1): ...
        >>> METHODS.get("toy-doc").params is ToyParams
        True
        >>> METHODS.remove("toy-doc")
    """

    def decorate(cls: T) -> T:
        if build is None:
            _check_takes_base_arguments(name, cls)
        METHODS.add(name, MethodEntry(name, params, task, build or _default_build(cls), summary), replace=replace)
        return cls

    return decorate


def register_task(name: str, *, replace: bool = False) -> Callable[[T], T]:
    """Class decorator: register a ``pipeline.tasks.Task`` subclass as the task ``name``."""

    def decorate(cls: T) -> T:
        cls.name = name  # type: ignore[attr-defined]
        TASKS.add(name, cls, replace=replace)
        return cls

    return decorate


def register_dataset(
    name: str,
    task: str,
    *,
    settings: type[DataSettings] = DataSettings,
    summary: str = "",
    replace: bool = False,
    reads_root: bool = True,
) -> Callable[[T], T]:
    """Function decorator: register a loader ``load(settings, root, seed)`` as dataset ``name``,
    its recipe options declared by ``settings`` (a ``DataSettings`` subclass). ``reads_root=False``
    says the dataset is generated or bundled: ``--data-root`` is then not used, and a user who
    passes one is told so."""

    def decorate(load: T) -> T:
        entry = DatasetEntry(name, task, load, summary, settings, reads_root)  # type: ignore[arg-type]
        DATASETS.add(name, entry, replace=replace)
        return load

    return decorate


def register_backbone(name: str, *, summary: str = "", replace: bool = False) -> Callable[[T], T]:
    """Function decorator: register ``build(in_channels, width, image_size)`` as backbone ``name``."""

    def decorate(build: T) -> T:
        BACKBONES.add(name, BackboneEntry(name, build, summary), replace=replace)  # type: ignore[arg-type]
        return build

    return decorate


_BUILTIN_MODULES = (
    "contrastkit.nn.backbones",
    "contrastkit.nn.clip_encoders",
    "contrastkit.nn.inflate",
    "contrastkit.data.images",
    "contrastkit.data.graphs",
    "contrastkit.data.video_folders",
    "contrastkit.data.moving_objects",
    "contrastkit.data.moving_cifar",
    "contrastkit.data.global_context",
    "contrastkit.data.global_context_cifar",
    "contrastkit.data.motion_phases",
    "contrastkit.data.motion_phases_cifar",
    "contrastkit.data.pairs",
    "contrastkit.data.captions",
    "contrastkit.data.distill",
    "contrastkit.data.distill_cifar",
    "contrastkit.data.dehaze",
    "contrastkit.methods",
    "contrastkit.pipeline.tasks",
)
PLUGIN_GROUP = "contrastkit.plugins"


class _Loader:
    loading: ClassVar[bool] = False
    loaded: ClassVar[bool] = False


def load_builtins() -> None:
    """Import the modules that register contrastkit's own entries, then installed plugins
    (entry points in the ``contrastkit.plugins`` group). Idempotent."""
    if _Loader.loaded or _Loader.loading:
        return
    _Loader.loading = True
    try:
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
        from importlib.metadata import entry_points

        for point in entry_points(group=PLUGIN_GROUP):
            point.load()
        _Loader.loaded = True
    finally:
        _Loader.loading = False


def load_plugins(plugins: Iterable[str], base: Path | None = None) -> None:
    """Import plugin modules that register their own entries.

    Args:
        plugins: importable module names (``my_package.my_method``) or paths to ``.py`` files
            (relative paths resolve against ``base``, then the working directory).
        base: folder of the recipe file that names the plugins.
    """
    for plugin in plugins:
        if plugin.endswith(".py"):
            path = Path(plugin)
            if not path.is_absolute() and base is not None and (base / path).is_file():
                path = base / path
            path = path.resolve()
            if not path.is_file():
                raise RegistryError(f"plugin file {plugin} not found")
            name = f"contrastkit_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
            if name in sys.modules:
                continue
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise RegistryError(f"plugin file {plugin} cannot be imported")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except Exception:
                del sys.modules[name]
                raise
        else:
            try:
                importlib.import_module(plugin)
            except ModuleNotFoundError as err:
                raise RegistryError(f"plugin module {plugin!r} cannot be imported: {err}") from None
