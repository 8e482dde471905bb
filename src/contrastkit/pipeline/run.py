"""A training run end to end: recipe -> run folder with checkpoints, metrics, plots and report."""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml

from contrastkit._files import write_atomic
from contrastkit.config import Recipe, RecipeError, flatten_keys, upgrade_stored_recipe, validate
from contrastkit.pipeline.callbacks import (
    DATA_WAIT_WARNING,
    AtomicCheckpoint,
    MetricsWriter,
    RecipeInCheckpoint,
    data_wait_advice,
)
from contrastkit.pipeline.environment import environment
from contrastkit.pipeline.history import append_history, read_history
from contrastkit.pipeline.report import near_chance_warning, plot_loss, read_csv_rows, write_report
from contrastkit.pipeline.tasks import Task, build_task

__all__ = ["evaluate_run", "train"]

RUN_DIR_ENV = "CONTRASTKIT_RUN_DIR"


def _global_rank() -> int:
    """This process's rank as its launcher set it: torchrun's RANK, SLURM's SLURM_PROCID, Lightning's LOCAL_RANK."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", os.environ.get("LOCAL_RANK", "0"))))


def _is_rank_zero() -> bool:
    return _global_rank() == 0 and int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", "0"))) == 0


def _new_run_dir(runs_dir: Path, name: str) -> Path:
    if os.environ.get(RUN_DIR_ENV) and "LOCAL_RANK" in os.environ:  # a process Lightning launched for rank > 0
        return Path(os.environ[RUN_DIR_ENV])
    if not _is_rank_zero():  # a rank > 0 that torchrun or SLURM started: rank 0 alone writes the run folder
        import tempfile

        return Path(tempfile.mkdtemp(prefix=f"contrastkit-rank{_global_rank()}-"))
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    (runs_dir / name).mkdir(parents=True, exist_ok=True)
    suffix = 0
    while True:
        run_dir = runs_dir / name / (f"{stamp}-{suffix}" if suffix else stamp)
        try:
            run_dir.mkdir()  # claimed here: two runs started in the same second get two folders
            break
        except FileExistsError:
            suffix += 1
    os.environ[RUN_DIR_ENV] = str(run_dir)
    return run_dir


def _with_finite_checks(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn`` with the objectives' non-finite input checks on (a run names the tensor that went
    NaN instead of training on), then restore the caller's setting."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from contrastkit.functional import set_finite_checks

        previous = set_finite_checks(True)
        try:
            return fn(*args, **kwargs)
        finally:
            set_finite_checks(previous)

    return wrapper


def _prepare(recipe: Recipe, data_root: str | Path | None) -> Task:
    if recipe.trainer.threads:
        torch.set_num_threads(recipe.trainer.threads)
    L.seed_everything(recipe.trainer.seed, workers=True, verbose=False)
    return build_task(recipe, data_root)


def _strategy(recipe: Recipe, method: L.LightningModule) -> Any:
    """The recipe's strategy; DDP for a two-player method searches for unused parameters, since
    each player's backward leaves the other player's parameters without gradients."""
    strategy = recipe.trainer.strategy
    if strategy in ("ddp", "ddp_spawn") and not method.automatic_optimization:
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(find_unused_parameters=True, start_method="spawn" if strategy == "ddp_spawn" else "popen")
    return strategy


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run; ``run_dir`` says where (and whether a checkpoint exists to resume)."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir

    @property
    def hint(self) -> str:
        if (self.run_dir / "checkpoints" / "last.ckpt").is_file():
            return f"the last complete checkpoint is intact (resume with --resume {self.run_dir})"
        return f"no checkpoint was written yet ({self.run_dir}); start the run again"


def _logger(recipe: Recipe, run_dir: Path) -> Any:
    """The recipe's Lightning logger: ``csv`` is contrastkit's own metrics.csv (no extra logger);
    TensorBoard writes to ``<run>/tensorboard``; W&B and MLflow log to their usual places and need
    their package. The run folder is the same with any of them."""
    kind = recipe.trainer.logger
    if kind == "csv":
        return False
    from lightning.pytorch import loggers

    try:
        if kind == "tensorboard":
            return loggers.TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="")
        if kind == "wandb":
            return loggers.WandbLogger(
                project="contrastkit", name=f"{recipe.name}/{run_dir.name}", save_dir=str(run_dir)
            )
        return loggers.MLFlowLogger(experiment_name="contrastkit", run_name=f"{recipe.name}/{run_dir.name}")
    except ModuleNotFoundError as err:
        package = {"tensorboard": "tensorboard (or tensorboardX)", "wandb": "wandb", "mlflow": "mlflow"}[kind]
        raise RecipeError(
            f"trainer.logger={kind} needs {package} installed ({str(err).splitlines()[0][:80]})"
        ) from None


def _trainer(
    recipe: Recipe, run_dir: Path, progress: bool, extra: list[L.Callback], method: L.LightningModule, monitors: bool
) -> L.Trainer:
    t = recipe.trainer
    # no monitor data or no validation_step: no validation loop (Lightning would warn about either)
    validates = monitors and type(method).validation_step is not L.LightningModule.validation_step
    return L.Trainer(
        max_epochs=recipe.optim.epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=_strategy(recipe, method),
        precision=t.precision,  # type: ignore[arg-type]
        logger=_logger(recipe, run_dir),
        callbacks=[
            MetricsWriter(run_dir),
            *extra,
            RecipeInCheckpoint(recipe.to_dict()),
            AtomicCheckpoint(run_dir / "checkpoints"),
        ],
        use_distributed_sampler=False,
        check_val_every_n_epoch=recipe.eval.monitor_every,
        num_sanity_val_steps=0,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches if validates else 0,
        enable_progress_bar=progress,
        enable_model_summary=False,
        default_root_dir=str(run_dir),
    )


def _checked_trainer(
    recipe: Recipe, run_dir: Path, progress: bool, extra: list[L.Callback], method: L.LightningModule, monitors: bool
) -> L.Trainer:
    """The trainer, or ``RecipeError`` for a hardware request Lightning refuses (devices 0, a GPU
    on a machine without one, an unknown strategy): raised before the run folder exists."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return _trainer(recipe, run_dir, progress, extra, method, monitors)
    except RecipeError:
        raise
    except (MisconfigurationException, ValueError, RuntimeError) as err:
        t = recipe.trainer
        asked = f"accelerator {t.accelerator!r}, devices {t.devices!r}, strategy {t.strategy!r}"
        raise RecipeError(f"cannot set up training with {asked}: {str(err).splitlines()[0]}") from None


@_with_finite_checks
def train(
    raw: dict[str, Any],
    *,
    data_root: str | Path | None = None,
    runs_dir: str | Path = "runs",
    resume: str | Path | None = None,
    command: str = "",
    progress: bool = True,
    callbacks: list[L.Callback] | None = None,
) -> dict[str, Any]:
    """Train a recipe (raw dictionary, validated here) or resume a run folder; returns the results.

    ``callbacks`` are extra Lightning callbacks (run before the checkpoint is written).
    """
    ckpt_path = None
    resumed_step: int | None = None
    if resume is not None:
        run_dir = Path(resume)
        ckpt = run_dir / "checkpoints" / "last.ckpt"
        if not (run_dir / "recipe.yaml").is_file() or not ckpt.is_file():
            raise RecipeError(f"cannot resume {run_dir}: it needs recipe.yaml and checkpoints/last.ckpt")
        raw = upgrade_stored_recipe(yaml.safe_load((run_dir / "recipe.yaml").read_text()))
        state = load_checkpoint(ckpt)  # a damaged file stops here, before any data
        stored, resumed_step = state.get("contrastkit_recipe"), int(state["global_step"])
        stored = upgrade_stored_recipe(stored) if isinstance(stored, dict) else stored
        del state
        ckpt_path = str(ckpt)
    recipe = validate(raw)
    changed: list[str] = []
    if resume is not None and stored is not None:
        changed = resume_changes(stored, recipe.to_dict(), ckpt)
    if resume is None:
        fresh = [p for p in (Path(runs_dir) / recipe.name, Path(runs_dir)) if not p.exists()]
        run_dir = _new_run_dir(Path(runs_dir), recipe.name)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        task = _prepare(recipe, data_root)
        monitors = getattr(task.datamodule, "monitor", None) is not None
        trainer = _checked_trainer(recipe, run_dir, progress, list(callbacks or []), task.method, monitors)
    except BaseException:
        if resume is None:  # a run that never started leaves no folder behind
            for folder in (run_dir, *fresh):
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
        raise
    rank_zero = _is_rank_zero()
    random_init: dict[str, Any] | None = None
    try:  # from the first file on, Ctrl-C is an interruption of this run folder
        if rank_zero:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(run_dir / "recipe.yaml", yaml.safe_dump(recipe.to_dict(), sort_keys=False))
            init_file = run_dir / "random_init.json"
            if init_file.exists():
                random_init = json.loads(init_file.read_text())
            else:
                random_init = task.evaluate("random init", progress).numbers
                write_atomic(init_file, json.dumps(random_init, indent=2))
            if resumed_step is not None:
                _drop_steps_after(run_dir, resumed_step)
            append_history(
                run_dir, "resume" if resume is not None else "train", command or f"contrastkit train {recipe.name}"
            )
    except KeyboardInterrupt:
        raise Interrupted(run_dir) from None
    start = time.perf_counter()

    def record(action: str) -> None:
        if rank_zero:
            append_history(run_dir, action, command, seconds=time.perf_counter() - start, epochs=trainer.current_epoch)

    try:
        trainer.fit(task.method, datamodule=task.datamodule, ckpt_path=ckpt_path)
    except SystemExit:
        if trainer.interrupted:  # Lightning turns Ctrl-C into sys.exit(1); report it as an interruption
            record("interrupted")
            raise Interrupted(run_dir) from None
        raise
    except KeyboardInterrupt:
        record("interrupted")
        raise Interrupted(run_dir) from None
    finally:
        if "LOCAL_RANK" not in os.environ:
            os.environ.pop(RUN_DIR_ENV, None)
    train_seconds = time.perf_counter() - start
    if not trainer.is_global_zero:
        return {}
    record("trained")
    try:
        return _finish(
            recipe,
            task,
            run_dir,
            random_init,
            train_seconds,
            trainer.world_size,
            command,
            progress,
            changed_on_resume=changed,
        )
    except KeyboardInterrupt:
        raise Interrupted(run_dir) from None


RESUMABLE = ("optim.epochs", "trainer.devices", "trainer.num_nodes", "trainer.strategy", "trainer.accelerator")
"""Recipe keys a resumed run may change (and the sections ``eval.*`` and ``description``)."""


def resume_changes(stored: dict[str, Any], current: dict[str, Any], ckpt: Path) -> list[str]:
    """Keys where ``current`` differs from the checkpoint's ``stored`` recipe; ``RecipeError``
    listing them unless every one may change on resume (``RESUMABLE``, ``eval.*``, ``description``)."""
    old, new = flatten_keys(stored), flatten_keys(current)
    differing = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    refused = [k for k in differing if k not in RESUMABLE and not k.startswith("eval.") and k != "description"]
    if refused:
        shown = ", ".join(f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in refused[:4])
        raise RecipeError(
            f"recipe.yaml differs from the recipe stored in {ckpt}: {shown}; a resumed run may change only "
            "optim.epochs, trainer devices/nodes/strategy/accelerator and eval settings"
        )
    return differing


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A run's checkpoint (``weights_only``), or ``RecipeError`` naming the file if it is damaged."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for damaged files
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise RecipeError(f"{path} is not a readable checkpoint ({reason[:120]})") from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise RecipeError(f"{path} is not a contrastkit checkpoint (no state_dict)")
    return state


def _drop_steps_after(run_dir: Path, global_step: int) -> None:
    """A resumed run replays steps after its checkpoint: drop their old rows from steps.csv."""
    path = run_dir / "steps.csv"
    if not path.exists():
        return
    lines = path.read_text().splitlines()
    if not lines:
        return
    width = len(lines[0].split(","))

    def complete_and_kept(line: str) -> bool:  # a line torn by a kill is dropped, not parsed
        fields = line.split(",")
        if len(fields) != width:
            return False
        try:
            float(fields[2])
            return int(fields[1]) <= global_step
        except ValueError:
            return False

    kept = [lines[0]] + [line for line in lines[1:] if complete_and_kept(line)]
    write_atomic(path, "\n".join(kept) + "\n")


def _finish(
    recipe: Recipe,
    task: Task,
    run_dir: Path,
    random_init: dict[str, Any] | None,
    train_seconds: float,
    world_size: int,
    command: str,
    progress: bool,
    evaluated_with: str | None = None,
    changed_on_resume: list[str] | None = None,
) -> dict[str, Any]:
    task.method.cpu()
    evaluation_start = time.perf_counter()
    final = task.evaluate("trained", progress)
    from contrastkit.functional._validation import check_finite

    check_finite(True, trained_embeddings=final.embeddings)  # a diverged run stops here, not in t-SNE
    plots = plot_loss(run_dir) + task.plots(run_dir, final, random_init)
    evaluation_seconds = time.perf_counter() - evaluation_start
    history = read_history(run_dir)
    if history.lines:  # folders written before the history was kept keep what they recorded
        command = history.command or command
        train_seconds = history.train_seconds
    epochs_trained = history.epochs_trained if history.epochs_trained is not None else recipe.optim.epochs
    results = {
        "recipe": recipe.name,
        "description": recipe.description,
        "method": recipe.method.name,
        "data": task.source,
        "model": task.model_line(),
        "epochs": recipe.optim.epochs,
        "epochs_trained": epochs_trained,
        "finished": epochs_trained >= recipe.optim.epochs,
        "batch_size": recipe.data.batch_size,
        "world_size": world_size,
        "seed": recipe.trainer.seed,
        "metrics": [{"key": k, "label": label} for k, label in task.metrics],
        "protocol": task.protocol,
        "train_seconds": train_seconds,
        "images_per_second": _mean_throughput(run_dir),
        "samples": task.samples,
        "command": command or f"contrastkit train {recipe.name}",
        "resumed_with": history.resumes,
        "final": final.numbers,
        "random_init": random_init,
        "baseline": task.baseline_name(),
        "run_dir": str(run_dir),
    }
    results["environment"] = environment()
    shares = time_shares(run_dir, evaluation_seconds)
    results["time"] = shares
    if task.input_spec:
        results["input"] = task.input_spec
    key, label = task.metrics[0] if task.metrics else ("", "")
    warning = None
    if task.classes and ("top1" in key or "accuracy" in key):  # a classification accuracy in percent
        value = final.numbers.get(key)
        warning = near_chance_warning(label, None if value is None else float(value), len(task.classes))
    warnings: list[str] = [warning] if warning else []
    wait = shares.get("data_wait")
    if wait is not None and wait > DATA_WAIT_WARNING and shares["epochs"] >= 2:
        warnings.append(data_wait_advice(wait))
    if warnings:
        results["warnings"] = warnings
    verdict = task.verdict(final, random_init)
    if verdict:
        results["verdict"] = verdict
    results["smoke"] = recipe.trainer.smoke
    headline = task.headline(final.numbers, random_init)
    if headline:
        results["headline"] = headline
    references = task.reference_rows()
    if references:
        results["references"] = references
    if evaluated_with:
        results["evaluated_with"] = evaluated_with
    if changed_on_resume:
        results["changed_on_resume"] = changed_on_resume
    write_report(run_dir, results, [(p.file, p.caption) for p in plots])
    return results


def time_shares(run_dir: Path, evaluation_seconds: float) -> dict[str, Any]:
    """Where training time went, summed over the epochs of ``metrics.csv``: the shares of waiting
    for the next batch (data loading and the loop between steps), the steps (forward, backward,
    optimiser), the kNN monitor and the rest (checkpoints, logging); and the final evaluation's
    seconds."""
    rows = read_csv_rows(run_dir / "metrics.csv")
    total = {k: sum(float(r.get(f"{k}_seconds") or 0) for r in rows) for k in ("epoch", "data", "step", "monitor")}
    out: dict[str, Any] = {"epochs": len(rows), "evaluation_seconds": round(evaluation_seconds, 2)}
    if total["epoch"] > 0 and any(r.get("data_seconds") for r in rows):
        for key in ("data", "step", "monitor"):
            out[key if key != "data" else "data_wait"] = round(total[key] / total["epoch"], 4)
        out["other"] = round(max(0.0, 1 - out["data_wait"] - out["step"] - out["monitor"]), 4)
    return out


def _mean_throughput(run_dir: Path) -> float:
    import csv

    path = run_dir / "metrics.csv"
    if not path.exists():
        return 0.0
    with open(path, newline="") as f:
        values = [float(r["images_per_second"]) for r in csv.DictReader(f) if r.get("images_per_second")]
    return sum(values) / len(values) if values else 0.0


@_with_finite_checks
def evaluate_run(run_dir: str | Path, *, data_root: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Re-evaluate a run folder's last checkpoint and rewrite its report."""
    folder = Path(run_dir)
    ckpt = folder / "checkpoints" / "last.ckpt"
    if not (folder / "recipe.yaml").is_file():
        raise RecipeError(f"{folder} is not a run folder (no recipe.yaml)")
    if not ckpt.is_file():
        raise RecipeError(f"{folder} has no checkpoint yet (checkpoints/last.ckpt)")
    recipe = validate(upgrade_stored_recipe(yaml.safe_load((folder / "recipe.yaml").read_text())))
    task = _prepare(recipe, data_root)
    state = load_checkpoint(ckpt)
    from contrastkit.nn.inflate import load_strict

    load_strict(task.method, state["state_dict"], f"{ckpt} does not fit the model of {folder / 'recipe.yaml'}")
    random_init = (
        json.loads((folder / "random_init.json").read_text()) if (folder / "random_init.json").exists() else None
    )
    previous = json.loads((folder / "results.json").read_text()) if (folder / "results.json").exists() else {}
    evaluated_with = f"contrastkit eval {folder}"
    append_history(folder, "eval", evaluated_with)
    return _finish(
        recipe,
        task,
        folder,
        random_init,
        float(previous.get("train_seconds", 0.0)),
        int(previous.get("world_size", 1)),
        str(previous.get("command", "")),  # how the run was trained stays the reproduce line
        progress,
        evaluated_with=evaluated_with,
        changed_on_resume=previous.get("changed_on_resume"),
    )
