"""The expert-protocol tables: paired differences, the orderings and the within-arm claims are
counted per seed from the runs (a fabricated report of two seeds)."""

from __future__ import annotations

import sys
from pathlib import Path

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
