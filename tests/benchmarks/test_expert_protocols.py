"""The expert-protocol tables: paired differences, the orderings and the within-arm claims are
counted per seed from the runs (a fabricated report of two seeds)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import expert_protocols as ep  # noqa: E402


def _run(seed, **numbers):
    base = {key: 0.0 for key, _ in ep.PROTOCOLS["longshort"].metrics}
    return {"seed": seed, "final": {**base, **numbers}, "random_init": dict(base), "run": "", "command": ""}


def test_the_longshort_table_counts_claims_and_orderings_per_seed():
    arm, simclr = list(ep.PROTOCOLS["longshort"].arms)
    runs = {
        setting: {
            # seed 0: h^s reads the class better (60 > 50), seed 1 not (40 < 45)
            arm: [
                _run(
                    0,
                    linear_probe_stationary=60.0 + bump,
                    linear_probe_nonstationary=50.0,
                    seg_frame_acc_nonstationary=30.0,
                ),
                _run(
                    1,
                    linear_probe_stationary=40.0 + bump,
                    linear_probe_nonstationary=45.0,
                    seg_frame_acc_nonstationary=30.0,
                ),
            ],
            simclr: [_run(0, linear_probe_stationary=55.0), _run(1, linear_probe_stationary=55.0)],
        }
        for setting, bump in (("scratch", 0.0), ("expert", 10.0))
    }
    page = ep.markdown(
        {"protocol": "longshort", "runs": runs, "commands": ["x"], "date": "d", "wall_minutes": 1.0, "machine": "m"}
    )
    assert "- long/short (K=4, order negative): +10.00, +10.00; mean 10.00 ± 0.00; 2 of 2 seeds positive" in page
    assert "the class is read better from h^s than h^n: 50.00 vs 47.50, holds on means, in 1 of 2 seeds" in page
    assert "the phases are read better from h^n than h^s: 30.00 vs 0.00, holds on means, in 2 of 2 seeds" in page
    # long/short >= SimCLR on cls h^s: scratch 50 vs 55 (1 of 2 seeds), expert 60 vs 55 (1 of 2)
    assert "(from scratch), on means: does not hold (50.00, 55.00); in 1 of 2 seeds" in page
    assert "(inflated from the zoo encoder), on means: holds (60.00, 55.00); in 1 of 2 seeds" in page


def test_the_videomoco_table_counts_what_dropping_frames_costs_each_arm_per_seed():
    d, a = list(ep.PROTOCOLS["videomoco"].arms)

    def run(seed, clean, dropped):
        return {
            "seed": seed,
            "final": {
                "linear_probe_top1": clean,
                "linear_probe_drop25": dropped,
                "linear_probe_drop50": 0.0,
                "knn_top1": 0.0,
            },
            "random_init": {
                "linear_probe_top1": 0.0,
                "linear_probe_drop25": 0.0,
                "linear_probe_drop50": 0.0,
                "knn_top1": 0.0,
            },
        }

    # (d) loses 1 and 5 points, (a) 4 and 6: less in both seeds; (a) alone in another setting
    runs = {
        "scratch": {d: [run(0, 30, 29), run(1, 30, 25)], a: [run(0, 30, 26), run(1, 30, 24)]},
        "expert": {d: [run(0, 30, 20), run(1, 30, 25)], a: [run(0, 30, 26), run(1, 30, 28)]},
    }
    page = ep.markdown(
        {"protocol": "videomoco", "runs": runs, "commands": [], "date": "d", "wall_minutes": 1.0, "machine": "m"}
    )
    assert (
        f"- {d} loses less than {a} from probe clean to probe, 25% dropped (from scratch): 3.00 vs 5.00 points, "
        "holds on means, in 2 of 2 seeds"
    ) in page
    assert "(inflated from the zoo encoder): 7.50 vs 3.00 points, does not hold on means, in 0 of 2 seeds" in page


SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.mark.skipif(not (SHARED_DATA / "cifar10" / "train.npz").is_file(), reason="no CIFAR-10 copy")
def test_evaluating_again_on_a_longer_test_split_reproduces_the_run_then_extends_it(tmp_path, monkeypatch):
    pytest.importorskip("av")
    from contrastkit.cli import main
    from contrastkit.data.video_folders import decode_videos

    sizes = ["data.train_subset=30", "data.test_subset=10", "data.video_frames=16", "data.cache_dir=" + str(tmp_path)]
    args = ["train", "videomoco-cifar", "--smoke", "--no-progress", "--runs-dir", str(tmp_path / "runs")]
    assert main([*args, "--data-root", str(SHARED_DATA), *(x for s in sizes for x in ("--set", s))]) == 0
    (folder,) = (tmp_path / "runs" / "videomoco-cifar").iterdir()
    results = json.loads((folder / "results.json").read_text())
    row = {"seed": 0, "final": results["final"], "random_init": results["random_init"], "run": str(folder)}
    monkeypatch.setattr(ep, "ARGS", argparse.Namespace(data_root=str(SHARED_DATA)), raising=False)
    monkeypatch.setattr(ep, "RUNS", str(tmp_path / "progress"))

    same = {"protocol": "videomoco", "runs": {"scratch": {"(a)": [dict(row)]}}}
    ep.reevaluate(same, 10)  # the same split: the checkpoint and its random init are rebuilt exactly
    (again,) = same["runs"]["scratch"]["(a)"]
    for key in ("knn_top1", "linear_probe_top1", "retrieval_r1"):
        assert again["final"][key] == pytest.approx(results["final"][key], abs=1e-6), key
        assert again["random_init"][key] == pytest.approx(results["random_init"][key], abs=1e-6), key
    assert again["evaluated_before"] == {"test_videos": 10, "final": row["final"], "random_init": row["random_init"]}

    longer = {"protocol": "videomoco", "runs": {"scratch": {"(a)": [dict(row)]}}}
    ep.reevaluate(longer, 20)
    assert longer["runs"]["scratch"]["(a)"][0]["test_videos"] == 20
    old, new = (tmp_path / "moving_cifar-30-10-16f-seed0", tmp_path / "moving_cifar-30-20-16f-seed0")
    # the training videos (the probe's bank) are those the run trained on; the old test videos come first
    names = sorted(f.relative_to(old) for f in old.glob("*/*/*.mp4"))
    assert len(names) == 40
    old_frames, new_frames = (
        decode_videos([folder / n for n in names], [0] * 40, frames=16, size=32).frames.float() for folder in (old, new)
    )
    # the same draws; libx264 is not bit-reproducible, so a re-encoded video may differ by a grey level or two
    assert (old_frames - new_frames).abs().mean(dim=(1, 2, 3, 4)).max() < 4
    assert (old_frames - new_frames.roll(1, 0)).abs().mean(dim=(1, 2, 3, 4)).min() > 10  # other draws differ more
    assert len(list(new.glob("test/*/*.mp4"))) == 20


def test_a_table_refuses_runs_evaluated_on_test_splits_of_different_sizes():
    arm, simclr = list(ep.PROTOCOLS["longshort"].arms)
    runs = {"scratch": {arm: [{**_run(0), "test_videos": 1000}], simclr: [{**_run(0), "test_videos": 200}]}}
    report = {"protocol": "longshort", "runs": runs, "commands": [], "date": "d", "wall_minutes": 1.0, "machine": "m"}
    with pytest.raises(SystemExit, match=r"different sizes \(\[200, 1000\]\)"):
        ep.markdown(report)
    runs["scratch"][simclr][0]["test_videos"] = 1000
    assert "| random init |" in ep.markdown(report)
