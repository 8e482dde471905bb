"""The benchmark harness: the published tables are what the scripts render from their JSON, every
report keeps the schema, runs pair by seed, a command line reproduces its arguments, and arms
train through the pipeline into schema-true reports."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import harness  # noqa: E402

STEMS = harness.harness_results()


def test_every_harness_script_has_published_results():
    assert set(STEMS.values()) == set(harness.SCRIPTS)


@pytest.mark.parametrize("stem", sorted(STEMS))
def test_the_published_table_is_what_the_script_renders_from_its_json(stem):
    assert (harness.RESULTS / f"{stem}.md").read_text() == harness.render(stem)


@pytest.mark.parametrize("stem", sorted(STEMS))
def test_every_published_report_keeps_the_schema(stem):
    assert harness.check_report(json.loads((harness.RESULTS / f"{stem}.json").read_text())) == []


def test_check_report_names_what_breaks_the_schema():
    report = {"command": "c", "date": "d", "machine": "m", "seeds": [0], "wall_minutes": 1.0}
    assert harness.check_report(report) == []
    report["accuracy"] = {"(a)": [{"seed": 1, "final": {}, "random_init": {}, "run": ""}], "(b)": [{"seed": 0}]}
    problems = harness.check_report({**report, "merged_from": ["x", "y"]})
    assert any("'(a)' holds seed 1" in p for p in problems)
    assert any("'(b)' lacks" in p for p in problems)
    assert any("merged_from" in p for p in problems)
    assert harness.check_report({"command": "c"}) != []


def _run(seed, value):
    return {"seed": seed, "final": {"acc": value}, "random_init": {"acc": 10.0 + seed}, "run": ""}


def test_runs_pair_by_seed_not_by_position():
    first = [_run(0, 1.0), _run(1, 2.0), _run(2, 3.0)]
    second = [_run(2, 30.0), _run(0, 10.0)]  # seed 1 missing, out of order
    pairs = harness.paired(first, second)
    assert [(a["seed"], b["seed"]) for a, b in pairs] == [(0, 0), (2, 2)]
    assert [b["final"]["acc"] - a["final"]["acc"] for a, b in pairs] == [9.0, 27.0]


def test_arm_rows_put_random_init_first_and_name_partial_seeds():
    runs = {"(a)": [_run(0, 50.0), _run(1, 60.0)], "(b)": [_run(1, 70.0)]}
    rows = harness.arm_rows(runs, ["acc"], seeds=[0, 1])
    assert rows[0] == "| random init (seeds 0, 1) | 10.50 ± 0.71 |"
    assert rows[1] == "| (a) | 55.00 ± 7.07 |"
    assert rows[2] == "| (b) (seed 1) | 70.00 |"


def test_merging_parts_joins_seeds_and_refuses_a_seed_twice():
    part = {"command": "p1", "seeds": [0], "wall_minutes": 2.0, "accuracy": {"(a)": [_run(0, 1.0)]}}
    report = {"command": "p2", "seeds": [1], "wall_minutes": 3.0, "accuracy": {"(a)": [_run(1, 2.0)]}}
    harness.merge_runs(report, [part])
    assert report["seeds"] == [0, 1] and report["wall_minutes"] == 5.0
    assert [r["seed"] for r in report["accuracy"]["(a)"]] == [0, 1]
    assert report["merged_from"] == ["p1", "p2"]
    with pytest.raises(SystemExit, match="seed listed twice"):
        harness.merge_runs(report, [part])


def test_the_command_line_reproduces_the_arguments():
    bench = harness.ArmBenchmark("demo", "simclr-digits", {"(a)": []}, "runs/x")
    parser = bench.parser("demo", data_root="data", subsets=True, speed=True, choose_arms=True)
    args = parser.parse_args(["--data-root", "d", "--seeds", "1", "2", "--epochs", "3", "--skip-speed", "--arms", "0"])
    command = bench.command(parser, args)
    assert command == "python benchmarks/demo.py --data-root d --seeds 1 2 --epochs 3 --skip-speed --arms 0"
    again = parser.parse_args(command.split()[2:])
    assert vars(again) == vars(args)
    assert bench.command(parser, parser.parse_args([])) == "python benchmarks/demo.py"


def test_overrides_carry_arm_seed_invocation_and_smoke_sizes():
    bench = harness.ArmBenchmark(
        "demo", "vclr-synthetic", {"(a)": ["method.x=1"]}, "runs/x", fixed=lambda args: [f"data.dataset={args.d}"]
    )
    args = argparse.Namespace(epochs=2, train_subset=64, test_subset=32, d="moving")
    assert bench.overrides(args, ["method.x=1"], 7) == [
        "method.x=1",
        "trainer.seed=7",
        "data.dataset=moving",
        "optim.epochs=2",
        "data.train_subset=64",
        "data.test_subset=32",
    ]


def test_cpu_model_reads_the_name_and_simd_flags():
    name, flags = harness.cpu_model("model name\t: Some CPU 9000\nflags\t\t: fpu sse avx2 avx512f amx_tile\n")
    assert name == "Some CPU 9000"
    assert flags == ["avx2", "avx512f", "amx_tile"]


def test_arms_train_through_the_pipeline_into_a_schema_true_report(tmp_path):
    bench = harness.ArmBenchmark(
        "demo",
        "simclr-digits",
        {"(a) t 0.5": ["method.temperature=0.5"], "(b) t 0.2": ["method.temperature=0.2"]},
        str(tmp_path / "runs"),
    )
    parser = bench.parser("demo")
    args = parser.parse_args(["--seeds", "0", "--epochs", "1", "--out", str(tmp_path)])
    for name, value in (("eval.linear_probe", "false"), ("eval.label_fractions", "[]")):
        bench.arms = {k: [*v, f"{name}={value}"] for k, v in bench.arms.items()}
    report = harness.new_report(bench.command(parser, args), args.seeds)
    report["accuracy"] = bench.run_arms(args)

    def markdown(r):
        return "\n".join([*harness.header("demo", r), *harness.arm_rows(r["accuracy"], ["knn_top1"])]) + "\n"

    harness.finish(report, args, "demo", markdown, start=0.0)
    saved = json.loads((tmp_path / "demo.json").read_text())
    assert harness.check_report(saved) == []
    assert [r["seed"] for r in saved["accuracy"]["(b) t 0.2"]] == [0]
    run = Path(saved["accuracy"]["(b) t 0.2"][0]["run"])
    assert "--set method.temperature=0.2" in json.loads((run / "results.json").read_text())["command"]
    assert "| (a) t 0.5 |" in (tmp_path / "demo.md").read_text()
