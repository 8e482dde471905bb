"""The one harness of the arm x seed benchmarks: arms of a recipe trained over seeds, runs made in
parts and merged later, the random-init row, per-seed pairing, timing, and one report schema.

Scripts import it as ``from harness import ...`` (they run as ``python benchmarks/NAME.py``, which
puts ``benchmarks/`` on the path). A script declares its ``ArmBenchmark`` (recipe, arms, seeds),
builds its command line with ``bench.parser``, trains with ``bench.run_arms`` and writes with
``finish``; what is its own is the table's columns, its expectations and its speed section.

Report schema (``benchmarks/results/<stem>.json``), shared by every script that uses the harness::

    command        str            the command that wrote it
    merged_from    [str]          (parts joined) the command of every part, this one last
    date           str            ISO 8601, UTC
    machine        str            ``machine_line()``: CPU model and SIMD flags, cores, threads, torch
    seeds          [int]          the seeds the accuracy section holds
    wall_minutes   float | null   the wall time of all parts together (null: not recorded)
    accuracy       {arm: [run]}   run = {seed, final: {metric: value}, random_init: {...}, run: folder}
    speed          {...}          (optional) the script's timing section: median seconds, ratios, ...
    <other keys>                  (optional) script-specific sections (real_content, supervised, ...)

``check_report`` says what in a report breaks the schema.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).parent / "results"
SIMD_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
REQUIRED = {"command": str, "date": str, "machine": str, "seeds": list, "wall_minutes": (int, float, type(None))}
RUN_KEYS = ("seed", "final", "random_init", "run")

Runs = dict[str, list[dict[str, Any]]]


# -- the machine -----------------------------------------------------------------------------------


def cpu_model(cpuinfo: str | None = None) -> tuple[str, list[str]]:
    """The CPU's model name and which of ``SIMD_FLAGS`` it has (from ``/proc/cpuinfo`` on Linux)."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.is_file() else ""
    name, flags = platform.processor() or platform.machine(), set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            name = value.strip()
        elif key.strip() in ("flags", "Features"):
            flags = set(value.split())
    return name, [f for f in SIMD_FLAGS if f in flags]


def machine_line() -> str:
    """``AMD EPYC (avx2, avx512f, ...), 2 cores, 2 threads, torch 2.14.1`` — for every speed table."""
    name, flags = cpu_model()
    simd = f" ({', '.join(flags)})" if flags else ""
    return f"{name}{simd}, {os.cpu_count()} cores, {torch.get_num_threads()} threads, torch {torch.__version__}"


# -- timing ----------------------------------------------------------------------------------------


def median_times(contenders: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds of each callable, run round-robin after one warm-up call each."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def peak_mib(fn: Callable[[], None]) -> float:
    """Peak of the tensor memory ``fn`` allocates (CPU profiler memory events), MiB."""
    with torch.profiler.profile(profile_memory=True) as prof:
        fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    level = peak = 0
    for _, nbytes in events:
        level += nbytes
        peak = max(peak, level)
    return peak / 2**20


def method_step(method: Any, inputs: torch.Tensor, optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    """One training step of a contrastkit method on a fixed batch, outside Lightning: the
    per-batch hook (momentum update), ``step``, then zero grad, backward and the optimiser step."""
    batch = {"input": inputs, "index": torch.arange(len(inputs))}

    def step() -> None:
        method.on_train_batch_start(None, 0)
        loss = method.step(batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def profile_ops(fn: Callable[[], None], calls: int = 3, top: int = 8) -> list[dict[str, Any]]:
    """The ``top`` operators of ``fn`` by self CPU time (torch.profiler over ``calls`` calls after
    a warm-up): name, milliseconds per call of ``fn``, share of all operators' self time, count."""
    fn()
    with torch.profiler.profile() as prof:
        for _ in range(calls):
            fn()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return [
        {
            "op": e.key,
            "self_ms": e.self_cpu_time_total / 1000 / calls,
            "share": e.self_cpu_time_total / total,
            "count": e.count // calls,
        }
        for e in events[:top]
    ]


def profile_lines(profiles: dict[str, list[dict[str, Any]]]) -> list[str]:
    """A table per profiled part: ``profile_ops``' rows."""
    lines = []
    for part, rows in profiles.items():
        lines += ["", f"Profile of {part} (self CPU time per call, torch.profiler):", ""]
        lines += ["| operator | ms | share | calls |", "|---|---:|---:|---:|"]
        lines += [f"| `{r['op']}` | {r['self_ms']:.1f} | {100 * r['share']:.0f}% | {r['count']} |" for r in rows]
    return lines


# -- tables ----------------------------------------------------------------------------------------


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def header(title: str, report: dict[str, Any]) -> list[str]:
    """The title, the command of every part, and the date / seeds / wall time / machine line."""
    return [
        f"# {title}",
        "",
        *(f"Command: `{c}`  " for c in report.get("merged_from", [report["command"]])),
        f"Date: {report['date']}; seeds {report['seeds']}; wall time {_minutes(report['wall_minutes'])}; "
        f"{report['machine']}.",
        "",
    ]


def _minutes(value: float | None) -> str:
    return "not recorded" if value is None else f"{value:.0f} min"


def random_init_row(runs: Runs, keys: Iterable[str]) -> str:
    """The table row of the untrained encoders: one result per seed, from the first arm that ran
    that seed (the untrained encoder depends on the seed only)."""
    per_seed: dict[int, dict[str, float]] = {}
    for rs in runs.values():
        for r in rs:
            per_seed.setdefault(r["seed"], r["random_init"])
    cells = " | ".join(mean_std([init[k] for init in per_seed.values()]) for k in keys)
    return f"| random init (seeds {', '.join(map(str, sorted(per_seed)))}) | {cells} |"


def arm_rows(runs: Runs, keys: Iterable[str], seeds: list[int] | None = None) -> list[str]:
    """The random-init row, then one row per arm: mean ± std over its seeds of each key. An arm
    that ran fewer seeds than ``seeds`` names its own."""
    keys = list(keys)
    lines = [random_init_row(runs, keys)]
    for label, rs in runs.items():
        partial = seeds is not None and len(rs) != len(seeds)
        suffix = f" (seed {', '.join(str(r['seed']) for r in rs)})" if partial else ""
        lines.append(f"| {label}{suffix} | " + " | ".join(mean_std([r["final"][k] for r in rs]) for k in keys) + " |")
    return lines


def speed_table(title: str, speed: dict[str, Any], first_column: str = "step") -> list[str]:
    """A speed section: its heading, then median seconds and peak memory of each timed part
    (``speed["median_s"]``, ``speed["peak_mib"]``)."""
    lines = ["", f"## {title}", "", f"| {first_column} | median (s) | peak memory (MiB) |", "|---|---:|---:|"]
    for name, seconds in speed["median_s"].items():
        lines.append(f"| {name} | {seconds:.3f} | {speed['peak_mib'].get(name, float('nan')):.0f} |")
    return lines


def arm_mean(runs: Runs, label: str, key: str) -> float:
    return statistics.mean(r["final"][key] for r in runs[label])


def paired(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The runs of two arms that share a seed, as (first's, second's) pairs in seed order."""
    by_seed = {r["seed"]: r for r in second}
    return [(r, by_seed[r["seed"]]) for r in sorted(first, key=lambda r: r["seed"]) if r["seed"] in by_seed]


def holds(condition: bool) -> str:
    return "holds" if condition else "does not hold"


# -- arms x seeds ----------------------------------------------------------------------------------


@dataclass
class ArmBenchmark:
    """One script's protocol: ``arms`` (label -> ``--set`` overrides) of ``recipe`` over seeds.

    ``recipe`` may depend on the arguments (e.g. a ``--protocol`` flag); ``fixed`` gives overrides
    every run of an invocation gets (e.g. ``data.dataset=...``)."""

    script: str
    recipe: str | Callable[[argparse.Namespace], str]  # an arm may name its own: ``recipe=NAME``
    arms: dict[str, list[str]]
    runs_dir: str
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    fixed: Callable[[argparse.Namespace], list[str]] = lambda args: []

    def parser(
        self,
        description: str,
        *,
        data_root: str | None = None,
        subsets: bool = False,
        speed: bool = False,
        choose_arms: bool = False,
        merge_only: bool = False,
        speed_repeats: int = 11,
    ) -> argparse.ArgumentParser:
        """The flags every arm benchmark shares; ``data_root``: the help of ``--data-root`` (none
        without it); ``subsets``: ``--train-subset``/``--test-subset``; ``speed``: ``--speed-repeats``
        and ``--skip-speed``; ``choose_arms``: ``--arms``; ``merge_only``: ``--merge-only``."""
        parser = argparse.ArgumentParser(description=description)
        if data_root is not None:
            parser.add_argument("--data-root", default=None, help=data_root)
        parser.add_argument("--seeds", type=int, nargs="+", default=list(self.seeds))
        parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (smoke passes)")
        if subsets:
            parser.add_argument("--train-subset", type=int, default=None, help="fewer training videos (smoke passes)")
            parser.add_argument("--test-subset", type=int, default=200)
        if speed:
            parser.add_argument("--speed-repeats", type=int, default=speed_repeats)
            parser.add_argument("--skip-speed", action="store_true")
        parser.add_argument("--skip-accuracy", action="store_true")
        if choose_arms:
            parser.add_argument(
                "--arms",
                type=int,
                nargs="+",
                default=None,
                help=f"indices of the arms to run: {list(enumerate(self.arms))}",
            )
        parser.add_argument(
            "--reuse", action="store_true", help=f"read back finished runs under {self.runs_dir} with the same recipe"
        )
        parser.add_argument("--merge", type=Path, nargs="+", default=[], help="earlier result files whose seeds to add")
        if merge_only:
            parser.add_argument("--merge-only", action="store_true", help="train nothing: only join the --merge files")
        parser.add_argument("--out", type=Path, default=RESULTS)
        return parser

    def command(self, parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
        """The command line that reproduces ``args``: every flag that differs from its default."""
        words = [f"python benchmarks/{self.script}.py"]
        for action in parser._actions:
            if action.dest in ("help", "out") and not (action.dest == "out" and args.out != action.default):
                continue
            value = getattr(args, action.dest)
            if value == action.default or value is None:
                continue
            flag = action.option_strings[-1]
            if isinstance(action, argparse._StoreTrueAction):
                words.append(flag)
            else:
                words.append(f"{flag} {' '.join(map(str, value)) if isinstance(value, list) else value}")
        return " ".join(words)

    def recipe_name(self, args: argparse.Namespace, arm: Iterable[str] = ()) -> str:
        """The recipe of a run: the arm's ``recipe=NAME`` if it names one, else the benchmark's."""
        named = [a.removeprefix("recipe=") for a in arm if a.startswith("recipe=")]
        return named[-1] if named else self.recipe(args) if callable(self.recipe) else self.recipe

    def overrides(self, args: argparse.Namespace, arm: list[str], seed: int) -> list[str]:
        """Every ``--set`` of one run: the arm's, the seed, the invocation's and the smoke sizes."""
        sets = [*(a for a in arm if not a.startswith("recipe=")), f"trainer.seed={seed}", *self.fixed(args)]
        if args.epochs:
            sets.append(f"optim.epochs={args.epochs}")
        if getattr(args, "train_subset", None):
            sets += [f"data.train_subset={args.train_subset}", f"data.test_subset={args.test_subset}"]
        return sets

    def recipe_of(self, args: argparse.Namespace, arm: list[str], seed: int) -> dict[str, Any]:
        from contrastkit.config import apply_overrides, load_recipe

        return apply_overrides(load_recipe(self.recipe_name(args, arm)), self.overrides(args, arm, seed))

    def chosen(self, args: argparse.Namespace) -> dict[str, list[str]]:
        picks = getattr(args, "arms", None)
        return {label: arm for i, (label, arm) in enumerate(self.arms.items()) if picks is None or i in picks}

    def run_arms(
        self,
        args: argparse.Namespace,
        callback: Callable[[int], Any] | None = None,
        on_run: Callable[[str, dict[str, Any], Any], None] | None = None,
    ) -> Runs:
        """Train every chosen arm for every seed (seed-major, so a part holds whole seeds).

        ``callback(i)`` gives an extra Lightning callback for the i-th seed (or None); ``on_run``
        sees each finished run's label, record and callback. With ``args.reuse``, a finished run
        folder under ``runs_dir`` with the identical resolved recipe is read back instead of trained."""
        from contrastkit.pipeline.run import train

        runs: Runs = {}
        for i, seed in enumerate(args.seeds):
            for label, arm in self.chosen(args).items():
                print(f"== {label} seed {seed}", flush=True)
                root = getattr(args, "data_root", None)
                name, raw = self.recipe_name(args, arm), self.recipe_of(args, arm, seed)
                command = f"contrastkit train {name}" + (f" --data-root {root}" if root else "")
                command += "".join(f" --set {s}" for s in self.overrides(args, arm, seed))
                extra = callback(i) if callback else None
                results = finished_run(Path(self.runs_dir) / name, raw) if getattr(args, "reuse", False) else None
                if results is None:
                    results = train(
                        raw,
                        data_root=root,
                        runs_dir=self.runs_dir,
                        command=command,
                        progress=False,
                        callbacks=[extra] if extra is not None else None,
                    )
                record = run_record(seed, results)
                runs.setdefault(label, []).append(record)
                if on_run is not None:
                    on_run(label, record, extra)
        return runs


def finished_run(folder: Path, raw: dict[str, Any]) -> dict[str, Any] | None:
    """The results of the newest finished run folder under ``folder`` whose resolved recipe is
    ``raw``'s, if any (a benchmark interrupted part-way picks up where it stopped)."""
    import yaml

    from contrastkit.config import validate

    wanted = validate(raw)
    for results in sorted(folder.glob("*/results.json"), reverse=True):
        if validate(yaml.safe_load((results.parent / "recipe.yaml").read_text())) == wanted:
            print(f"   reusing {results.parent}", flush=True)
            return dict(json.loads(results.read_text()))
    return None


def run_record(seed: int, results: dict[str, Any]) -> dict[str, Any]:
    """One run as the report keeps it, from ``train``'s (or a run folder's) results."""
    return {"seed": seed, "final": results["final"], "random_init": results["random_init"], "run": results["run_dir"]}


def new_report(command: str, seeds: list[int]) -> dict[str, Any]:
    return {
        "command": command,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_line(),
        "seeds": list(seeds),
    }


def merge_runs(report: dict[str, Any], earlier: list[dict[str, Any]]) -> None:
    """Add the seeds of earlier result files to ``report``; any other section (speed, ...) is this
    run's, else the first earlier file's that has it."""
    report["merged_from"] = [e["command"] for e in earlier] + [report["command"]]
    runs = report.setdefault("accuracy", {})
    for e in earlier:
        for label, rs in e.get("accuracy", {}).items():
            runs.setdefault(label, []).extend(rs)
        report["seeds"] = sorted({*report["seeds"], *e["seeds"]})
        both = (report["wall_minutes"], e["wall_minutes"])
        report["wall_minutes"] = None if None in both else sum(both)
        for key, section in e.items():  # the script's own sections (speed, ...): this run's, else the first part's
            if key not in (*REQUIRED, "accuracy", "merged_from", "real_content", "date"):
                report.setdefault(key, section)
        for label, check in e.get("real_content", {}).items():  # each arm's first file with one
            report.setdefault("real_content", {}).setdefault(label, check)
    for label, rs in runs.items():
        seeds = [r["seed"] for r in rs]
        if len(seeds) != len(set(seeds)):
            raise SystemExit(f"seed listed twice for {label}: {seeds}")
        rs.sort(key=lambda r: r["seed"])


def finish(
    report: dict[str, Any], args: argparse.Namespace, stem: str, markdown: Callable[[dict[str, Any]], str], start: float
) -> None:
    """Wall time, the ``--merge`` files, then ``<out>/<stem>.{json,md}`` (checked against the schema)."""
    report["wall_minutes"] = (time.time() - start) / 60
    if args.merge:
        merge_runs(report, [json.loads(Path(f).read_text()) for f in args.merge])
    problems = check_report(report)
    if problems:
        raise SystemExit("the report breaks the schema: " + "; ".join(problems))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str))
    text = markdown(report)
    (args.out / f"{stem}.md").write_text(text)
    print(text)


def check_report(report: dict[str, Any]) -> list[str]:
    """What in ``report`` breaks the schema of the module docstring (nothing: ``[]``)."""
    problems = [
        f"{key} missing or not {kind}" for key, kind in REQUIRED.items() if not isinstance(report.get(key), kind)
    ]
    for label, rs in report.get("accuracy", {}).items():
        for r in rs:
            missing = [k for k in RUN_KEYS if k not in r]
            if missing:
                problems.append(f"a run of {label!r} lacks {missing}")
            elif r["seed"] not in report.get("seeds", []):
                problems.append(f"{label!r} holds seed {r['seed']}, not in seeds")
    if "merged_from" in report and report["merged_from"][-1] != report.get("command"):
        problems.append("merged_from does not end with command")
    return problems


# -- re-rendering the published tables from their JSON ---------------------------------------------

SCRIPTS = ("video_vclr", "video_longshort", "video_videomoco", "crossmodal", "ccl", "dehaze", "image_cifar10")


def harness_results(results: Path = RESULTS) -> dict[str, str]:
    """Every result stem in ``results`` written by a harness script, with the script's name."""
    stems = {}
    for path in sorted(results.glob("*.json")):
        owners = [s for s in SCRIPTS if path.stem == s or path.stem.startswith(f"{s}_")]
        if owners:
            stems[path.stem] = max(owners, key=len)
    return stems


def render(stem: str, results: Path = RESULTS) -> str:
    """The table of ``<results>/<stem>.json`` as its script writes it today."""
    import importlib

    module = importlib.import_module(harness_results(results)[stem])
    return str(module.markdown(json.loads((results / f"{stem}.json").read_text())))


def main() -> None:
    parser = argparse.ArgumentParser(description="Re-render the harness scripts' tables from their JSON.")
    parser.add_argument("--check", action="store_true", help="write nothing; fail if a table is not up to date")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    stale = []
    for stem in harness_results(args.results):
        text, path = render(stem, args.results), args.results / f"{stem}.md"
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(stem)
        if not args.check:
            path.write_text(text)
    if args.check and stale:
        raise SystemExit(f"tables not up to date with their JSON: {', '.join(stale)} (python benchmarks/harness.py)")
    print(f"{'stale' if args.check else 'rewrote'}: {', '.join(stale) or 'none'}")


if __name__ == "__main__":
    main()
