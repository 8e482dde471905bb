"""What a task (modality) owns in a run: its data module, its method built from the registry,
its evaluation, its plots and its report lines. ``pipeline/run.py`` only calls these."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import lightning as L
from torch import Tensor

from contrastkit.config import RecipeError
from contrastkit.registry import DATASETS, METHODS, DataSettings

if TYPE_CHECKING:
    from contrastkit.config import Recipe

__all__ = [
    "Evaluation",
    "Plot",
    "Task",
    "build_method",
    "data_settings",
    "load_dataset",
    "optimizer_settings",
    "prepared_backbone",
]

S = TypeVar("S", bound=DataSettings)


@dataclass
class Evaluation:
    """Numbers of an evaluation and, where the task has them, the embeddings and class labels
    behind its 2-D map (restoration or retrieval tasks may have none)."""

    numbers: dict[str, float | int | None]
    embeddings: Tensor | None = field(default=None, repr=False)
    labels: Tensor | None = field(default=None, repr=False)


def verdict_line(label: str, value: float, base: float, baseline: str, spread: float | None) -> str:
    """``"Verdict: better than <baseline> ..."`` / ``within the spread`` / ``WORSE``; ``spread`` is
    one standard error of the difference (None: unknown, the sign alone decides)."""
    gap = value - base
    numbers = f"{label} {value:.2f} vs {base:.2f}, {gap:+.2f}"
    if spread is None:
        word = "better than" if gap > 0 else "WORSE than" if gap < 0 else "level with"
        return f"Verdict: {word} {baseline} ({numbers}; no spread known)."
    if abs(gap) <= 2 * spread:
        return f"Verdict: within the spread of {baseline} ({numbers}; twice the spread is {2 * spread:.2f})."
    word = "better than" if gap > 0 else "WORSE than"
    return f"Verdict: {word} {baseline} ({numbers}, beyond twice the spread, {2 * spread:.2f})."


@dataclass(frozen=True)
class Plot:
    """A PNG in the run folder and its caption in ``report.md``."""

    file: str
    caption: str


class Task:
    """Base of a registered task (``contrastkit.registry.register_task``).

    A subclass sets, in ``__init__(recipe, root)``: ``method`` and ``datamodule`` (what Lightning
    fits), ``metrics`` (``(key in Evaluation.numbers, column label)``, the first is the headline),
    ``protocol`` (one paragraph for the report), ``classes`` and ``source``; and implements
    ``evaluate``. It may override ``plots``, ``model_line``, ``smoke`` and ``monitor_key``.

    Attributes:
        samples: what one training row is, for the throughput line ("images", "clips", ...).
    """

    name: ClassVar[str] = ""
    samples: ClassVar[str] = "samples"
    metrics: list[tuple[str, str]]
    protocol: str
    classes: tuple[str, ...] = ()
    source: str = ""
    method: L.LightningModule
    datamodule: L.LightningDataModule
    input_spec: dict[str, Any] | None = None
    """What the backbone takes (``channels``, ``image_size``, ``clip_length``, the ``mean`` / ``std``
    of [0, 1] pixels it normalises by): kept in ``results.json`` and beside every export."""

    uses_backbone: ClassVar[bool] = True
    """False for a task whose methods build their own networks (graphs, restoration): it refuses
    ``model.weights`` / ``model.init`` / ``model.freeze`` instead of ignoring them."""

    def __init__(self, recipe: Recipe, root: str | Path | None) -> None:
        self.recipe = recipe
        self.root = root
        m = recipe.model
        if not self.uses_backbone and (m.weights or m.init or m.freeze):
            raise RecipeError(
                f"model.weights, model.init and model.freeze start a backbone, and {recipe.method.name} "
                "builds its own networks; remove them"
            )

    @classmethod
    def smoke(cls, raw: dict[str, Any]) -> None:
        """Shrink this task's settings in a raw recipe for ``--smoke`` runs (in place)."""

    def evaluate(self, desc: str, progress: bool) -> Evaluation:
        raise TypeError(f"{type(self).__name__} must implement evaluate(desc, progress)")

    def plots(self, run_dir: Path, final: Evaluation, random_init: dict[str, Any] | None) -> list[Plot]:
        """PNGs beyond the loss curve; by default a t-SNE map when the evaluation has embeddings."""
        return self.embedding_plot(run_dir, final)

    def embedding_plot(self, run_dir: Path, final: Evaluation) -> list[Plot]:
        if final.embeddings is None or final.labels is None:
            return []
        from contrastkit.pipeline.report import embedding_map

        e, t = self.recipe.eval, self.recipe.trainer
        file = embedding_map(run_dir, final.embeddings, final.labels, self.classes, e.embedding_map_points, t.seed)
        return [Plot(file, "2-D map (t-SNE) of test embeddings")]

    def verdict(self, final: Evaluation, random_init: dict[str, Any] | None) -> str | None:
        """The main metric against its baseline, the same network before training: better, within
        the spread, or worse. The spread of an accuracy on ``n`` test samples is the binomial
        standard error of each number, combined; "better" or "worse" needs twice that."""
        if not self.metrics or not random_init:
            return None
        key, label = self.metrics[0]
        value, base = final.numbers.get(key), random_init.get(key)
        if not isinstance(value, int | float) or not isinstance(base, int | float):
            return None
        spread = None
        if final.labels is not None and 0 <= value <= 100 and 0 <= base <= 100:
            n = len(final.labels)
            spread = math.sqrt(sum(p * (100 - p) / n for p in (float(value), float(base))))
        before = self.baseline_name()
        baseline = "the same network at random init" if before == "random init" else f"the same network's {before}"
        return verdict_line(label, float(value), float(base), baseline, spread)

    def reference_rows(self) -> dict[str, dict[str, float]]:
        """Extra report rows ``{label: numbers}`` beside trained / random init (e.g. a classical
        baseline on the same evaluation); none by default."""
        return {}

    def headline(self, final: dict[str, Any], random_init: dict[str, Any] | None) -> str | None:
        """One sentence on what training bought over the same network at random init, printed
        under the results table and at the top of the report; none by default."""
        return None

    def model_line(self) -> str:
        """How the report names the trained model (and where its backbone started)."""
        m = self.recipe.model
        return m.backbone + (f" width {m.width}" if m.width else "") + self.started_from()

    def baseline_name(self) -> str:
        """What the untrained row is: ``random init``, or the weights the backbone starts from."""
        m = self.recipe.model
        start = m.init or m.weights
        return f"starting weights ({start})" if start else "random init"

    def started_from(self) -> str:
        """``; initialised from ...`` when the recipe starts the backbone from weights."""
        m = self.recipe.model
        return f"; initialised from {m.init}{' (frozen)' if m.freeze else ''}" if m.init else ""


def load_dataset(recipe: Recipe, root: str | Path | None) -> Any:
    """The recipe's registered dataset (``root`` overrides ``data.root`` and ``$CONTRASTKIT_DATA``)."""
    return DATASETS.get(recipe.data.dataset).load(recipe.data, root, recipe.trainer.seed)


def data_settings(recipe: Recipe, kind: type[S]) -> S:
    """The recipe's ``data:`` section as ``kind``, the options this task reads (its datasets'
    settings classes extend it); a dataset registered without them is refused in one line."""
    if not isinstance(recipe.data, kind):
        raise RecipeError(
            f"data.dataset {recipe.data.dataset!r} declares {type(recipe.data).__name__}, which lacks the "
            f"{kind.__name__} options its task reads; register it with settings={kind.__name__} or a subclass"
        )
    return recipe.data


def prepared_backbone(recipe: Recipe, in_channels: int, image_size: int) -> Any:
    """The recipe's backbone, started from ``model.weights`` or ``model.init`` (and frozen by
    ``model.freeze``) when the recipe says so."""
    from contrastkit.nn.backbones import build_backbone
    from contrastkit.nn.clip_encoders import load_backbone_weights
    from contrastkit.nn.inflate import freeze_module, init_backbone

    m = recipe.model
    backbone = build_backbone(m.backbone, in_channels, m.width, image_size)
    if m.weights:
        load_backbone_weights(backbone, m.weights)
    if m.init:
        init_backbone(backbone, m.init, freeze=m.freeze)
    elif m.freeze:
        freeze_module(backbone)
    return backbone


def build_method(recipe: Recipe, contract: type | None = None, **inputs: Any) -> Any:
    """The recipe's registered method, built from what the task provides (``inputs``).

    ``contract`` is what the task asks of its methods: a base class or a runtime-checkable
    ``Protocol``; a method that does not meet it is refused in one line naming what is missing.
    """
    method = METHODS.get(recipe.method.name).build(recipe.method, **inputs)
    if contract is not None and not isinstance(method, contract):
        name, kind = recipe.method.name, type(method).__name__
        if not getattr(contract, "_is_protocol", False):
            raise RecipeError(f"method {name!r} ({kind}) must subclass {contract.__module__}.{contract.__name__}")
        members = {m for m in (*vars(contract), *getattr(contract, "__annotations__", {})) if not m.startswith("_")}
        missing = sorted(m for m in members if not hasattr(method, m))
        raise RecipeError(f"method {name!r} ({kind}) lacks {', '.join(missing)}, which this task calls")
    return method


def optimizer_settings(recipe: Recipe) -> Any:
    """The method's ``OptimizerSettings`` from the recipe's ``optim:`` section."""
    from contrastkit.methods.base import OptimizerSettings

    o = recipe.optim
    return OptimizerSettings(o.optimizer, o.lr, o.momentum, o.weight_decay, o.warmup_epochs, o.cosine)
