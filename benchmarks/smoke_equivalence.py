"""Does a change move any number? Every shipped recipe that runs offline, at ``--smoke`` size, on
this tree and on another commit, compared exactly: each step's loss and every final metric.

Run:  python benchmarks/smoke_equivalence.py --against 4235558 --data-root ../shared/data

The other commit is checked out into a temporary git worktree and imported first on the path
(same virtual environment, same torch); both sides share one data cache, filled by a warm-up pass
of the recipes that generate their data, so that both read the same decoded frames. A refactor
that keeps every code path's arithmetic shows ``identical`` on every row; a change that moves a
number shows the largest relative difference of its losses and the metrics that differ.
Results: ``benchmarks/results/smoke_equivalence.{json,md}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
TREE = Path(__file__).resolve().parents[1]
NEEDS_USER_DATA = {"videomoco-ucf101", "vclr-ucf101", "crossclr-features", "aecr-reside", "simclr-folder"}
GENERATED = ("videomoco-synthetic", "vclr-synthetic", "longshort-synthetic")
VARIES = ("train_seconds", "throughput", "seconds")


def child(out: Path, data_root: str, only: list[str]) -> None:
    """Train each recipe in this process (whichever contrastkit is first on the path)."""
    warnings.simplefilter("ignore")
    from contrastkit.cli import main
    from contrastkit.config import list_recipes

    results: dict[str, Any] = {}
    for name in list_recipes():
        if name in NEEDS_USER_DATA or name.startswith("moon") or (only and name not in only):
            continue
        runs = out / "runs"
        args = ["train", name, "--smoke", "--quiet", "--runs-dir", str(runs), "--data-root", data_root]
        rc = main(args)
        folders = sorted((runs / name).iterdir()) if (runs / name).is_dir() else []
        if rc != 0 or not folders:
            results[name] = {"rc": rc}
            continue
        final = json.loads((folders[-1] / "results.json").read_text())["final"]
        with open(folders[-1] / "steps.csv") as f:
            losses = [float(row["loss"]) for row in csv.DictReader(f)]
        results[name] = {"rc": rc, "final": final, "losses": losses}
    (out / "smoke.json").write_text(json.dumps(results, default=str))


def run_side(src: Path | None, out: Path, env: dict[str, str], only: list[str]) -> dict[str, Any]:
    side_env = dict(env)
    if src is not None:
        side_env["PYTHONPATH"] = str(src)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(out), "--data-root", ARGS.data_root, *only]
    subprocess.run(cmd, env=side_env, cwd=tempfile.gettempdir(), check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "smoke.json").read_text())


def compare(theirs: dict[str, Any], ours: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name in sorted(set(theirs) | set(ours)):
        a, b = theirs.get(name, {}), ours.get(name, {})
        if a.get("rc") != 0 or b.get("rc") != 0:
            rows.append({"recipe": name, "verdict": f"failed (rc {a.get('rc')} / {b.get('rc')})"})
            continue
        metrics = sorted(
            k for k in set(a["final"]) | set(b["final"]) if k not in VARIES and a["final"].get(k) != b["final"].get(k)
        )
        gaps = [abs(x - y) / max(abs(x), 1e-12) for x, y in zip(a["losses"], b["losses"])]
        same = not metrics and a["losses"] == b["losses"]
        rows.append(
            {
                "recipe": name,
                "steps": len(b["losses"]),
                "verdict": "identical" if same else "differs",
                "max_relative_loss_gap": max(gaps, default=0.0),
                "metrics_differing": metrics,
            }
        )
    return rows


def main() -> None:
    if ARGS.child:
        child(Path(ARGS.child), ARGS.data_root, ARGS.recipes)
        return
    typed_root, ARGS.data_root = ARGS.data_root, str(Path(ARGS.data_root).resolve())
    commit = subprocess.run(["git", "-C", str(TREE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run(
            ["git", "-C", str(TREE), "worktree", "add", "-f", "-q", str(work / "other"), ARGS.against], check=True
        )
        try:
            env = {**os.environ, "CONTRASTKIT_CACHE": str(work / "cache")}
            env.pop("PYTHONPATH", None)
            run_side(None, work / "warm", env, [r for r in GENERATED if not ARGS.recipes or r in ARGS.recipes])
            theirs = run_side(work / "other" / "src", work / "theirs", env, ARGS.recipes)
            ours = run_side(None, work / "ours", env, ARGS.recipes)
        finally:
            subprocess.run(["git", "-C", str(TREE), "worktree", "remove", "--force", str(work / "other")], check=False)
    rows = compare(theirs, ours)
    command = f"python benchmarks/smoke_equivalence.py --against {ARGS.against} --data-root {typed_root}"
    report = {
        "command": command,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "this_tree": commit.stdout.strip() + " (with uncommitted changes, if any)",
        "against": ARGS.against,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "smoke_equivalence.json").write_text(json.dumps(report, indent=2))
    same = sum(r["verdict"] == "identical" for r in rows)
    lines = [
        f"# Every offline recipe at `--smoke` size: this tree against {ARGS.against}",
        "",
        f"Command: `{command}`  ",
        f"Date: {report['date']}; this tree: {report['this_tree']}.",
        "",
        f"**{same} of {len(rows)} recipes identical** (every step's loss and every final metric, exactly; "
        "timings excluded).",
        "",
        "| recipe | steps | verdict | largest relative loss gap | metrics that differ |",
        "|---|---:|---|---:|---|",
    ]
    for r in rows:
        gap = f"{r.get('max_relative_loss_gap', 0):.1e}" if "steps" in r else ""
        lines.append(
            f"| {r['recipe']} | {r.get('steps', '')} | {r['verdict']} | {gap} | {', '.join(r.get('metrics_differing', []))} |"
        )
    (RESULTS / "smoke_equivalence.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", default="HEAD", help="the commit to compare this tree with")
    parser.add_argument("--data-root", default=os.environ.get("CONTRASTKIT_DATA", "../shared/data"))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("recipes", nargs="*", help="only these recipes (default: every offline one)")
    ARGS = parser.parse_args()
    main()
