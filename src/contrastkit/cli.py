"""``contrastkit`` command line: train, eval, federate, dehaze, export, compare, recipes, zoo.

User errors (unknown recipe or key, missing data, bad value) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["main", "run"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    from contrastkit import __version__

    parser = _Parser(
        prog="contrastkit",
        description="Contrastive representation learning, one recipe at a time.",
        epilog="contrastkit COMMAND --help says more about a command.",
    )
    parser.add_argument("--version", action="version", version=f"contrastkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    train = sub.add_parser("train", help="train a recipe; writes runs/<recipe>/<timestamp>/")
    train.add_argument("recipe", nargs="?", help="shipped recipe name or path to a YAML file")
    train.add_argument("--data-root", help="folder with datasets (else $CONTRASTKIT_DATA)")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value, e.g. --set optim.epochs=50 (repeatable)",
    )
    train.add_argument("--smoke", action="store_true", help="tiny sizes: seconds, every stage exercised")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run folder")
    train.add_argument("--runs-dir", default="runs", help="where run folders go (default: runs)")
    train.add_argument("--devices", help="processes/GPUs per node (Lightning), e.g. 2")
    train.add_argument("--num-nodes", type=int, help="machines (Lightning)")
    train.add_argument("--strategy", help="Lightning strategy, e.g. ddp")
    train.add_argument("--accelerator", help="cpu, gpu, cuda, mps or auto (Lightning)")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_argument("--quiet", action="store_true", help="only the final summary (implies --no-progress)")

    evaluate = sub.add_parser("eval", help="evaluate a run folder's checkpoint and rewrite its report")
    evaluate.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (runs/<recipe>/<timestamp>)")
    evaluate.add_argument("--data-root", help="folder with datasets (else $CONTRASTKIT_DATA)")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bars")
    evaluate.add_argument("--quiet", action="store_true", help="only the final summary")

    federate = sub.add_parser("federate", help="simulate FedAvg / FedProx / MOON parties with Flower")
    federate.add_argument("recipe", help="shipped federated recipe name or YAML path")
    federate.add_argument("--data-root", help="folder with datasets (else $CONTRASTKIT_DATA)")
    federate.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value, e.g. --set federation.rounds=20 (repeatable)",
    )
    federate.add_argument("--smoke", action="store_true", help="2 parties x 2 rounds on a small subset")
    federate.add_argument("--runs-dir", default="runs", help="where run folders go (default: runs)")
    federate.add_argument("--quiet", action="store_true", help="only the final summary (no line per round)")

    dehaze = sub.add_parser("dehaze", help="restore hazy photos with a trained dehazing run (any size, tiled)")
    dehaze.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER", help="photos, or folders of photos")
    source = dehaze.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="RUN_DIR", help="a run folder of a dehazing recipe (e.g. aecr-synthetic)")
    source.add_argument("--dark-channel", action="store_true", help="the dark channel prior instead of a trained run")
    dehaze.add_argument("--out", required=True, metavar="DIR", help="output folder (same file names and formats)")
    dehaze.add_argument("--tile", type=int, default=512, help="tile side for large images (default 512)")
    dehaze.add_argument("--overlap", type=int, default=32, help="pixels shared by neighbouring tiles (default 32)")
    dehaze.add_argument("--max-pixels", type=int, default=1024 * 1024, help="restore whole up to this many pixels")
    dehaze.add_argument("--no-progress", action="store_true", help="no progress bar")
    dehaze.add_argument("--quiet", action="store_true", help="only the final line and problems")

    export = sub.add_parser(
        "export", help="write a run's trained backbone as a state dict, torchvision weights or ONNX"
    )
    export.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (runs/<recipe>/<timestamp>)")
    export.add_argument(
        "--format",
        default="state_dict",
        choices=["state_dict", "torchvision", "onnx"],
        help="state_dict: our backbone's keys (default); torchvision: loadable into the torchvision model; "
        "onnx: the backbone as an ONNX graph",
    )
    export.add_argument("--out", required=True, metavar="FILE", help="the file to write")

    compare = sub.add_parser("compare", help="training runs side by side on one self-contained HTML page")
    compare.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders (runs/<recipe>/<timestamp>)")
    compare.add_argument("--out", required=True, metavar="FILE.html", help="the page to write")

    sub.add_parser("recipes", help="list shipped recipes")
    from contrastkit.zoo.cli import add_parser as add_zoo_parser

    add_zoo_parser(sub)
    return parser


def _train(args: argparse.Namespace, command: str) -> None:
    from contrastkit.config import apply_overrides, load_recipe, smoke, validate

    if args.resume:
        if args.recipe or args.overrides or args.smoke:
            raise ValueError("--resume takes the recipe from the run folder; drop the recipe, --set and --smoke")
        from contrastkit.pipeline.run import train

        results = train(
            {},
            data_root=args.data_root,
            resume=args.resume,
            command=command,
            progress=not (args.no_progress or args.quiet),
        )
    else:
        if not args.recipe:
            raise ValueError("train needs a RECIPE (see 'contrastkit recipes') or --resume RUN_DIR")
        raw = load_recipe(args.recipe)
        if "federation" in raw:
            raise ValueError(f"'{args.recipe}' is a federated recipe; run it with contrastkit federate")
        for flag, key in (
            ("devices", "devices"),
            ("num_nodes", "num_nodes"),
            ("strategy", "strategy"),
            ("accelerator", "accelerator"),
        ):
            value = getattr(args, flag)
            if value is not None:
                raw.setdefault("trainer", {})[key] = int(value) if flag == "devices" and str(value).isdigit() else value
        raw = apply_overrides(raw, args.overrides)
        if args.smoke:
            raw = smoke(raw, keep=[o.split("=", 1)[0].strip() for o in args.overrides])
        validate(raw)  # fail fast, before any data is loaded
        _note_unused_root(args.data_root, raw)

        from contrastkit.pipeline.run import train

        results = train(
            raw,
            data_root=args.data_root,
            runs_dir=args.runs_dir,
            command=command,
            progress=not (args.no_progress or args.quiet),
        )
    _print_summary(results)


def _note_unused_root(root: str | None, raw: dict[str, Any]) -> None:
    """One line when ``--data-root`` is given to a recipe whose dataset is generated or bundled."""
    from contrastkit.registry import DATASETS

    name = str(raw.get("data", {}).get("dataset", ""))
    if root and name in DATASETS and not DATASETS.get(name).reads_root:
        print(
            f"contrastkit: note: {name} is generated or bundled and reads no data root; --data-root {root} is not used",
            file=sys.stderr,
        )


def _federate(args: argparse.Namespace, command: str) -> None:
    from contrastkit.config import apply_overrides, load_recipe

    raw = apply_overrides(load_recipe(args.recipe), args.overrides)
    if "federation" not in raw:
        raise ValueError(f"'{args.recipe}' is not a federated recipe (no 'federation' section); use contrastkit train")
    if args.smoke:
        fed = raw.setdefault("federation", {})
        fed.update(num_parties=min(int(fed.get("num_parties", 10)), 3), rounds=2, local_epochs=1)
        raw.setdefault("data", {}).update(train_subset=300, test_subset=200)
    from contrastkit.federated.run import federate, validate_federated

    validate_federated(raw)
    _note_unused_root(args.data_root, raw)
    results = federate(raw, data_root=args.data_root, runs_dir=args.runs_dir, command=command, quiet=args.quiet)
    print(
        f"\n{results['recipe']}: {results['parties']} parties, Dirichlet {results['beta']}, {results['rounds']} rounds"
    )
    for algorithm, final in results["final_accuracy"].items():
        seconds = results["median_round_seconds"][algorithm]
        print(f"  {algorithm:8s} final accuracy {final:.2f}%   median round {seconds or 0:.1f} s")
    for warning in results.get("warnings", []):
        print(f"  warning: {warning}")
    if results.get("verdict"):
        print(f"  {results['verdict']}")
    print(f"  report: {results['run_dir']}/report.md")


def _dehaze(args: argparse.Namespace) -> int:
    from contrastkit.pipeline.dehaze import dehaze_files, load_restorer

    if args.tile < 16 or args.overlap < 0 or 2 * args.overlap >= args.tile:
        raise ValueError(f"--tile must be >= 16 and --overlap in [0, tile / 2), got {args.tile} and {args.overlap}")
    if args.dark_channel:
        from contrastkit.nn.dark_channel import DarkChannelPrior

        model = DarkChannelPrior()
    else:
        model = load_restorer(args.run)
        _warn_if_worse_than_input(args.run)
    report = dehaze_files(
        args.inputs,
        model,
        args.out,
        tile=args.tile,
        overlap=args.overlap,
        max_pixels=args.max_pixels,
        progress=not (args.no_progress or args.quiet),
        warn=lambda line: print(f"contrastkit: {line}", file=sys.stderr),
    )
    if not report.written:
        print(f"contrastkit: error: nothing restored: {len(report.skipped)} input(s) refused (above)", file=sys.stderr)
        return 2
    skipped = f"; skipped {len(report.skipped)} (above)" if report.skipped else ""
    print(f"restored {len(report.written)} image(s) into {args.out}{skipped}")
    return 0


def _warn_if_worse_than_input(run_dir: str) -> None:
    """One line when the run's own evaluation found its model worse than the unchanged input."""
    import json
    from pathlib import Path

    results = Path(run_dir) / "results.json"
    verdict = json.loads(results.read_text()).get("verdict", "") if results.is_file() else ""
    if verdict.startswith("Verdict: WORSE"):
        detail = verdict.removeprefix("Verdict: WORSE than ").rstrip(".")
        print(
            f"contrastkit: warning: this run's model scored worse than {detail} on its test set; "
            "expect outputs worse than the photos",
            file=sys.stderr,
        )


def _print_summary(results: dict) -> None:
    if not results:
        return
    final, init = results["final"], results.get("random_init") or {}

    def pct(numbers: dict, key: str, label: str) -> str:
        value = numbers.get(key)
        if value is None:
            return "n/a"
        std = numbers.get(f"{key}_std")
        unit = "" if any(w in label for w in ("rank", "cosine", "dB", "SSIM")) else "%"  # not percentages
        digits = 3 if "SSIM" in label else 2 if "dB" in label else 1
        return f"{value:.{digits}f}{unit}" + (f" ± {std:.{digits}f}" if std is not None else "")

    smoke = " [smoke run: tiny sizes, the numbers say nothing about the method]" if results.get("smoke") else ""
    print(f"\n{results['recipe']} ({results['method']}) on {results['data']}{smoke}")
    before = "random init" if results.get("baseline", "random init") == "random init" else "at start"
    for metric in results["metrics"]:
        key = metric["key"]
        label = metric["label"]
        print(f"  {label:32s} trained {pct(final, key, label):16s} {before} {pct(init, key, label)}")
    for name, row in (results.get("references") or {}).items():
        cells = ", ".join(f"{m['label']} {pct(row, m['key'], m['label'])}" for m in results["metrics"])
        print(f"  reference: {name}: {cells}")
    if results.get("headline"):
        print(f"  {results['headline']}")
    for warning in results.get("warnings", []):
        print(f"  warning: {warning}")
    if results.get("verdict"):
        print(f"  {results['verdict']}")
    print(f"  report: {results['run_dir']}/report.md")


def _quiet_libraries() -> None:
    """Lightning's device lines and tips and known third-party deprecation notices stay off the
    console; warnings from contrastkit itself are fixed at the source, not filtered here."""
    import logging
    import warnings

    import lightning.pytorch  # noqa: F401  (it sets its loggers to INFO when imported)

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    # a task without monitor data runs no validation loop on purpose (limit_val_batches=0)
    warnings.filterwarnings("ignore", message=r"You passed in a `val_dataloader` but have no `validation_step`.*")


def _one_line_notes() -> None:
    """Options used under an old name still work; the console says so in one line."""
    import warnings

    from contrastkit.registry import RenamedOption

    show = warnings.showwarning
    if getattr(show, "one_line_notes", False):
        return

    def showwarning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, RenamedOption):
            print(f"contrastkit: note: {message}", file=sys.stderr)
        else:
            show(message, category, *args, **kwargs)

    showwarning.one_line_notes = True  # type: ignore[attr-defined]
    warnings.showwarning = showwarning


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    if args.command in ("train", "eval", "zoo"):
        _quiet_libraries()
    _one_line_notes()
    command = "contrastkit " + shlex.join(list(argv) if argv is not None else sys.argv[1:])
    from contrastkit.config import RecipeError
    from contrastkit.data.errors import DataError
    from contrastkit.federated.simulation import FlowerRunError
    from contrastkit.nn.text import TextExtraMissing
    from contrastkit.zoo.metafiles import ZooError

    try:
        if args.command == "zoo":
            from contrastkit.zoo.cli import run as run_zoo

            return run_zoo(args)
        if args.command == "recipes":
            from contrastkit.config import list_recipes

            for name, description in list_recipes().items():
                print(f"{name:24s} {description}")
        elif args.command == "train":
            _train(args, command)
        elif args.command == "federate":
            _federate(args, command)
        elif args.command == "export":
            from contrastkit.pipeline.export import export_run

            path = export_run(args.run_dir, args.format, args.out)
            print(f"wrote {path} ({args.format}); what it takes (channels, size, normalisation): {path}.json")
        elif args.command == "compare":
            from contrastkit.pipeline.compare import compare_runs

            print(f"wrote {compare_runs(args.run_dirs, args.out, command)} ({len(args.run_dirs)} runs)")
        elif args.command == "dehaze":
            return _dehaze(args)
        elif args.command == "eval":
            from contrastkit.pipeline.run import evaluate_run

            _print_summary(
                evaluate_run(args.run_dir, data_root=args.data_root, progress=not (args.no_progress or args.quiet))
            )
    except (RecipeError, DataError, ValueError, FileNotFoundError, TextExtraMissing, ZooError) as err:
        print(f"contrastkit: error: {err}".splitlines()[0], file=sys.stderr)
        return 2
    except FlowerRunError as err:  # Flower itself failed: one line naming its log
        print(f"contrastkit: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        hint = getattr(err, "hint", "no run had started training")
        print(f"contrastkit: interrupted; {hint}", file=sys.stderr)
        return 130
    return 0


def run() -> NoReturn:
    """The ``contrastkit`` program: ``main()``'s status as the process's exit status.

    After Ctrl-C the exit is 130 for certain: the exit handlers run and the streams are flushed
    with SIGINT ignored, then the process ends at once. A normal interpreter exit after a handled
    interrupt was seen (once, in CI) to end by SIGINT instead of 130; a second Ctrl-C while
    Lightning or the data workers shut down would do the same. A closed pipe on stdout
    (``| head``) ends it quietly with 1, as Python's documentation recommends.
    """
    import os

    try:
        status = main()
    except BrokenPipeError:  # the reader went away (contrastkit zoo list | head): no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    if status == 130:
        import atexit
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(status)


if __name__ == "__main__":
    run()
