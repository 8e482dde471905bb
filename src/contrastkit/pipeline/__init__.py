"""Recipe -> trained encoder -> run folder (checkpoints, metrics, plots, report)."""

from contrastkit.pipeline.run import evaluate_run, train

__all__ = ["evaluate_run", "train"]
