"""Protocols rebuilt on experts: each arm trained from scratch and from a zoo expert, same seeds.

    python benchmarks/expert_protocols.py crossclr --data-root ../shared/data --seeds 0 1 2

Each paper starts from pretrained experts; ``contrastkit zoo`` provides ours (one checkpoint per
seed, ``moco-v2-cifar10-s{seed}``, trained here on first use and checked against its band). For
every arm and seed the script trains the from-scratch recipe and the expert recipe with the same
seed, then writes ``results/experts_<protocol>.{json,md}``: the random-init row, the expert as it
is (the expert recipe's untrained heads), both rows of every arm, the paired per-seed differences
(expert - scratch; both runs see the same generated data), whether each expert arm beats random
init by more than twice the seed spread, and which of the paper's orderings hold in how many seeds.

    --settings expert        train one side only (then --merge the other's json)
    --test-videos 2000       train nothing: evaluate the report's trained checkpoints, and their
                             starting weights, again on a longer test split (its first videos are
                             the old ones; the training videos are the same draws, re-encoded)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import yaml

from contrastkit import zoo
from contrastkit.config import apply_overrides, load_recipe, upgrade_stored_recipe, validate
from contrastkit.nn.inflate import load_strict
from contrastkit.pipeline.run import _prepare, load_checkpoint, train
from harness import mean_std

RESULTS = Path(__file__).parent / "results"
RUNS = "runs/bench-experts"
SETTINGS = ("scratch", "expert")


@dataclass(frozen=True)
class Protocol:
    """``recipes[setting]`` with ``sets[setting]`` is a setting; every arm of ``arms`` is trained in
    both, an arm of ``shared`` (one that uses no expert) once. ``{seed}`` in a --set is the seed."""

    title: str
    recipes: dict[str, str]  # setting -> recipe
    arms: dict[str, list[str]]  # label -> --set overrides, best first in the paper's ordering
    metrics: tuple[tuple[str, str], ...]  # (key, label); the first is the main metric
    zoo: str  # the expert entry of a seed
    ordering: str
    as_is: str | None  # what "the expert as it is" means for this protocol (None: no such row)
    as_is_key: str | None = None  # a result key holding the expert's own main metric (else: the untrained run's)
    sets: dict[str, list[str]] = field(default_factory=dict)
    shared: dict[str, list[str]] = field(default_factory=dict)  # last in the ordering
    names: dict[str, str] = field(default_factory=lambda: {"scratch": "from scratch", "expert": "expert"})
    shared_note: str = "(uses no expert)"
    # the paper's claims within its own arm (the first): (key a, key b, claim) read as a > b
    within: tuple[tuple[str, str, str], ...] = ()
    # (clean key, perturbed key): the first arm should lose less than each other arm between them
    robustness: tuple[str, str] | None = None


VCLR_OFF = ["method.intra_weight=0", "method.vclr_weight=0", "method.order_weight=0"]

PROTOCOLS = {
    "vclr": Protocol(
        title="VCLR on global-context videos with CIFAR-10 objects: the frame encoder from scratch vs from a zoo "
        "MoCo v2 encoder",
        recipes={"scratch": "vclr-cifar", "expert": "vclr-cifar"},
        sets={"expert": ["model.init=zoo:moco-v2-cifar10-s{seed}"]},
        arms={
            "(c) VCLR": [],
            "(b) clip-level MoCo": ["method.inter_positive=same_segment", *VCLR_OFF],
            "(a) frame-instance MoCo": ["method.inter_positive=same_frame", *VCLR_OFF],
        },
        metrics=(
            ("retrieval_r1", "R@1"),
            ("knn_top1", "kNN"),
            ("linear_probe_top1", "linear probe"),
            ("order_accuracy", "order head (4-way)"),
        ),
        zoo="moco-v2-cifar10-s{seed}",
        ordering="(c) >= (b) >= (a)",
        as_is="the zoo encoder before VCLR trains it",
        names={"scratch": "from scratch", "expert": "from the zoo encoder"},
    ),
    "videomoco": Protocol(
        title="VideoMoCo on videos of a moving CIFAR-10 object (the class): the clip encoder from scratch vs "
        "inflated from a zoo MoCo v2 encoder",
        recipes={"scratch": "videomoco-cifar", "expert": "videomoco-cifar"},
        sets={"expert": ["model.init=zoo:moco-v2-cifar10-s{seed}"]},
        arms={
            "(d) VideoMoCo (G + decay)": [],
            "(a) MoCo on clips": ["method.drop=none", "method.decay=1.0"],
        },
        # the paper's claim is robustness to dropped frames: the probe on clips with 25% of their
        # frames dropped at random is the main metric
        metrics=(
            ("linear_probe_drop25", "probe, 25% dropped"),
            ("linear_probe_top1", "probe clean"),
            ("linear_probe_drop50", "probe, 50% dropped"),
            ("knn_top1", "kNN"),
        ),
        zoo="moco-v2-cifar10-s{seed}",
        ordering="(d) >= (a)",
        robustness=("linear_probe_top1", "linear_probe_drop25"),
        as_is="the inflated zoo encoder before VideoMoCo trains it",
        names={"scratch": "from scratch", "expert": "inflated from the zoo encoder"},
    ),
    "longshort": Protocol(
        title="Long/short views on motion-phase videos of a CIFAR-10 object (the class): the clip encoder from "
        "scratch vs inflated from a zoo MoCo v2 encoder",
        recipes={"scratch": "longshort-cifar", "expert": "longshort-cifar"},
        sets={"expert": ["model.init=zoo:moco-v2-cifar10-s{seed}"]},
        arms={"long/short (K=4, order negative)": [], "SimCLR, one representation": ["method.objective=simclr"]},
        metrics=(
            ("linear_probe_stationary", "cls h^s"),
            ("linear_probe_nonstationary", "cls h^n"),
            ("seg_frame_acc_stationary", "seg h^s"),
            ("seg_frame_acc_nonstationary", "seg h^n"),
            ("seg_frame_acc", "seg both"),
            ("seg_edit", "Edit"),
        ),
        zoo="moco-v2-cifar10-s{seed}",
        ordering="long/short >= SimCLR",
        as_is="the inflated zoo encoder before training",
        names={"scratch": "from scratch", "expert": "inflated from the zoo encoder"},
        within=(
            ("linear_probe_stationary", "linear_probe_nonstationary", "the class is read better from h^s than h^n"),
            ("seg_frame_acc_nonstationary", "seg_frame_acc_stationary", "the phases are read better from h^n than h^s"),
        ),
    ),
    "crossclr": Protocol(
        title="CrossCLR on the captions protocol (objects at CIFAR-10's resolution): the motion descriptor alone "
        "vs beside a frozen appearance expert",
        recipes={"scratch": "crossclr-captions", "expert": "crossclr-captions-expert"},
        arms={
            "(C) CrossCLR": [],
            "(B) + intra negatives": ["method.prune_threshold=null", "method.weight_temperature=null"],
            "(A) symmetric InfoNCE": [
                "method.intra_weight=0",
                "method.prune_threshold=null",
                "method.weight_temperature=null",
            ],
        },
        # a caption names class, direction and pace, so the ~5 clips of a cluster are near-duplicates
        # to it: cluster R@1 is the main metric
        metrics=(
            ("t2v_cluster_r1", "cluster R@1"),
            ("t2v_r1", "t→v R@1"),
            ("t2v_r5", "t→v R@5"),
            ("t2v_medr", "t→v MedR"),
        ),
        sets={"scratch": ["data.object_radius=0.5"]},
        zoo="moco-v2-cifar10-s{seed}",
        ordering="(C) >= (B) >= (A)",
        as_is="the expert recipe's inputs under untrained heads (the expert has no text side)",
    ),
    "aecr": Protocol(
        title="AECR-Net: the CR extractor a random VGG-19 vs a zoo encoder's stages (synthetic haze on real photos)",
        recipes={"scratch": "aecr-synthetic", "expert": "aecr-synthetic"},
        sets={"expert": ["method.extractor=zoo:moco-v2-cifar10-s{seed}"]},
        arms={"(b) L1 + 0.1 CR": []},
        shared={"(a) L1 only": ["method.cr_weight=0"]},
        metrics=(("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("sots_psnr", "SOTS-5 PSNR"), ("sots_ssim", "SOTS-5 SSIM")),
        zoo="moco-v2-cifar10-s{seed}",
        ordering="CR (b) >= L1 (a)",
        as_is=None,
        names={"scratch": "random VGG-19 extractor", "expert": "zoo encoder extractor"},
        shared_note="(no extractor)",
    ),
    "ccl": Protocol(
        title="CCL on CIFAR-10 clips: the image teacher on a random encoder vs on a zoo encoder (each with a head "
        "trained on 5000 labelled frames); the audio teacher uninformative on classes 5-9",
        recipes={"scratch": "ccl-cifar", "expert": "ccl-cifar"},
        sets={"expert": ["data.image_teacher=zoo:moco-v2-cifar10-s{seed}"]},
        arms={"(5) CCL(AI)": [], "(4) CCL(I)": ["method.teachers=image"]},
        shared={"(1) CE only": ["method.teachers=none"]},
        metrics=(
            ("student_top1", "student top-1"),
            ("student_retrieval_r1", "retrieval R@1"),
            ("gap_classes_top1", "top-1, gap classes 5-9"),
            ("other_classes_top1", "top-1, classes 0-4"),
        ),
        zoo="moco-v2-cifar10-s{seed}",
        ordering="(5) >= (4) >= (1)",
        as_is="the image teacher alone (encoder + head on the middle frame)",
        as_is_key="teacher_image_top1",
        names={"scratch": "random-encoder teacher", "expert": "zoo-encoder teacher"},
    ),
}


def run(protocol: Protocol, seeds: list[int], settings: list[str], out: dict[str, Any]) -> None:
    arms = {label: arm for i, (label, arm) in enumerate(protocol.arms.items()) if ARGS.arms is None or i in ARGS.arms}
    jobs = [(label, arm, setting) for label, arm in arms.items() for setting in settings]
    jobs += [(label, arm, "shared") for label, arm in protocol.shared.items() if "scratch" in settings]
    for seed in seeds:
        if "expert" in settings:
            entry = zoo.get(protocol.zoo.format(seed=seed), data_root=ARGS.data_root, progress=False, say=print)
            out.setdefault("experts", {})[str(seed)] = {
                "name": entry.name,
                "value": entry.value,
                "verified": entry.verified,
            }
        for label, arm, setting in jobs:
            recipe = protocol.recipes["scratch" if setting == "shared" else setting]
            sets = [*protocol.sets.get(setting, []), *arm, f"trainer.seed={seed}"]
            sets = [s.format(seed=seed) for s in sets] + ([f"optim.epochs={ARGS.epochs}"] if ARGS.epochs else [])
            sets += ARGS.set
            print(f"== {label} {setting} seed {seed}", flush=True)
            command = f"contrastkit train {recipe} --data-root {ARGS.data_root} " + " ".join(f"--set {s}" for s in sets)
            results = train(
                apply_overrides(load_recipe(recipe), sets),
                data_root=ARGS.data_root,
                runs_dir=RUNS,
                command=command,
                progress=False,
            )
            row = {
                "seed": seed,
                "final": results["final"],
                "random_init": results["random_init"],
                "run": results["run_dir"],
                "command": command,
            }
            row["test_videos"] = _test_videos(row)
            out["runs"].setdefault(setting, {}).setdefault(label, []).append(row)
            save(out)


def _weights_key(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _test_videos(row: dict[str, Any]) -> int:
    source = json.loads((Path(row["run"]) / "results.json").read_text())["data"]
    found = re.search(r"/ (\d+) test", source)
    if not found:
        raise SystemExit(f"cannot read the test split's size from {row['run']}/results.json: {source!r}")
    return int(found.group(1))


def reevaluate(report: dict[str, Any], test_videos: int) -> None:
    """Evaluate every run's last checkpoint, and the weights it started from (random init or the
    expert as it is), on a test split of ``test_videos`` videos; replace the run's numbers in place.
    Generated sets draw their training videos first, so the training videos (the probe's and kNN's
    bank) are the draws the run trained on, and the old test videos are the first of the new split.
    (The set is written anew, and libx264 is not bit-reproducible: a re-encoded video may differ by
    a grey level or two.)"""
    starts: dict[str, dict[str, Any]] = {}  # weights digest -> their numbers (arms share starts)
    progress = Path(RUNS) / f"reevaluating_{report['protocol']}.json"
    progress.parent.mkdir(parents=True, exist_ok=True)
    for setting, arms in report["runs"].items():
        for label, rows in arms.items():
            for row in rows:
                folder = Path(row["run"])
                stored = upgrade_stored_recipe(yaml.safe_load((folder / "recipe.yaml").read_text()))
                recipe = validate(apply_overrides(stored, [f"data.test_subset={test_videos}"]))
                print(f"== re-evaluating {label} {setting} seed {row['seed']} ({folder})", flush=True)
                task = _prepare(recipe, ARGS.data_root)
                key = _weights_key(task.method.clip_encoder)
                if key not in starts:
                    starts[key] = task.evaluate("starting weights", False).numbers
                state = load_checkpoint(folder / "checkpoints" / "last.ckpt")
                load_strict(task.method, state["state_dict"], f"{folder}'s checkpoint")
                row["evaluated_before"] = {"test_videos": _test_videos(row), "final": row["final"]}
                row["evaluated_before"]["random_init"] = row["random_init"]
                row["random_init"], row["final"] = starts[key], task.evaluate("trained", False).numbers
                row["test_videos"] = test_videos
                progress.write_text(json.dumps(report, indent=2))


def _values(rows: list[dict[str, Any]], key: str, which: str = "final") -> list[float]:
    return [float(r[which][key]) for r in sorted(rows, key=lambda r: r["seed"]) if r["seed"] in SEEDS]


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _ordering(protocol: Protocol, runs: dict[str, Any], setting: str, key: str) -> str:
    if any(a not in runs[setting] for a in protocol.arms):
        return (
            f"- paper ordering {protocol.ordering} ({protocol.names.get(setting, setting)}): not every arm has run yet"
        )
    columns = [_values(runs[setting][a], key) for a in protocol.arms]
    columns += [_values(runs["shared"][a], key) for a in protocol.shared if a in runs.get("shared", {})]
    per_seed = list(zip(*columns, strict=True))
    holds = sum(all(x >= y for x, y in zip(vals, vals[1:])) for vals in per_seed)
    means = [statistics.mean(c) for c in columns]
    verdict = "holds" if all(x >= y for x, y in zip(means, means[1:])) else "does not hold"
    shown = ", ".join(f"{m:.2f}" for m in means)
    return f"- paper ordering {protocol.ordering} ({protocol.names.get(setting, setting)}), on means: {verdict} ({shown}); in {holds} of {len(per_seed)} seeds"


def _within(protocol: Protocol, runs: dict[str, Any], setting: str) -> str:
    arm = next(iter(protocol.arms))
    if arm not in runs[setting]:
        return f"- {arm} ({protocol.names.get(setting, setting)}): not run yet"
    parts = []
    for a, b, claim in protocol.within:
        first, second = _values(runs[setting][arm], a), _values(runs[setting][arm], b)
        holds = sum(x > y for x, y in zip(first, second, strict=True))
        mean_a, mean_b = statistics.mean(first), statistics.mean(second)
        verdict = "holds" if mean_a > mean_b else "does not hold"
        parts.append(f"{claim}: {mean_a:.2f} vs {mean_b:.2f}, {verdict} on means, in {holds} of {len(first)} seeds")
    return f"- paper claims on {arm} ({protocol.names.get(setting, setting)}): " + "; ".join(parts)


def _robustness(protocol: Protocol, runs: dict[str, Any], setting: str) -> list[str]:
    assert protocol.robustness is not None
    clean, perturbed = protocol.robustness
    label = dict(protocol.metrics)
    first, *others = [a for a in protocol.arms if a in runs[setting]]
    lines = []

    def losses(arm: str) -> list[float]:
        rows = runs[setting][arm]
        return [c - d for c, d in zip(_values(rows, clean), _values(rows, perturbed), strict=True)]

    for other in others:
        mine, theirs = losses(first), losses(other)
        holds = sum(x < y for x, y in zip(mine, theirs, strict=True))
        verdict = "holds" if statistics.mean(mine) < statistics.mean(theirs) else "does not hold"
        lines.append(
            f"- {first} loses less than {other} from {label[clean]} to {label[perturbed]} "
            f"({protocol.names.get(setting, setting)}): {statistics.mean(mine):.2f} vs {statistics.mean(theirs):.2f} "
            f"points, {verdict} on means, in {holds} of {len(mine)} seeds"
        )
    return lines


def markdown(report: dict[str, Any]) -> str:
    global SEEDS
    protocol = PROTOCOLS[report["protocol"]]
    runs = report["runs"]
    SEEDS = set.intersection(*({r["seed"] for r in rows} for arms in runs.values() for rows in arms.values()))
    key, label = protocol.metrics[0]
    splits = {r["test_videos"] for arms in runs.values() for rows in arms.values() for r in rows if "test_videos" in r}
    if len(splits) > 1:
        raise SystemExit(
            f"the runs were evaluated on test splits of different sizes ({sorted(splits)}): one table needs one"
        )
    lines = [f"# {protocol.title}", ""]
    lines += [f"Command: `{c}`  " for c in report["commands"]]
    if report.get("reevaluated"):
        again = report["reevaluated"]
        lines += [
            f"Evaluated again on {again['test_videos']} test videos (first evaluation: {again['before']}; the "
            f"trained checkpoints are unchanged, the probe's training videos are the same draws, re-encoded, and the "
            f"old test videos are the first of the new split; `{again['command']}`, {again['date']}, "
            f"{again['minutes']:.0f} min). The table as first evaluated: `{again['kept_as']}`.  ",
        ]
    lines += [
        f"Date: {report['date']}; seeds {sorted(SEEDS)} (in every row); wall time {report['wall_minutes']:.0f} min; "
        f"{report['machine']}.",
        "",
    ]
    experts = report.get("experts", {})
    if experts:
        shown = ", ".join(
            f"seed {s}: {e['name']} (kNN {e['value']:.2f}, {'verified' if e['verified'] else 'UNVERIFIED'})"
            for s, e in sorted(experts.items())
            if e.get("value") is not None
        )
        lines += [f"Experts (one zoo checkpoint per seed, `contrastkit zoo get`): {shown}.", ""]
    header = " | ".join(lab for _, lab in protocol.metrics)
    lines += [f"| row | {header} | per-seed {label} |", "|---|" + "---:|" * len(protocol.metrics) + "---|"]

    def row(name: str, rows: list[dict[str, Any]], which: str = "final") -> str:
        cells = " | ".join(mean_std(_values(rows, k, which)) for k, _ in protocol.metrics)
        per_seed = ", ".join(f"{v:.2f}" for v in _values(rows, key, which))
        return f"| {name} | {cells} | {per_seed} |"

    def as_is(rows: list[dict[str, Any]]) -> list[float]:
        if protocol.as_is_key:
            return _values(rows, protocol.as_is_key)
        return _values(rows, key, "random_init")

    def as_is_row(name: str, rows: list[dict[str, Any]]) -> str:
        if not protocol.as_is_key:
            return row(name, rows, "random_init")
        values = as_is(rows)
        blanks = " | –" * (len(protocol.metrics) - 1)
        return f"| {name} | {mean_std(values)}{blanks} | {', '.join(f'{v:.2f}' for v in values)} |"

    first = {s: next(iter(runs[s].values())) for s in runs}
    init_rows = first.get("scratch") or first.get("shared") or first["expert"]
    lines.append(row("random init", init_rows, "random_init"))
    if "scratch" in first and protocol.as_is_key:
        lines.append(as_is_row(f"{protocol.names['scratch']} as it is: {protocol.as_is}", first["scratch"]))
    if "expert" in first and protocol.as_is:
        lines.append(as_is_row(f"expert as it is: {protocol.as_is}", first["expert"]))
    for arm in protocol.arms:
        for setting in SETTINGS:
            if arm in runs.get(setting, {}):
                lines.append(row(f"{arm}, {protocol.names[setting]}", runs[setting][arm]))
    for arm, rows in runs.get("shared", {}).items():
        lines.append(row(f"{arm} {protocol.shared_note}", rows))
    if set(SETTINGS) <= set(runs):
        versus = f"{protocol.names['expert']} - {protocol.names['scratch']}"
        lines += ["", f"Paired per-seed differences on {label}, {versus} (same seed, same data):", ""]
        for arm in [a for a in protocol.arms if a in runs["expert"] and a in runs["scratch"]]:
            pairs = zip(_values(runs["expert"][arm], key), _values(runs["scratch"][arm], key), strict=True)
            diffs = [e - s for e, s in pairs]
            lines.append(
                f"- {arm}: " + ", ".join(f"{d:+.2f}" for d in diffs) + f"; mean {mean_std(diffs)}; "
                f"{sum(d > 0 for d in diffs)} of {len(diffs)} seeds positive"
            )
    if "expert" in runs:
        lines += ["", "Checks on the expert rows:", ""]
        init = _values(init_rows, key, "random_init")
        for arm in [a for a in protocol.arms if a in runs["expert"]]:
            values = _values(runs["expert"][arm], key)
            gap, spread = statistics.mean(values) - statistics.mean(init), max(_spread(values), _spread(init))
            line = (
                f"- {arm}: {gap:+.2f} over random init (twice the seed spread: {2 * spread:.2f}) — "
                f"{'beats it' if gap > 2 * spread else 'does NOT beat it'} by more than twice the spread"
            )
            if protocol.as_is:
                adds = [v - a for v, a in zip(values, as_is(first["expert"]), strict=True)]
                line += f"; over the expert as it is {mean_std(adds)} ({sum(a > 0 for a in adds)} of {len(adds)} seeds)"
            lines.append(line)
    lines += [_ordering(protocol, runs, s, key) for s in SETTINGS if s in runs]
    lines += [_within(protocol, runs, s) for s in SETTINGS if s in runs and protocol.within]
    if protocol.robustness:
        lines += [line for s in SETTINGS if s in runs for line in _robustness(protocol, runs, s)]
    return "\n".join(lines) + "\n"


def save(report: dict[str, Any]) -> None:
    report["wall_minutes"] = report.get("wall_before", 0.0) + (time.time() - START) / 60
    stem = ARGS.out / f"experts_{report['protocol']}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    if report["runs"]:
        stem.with_suffix(".md").write_text(markdown(report))


def main() -> None:
    global ARGS, START
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocol", choices=sorted(PROTOCOLS))
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--epochs", type=int, help="override the recipes' epochs (a smoke pass)")
    parser.add_argument("--arms", type=int, nargs="+", help="train only these arms (indices, paper order)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="one more override for every run (repeatable)"
    )
    parser.add_argument("--merge", type=Path, help="an earlier json of this protocol whose runs to keep")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for experts_<protocol>.{json,md}")
    parser.add_argument(
        "--render", action="store_true", help="rewrite the .md from the protocol's .json, train nothing"
    )
    parser.add_argument(
        "--test-videos",
        type=int,
        help="train nothing: evaluate the report's checkpoints and starting weights again on this many test videos",
    )
    ARGS = parser.parse_args()
    if ARGS.test_videos:
        again(ARGS.test_videos)
        return
    if ARGS.render:
        stem = ARGS.out / f"experts_{ARGS.protocol}"
        stem.with_suffix(".md").write_text(markdown(json.loads(stem.with_suffix(".json").read_text())))
        return
    START = time.time()
    command = "python benchmarks/expert_protocols.py " + " ".join(
        [ARGS.protocol, "--data-root", ARGS.data_root, "--seeds", *map(str, ARGS.seeds), "--settings", *ARGS.settings]
        + (["--epochs", str(ARGS.epochs)] if ARGS.epochs else [])
        + (["--arms", *map(str, ARGS.arms)] if ARGS.arms else [])
        + [f"--set {s}" for s in ARGS.set]
        + (["--merge", str(ARGS.merge)] if ARGS.merge else [])
    )
    report: dict[str, Any] = {"protocol": ARGS.protocol, "seeds": ARGS.seeds, "runs": {}, "commands": []}
    if ARGS.merge:
        report = json.loads(ARGS.merge.read_text())
        report["wall_before"] = report["wall_minutes"]
    report["commands"] = [*report["commands"], command]
    report["seeds"] = sorted(set(report["seeds"]) | set(ARGS.seeds))
    report["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    report["machine"] = f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    run(PROTOCOLS[ARGS.protocol], ARGS.seeds, ARGS.settings, report)
    save(report)
    print((ARGS.out / f"experts_{ARGS.protocol}.md").read_text())


def again(test_videos: int) -> None:
    """``--test-videos``: keep the report as first evaluated beside it, then evaluate it again."""
    global START
    START = time.time()
    stem = ARGS.out / f"experts_{ARGS.protocol}"
    report = json.loads(stem.with_suffix(".json").read_text())
    if report.get("reevaluated"):  # evaluate the report as first evaluated, not a second time
        first = ARGS.out / Path(report["reevaluated"]["kept_as"]).with_suffix(".json").name
        report = json.loads(first.read_text())
    before = sorted({_test_videos(r) for arms in report["runs"].values() for rows in arms.values() for r in rows})
    kept = stem.with_name(f"{stem.name}_test{'-'.join(map(str, before))}")
    if not kept.with_suffix(".json").exists():
        kept.with_suffix(".json").write_text(stem.with_suffix(".json").read_text())
        title, rest = stem.with_suffix(".md").read_text().split("\n", 1)
        kept.with_suffix(".md").write_text(
            f"{title}, as first evaluated ({' / '.join(map(str, before))} test videos)\n{rest}"
        )
    reevaluate(report, test_videos)
    report["reevaluated"] = {
        "test_videos": test_videos,
        "before": " / ".join(f"{n} test videos" for n in before),
        "command": f"python benchmarks/expert_protocols.py {ARGS.protocol} --data-root {ARGS.data_root} "
        f"--test-videos {test_videos}",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "minutes": (time.time() - START) / 60,
        "kept_as": f"benchmarks/results/{kept.name}.md",
    }
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    stem.with_suffix(".md").write_text(markdown(report))
    print(stem.with_suffix(".md").read_text())


ARGS: argparse.Namespace
START: float
SEEDS: set[int] = set()

if __name__ == "__main__":
    main()
