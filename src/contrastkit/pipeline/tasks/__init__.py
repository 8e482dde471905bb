"""Tasks: one module per modality, each registered with ``contrastkit.registry.register_task``.

``build_task(recipe, root)`` builds the task of a recipe's method (``METHODS[name].task_for``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from contrastkit.pipeline.tasks import clips, dehaze, distill, graphs, images, pairs
from contrastkit.pipeline.tasks.base import Evaluation, Plot, Task, build_method, load_dataset
from contrastkit.registry import TASKS

if TYPE_CHECKING:
    from contrastkit.config import Recipe

__all__ = [
    "Evaluation",
    "Plot",
    "Task",
    "build_method",
    "build_task",
    "clips",
    "dehaze",
    "distill",
    "graphs",
    "images",
    "load_dataset",
    "pairs",
]


def build_task(recipe: Recipe, root: str | Path | None) -> Task:
    """The registered task of ``recipe`` with its data loaded and its method built."""
    task: Task = TASKS.get(recipe.task)(recipe, root)
    return task
