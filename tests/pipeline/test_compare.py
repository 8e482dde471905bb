"""``contrastkit compare`` (issue 21 item 7): one self-contained HTML page of several runs, and
the page as Chromium draws it (no console errors, the curves present)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from contrastkit.cli import main
from contrastkit.config import apply_overrides, load_recipe, smoke
from contrastkit.pipeline.compare import recipe_differences, svg_chart
from contrastkit.pipeline.run import train
from tests.browser import CHROMIUM, NO_CHROMIUM, render


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> list[Path]:
    runs = tmp_path_factory.mktemp("runs")
    out = []
    for seed in (0, 1):
        raw = smoke(apply_overrides(load_recipe("simclr-digits"), [f"trainer.seed={seed}", "optim.epochs=2"]))
        out.append(Path(train(raw, runs_dir=runs, progress=False)["run_dir"]))
    return out


def test_recipe_differences_lists_changed_and_missing_keys():
    a = {"optim": {"lr": 0.1, "epochs": 3}, "method": {"name": "moco"}}
    b = {"optim": {"lr": 0.2, "epochs": 3}, "method": {"name": "moco", "beta": 1.0}}
    assert recipe_differences([a, b]) == (["method.beta", "optim.lr"], ["method.name", "optim.epochs"])
    assert recipe_differences([a, a]) == ([], ["method.name", "optim.epochs", "optim.lr"])


def test_chart_draws_one_polyline_per_series_and_dashed_baselines():
    svg = svg_chart(
        "t",
        [("A", "#000", [1, 2, 3], [0.5, 0.4, 0.3]), ("B", "#111", [1, 2], [1, 2])],
        [("A init", "#000", 0.2)],
        "x",
        "y",
    )
    assert svg.count('<polyline class="curve"') == 2
    assert svg.count('class="baseline"') == 1
    assert "no values recorded" in svg_chart("t", [], [], "x", "y")


def test_page_holds_runs_differences_metrics_curves_and_maps(two_runs, tmp_path, capsys):
    out = tmp_path / "compare.html"
    assert main(["compare", *map(str, two_runs), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    page = out.read_text()
    assert "R1: simclr-digits seed 0" in page and "R2: simclr-digits seed 1" in page
    assert re.search(r'<tr class="differs"><th>trainer\.seed</th><td>0</td><td>1</td></tr>', page)
    assert "kNN top-1" in page and "random init" in page
    assert page.count('<polyline class="curve"') >= 4  # loss and the kNN monitor, two runs each
    assert 'class="baseline"' in page  # the random-init kNN of each run
    assert page.count("data:image/png;base64,") == 2  # both embedding maps, embedded
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing to fetch


def test_folders_that_are_not_finished_training_runs_are_one_line(tmp_path, capsys):
    assert main(["compare", str(tmp_path), "--out", str(tmp_path / "x.html")]) == 2
    assert "no results.json" in capsys.readouterr().err
    (tmp_path / "results.json").write_text('{"final_accuracy": {}}')
    assert main(["compare", str(tmp_path), "--out", str(tmp_path / "x.html")]) == 2
    assert "not a training run" in capsys.readouterr().err


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_chromium_draws_the_page_without_console_errors(two_runs, tmp_path):
    out = tmp_path / "compare.html"
    assert main(["compare", *map(str, two_runs), "--out", str(out)]) == 0
    dom, console = render(out.as_uri(), tmp_path)
    assert console == []
    assert "data-errors" not in dom
    drawn = re.search(r'data-drawn-curves="(\d+)"', dom)
    assert drawn is not None and int(drawn.group(1)) >= 4, dom[:500]


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_the_browser_check_sees_a_broken_page(tmp_path):
    from contrastkit.pipeline.compare import CHECK_SCRIPT

    page = tmp_path / "broken.html"
    page.write_text(
        f"<!DOCTYPE html><html><head><script>{CHECK_SCRIPT}</script></head>"
        "<body><script>undefinedFunction();</script></body></html>"
    )
    dom, console = render(page.as_uri(), tmp_path)
    assert any("undefinedFunction" in line for line in console)
    assert 'data-errors="' in dom and 'data-drawn-curves="0"' in dom


def test_ranks_are_best_when_lowest_and_cosines_are_not_marked():
    from contrastkit.pipeline.compare import better

    assert better("t2v_medr") == "lower" and better("v2t_mnr") == "lower"
    assert better("t2v_r1") == "higher" and better("psnr") == "higher" and better("consistency_drop25") == "higher"
    assert better("view_cosine_negative") is None and better("video_different_cluster_cos") is None


def test_the_metric_table_bolds_the_lowest_median_rank_and_the_highest_recall():
    from types import SimpleNamespace

    from contrastkit.pipeline.compare import _metric_tables

    metrics = [{"key": "t2v_r1", "label": "R@1"}, {"key": "t2v_medr", "label": "median rank"}]
    runs = [
        SimpleNamespace(label=f"R{i}", color="#000", results={"metrics": metrics, "final": final, "random_init": {}})
        for i, final in enumerate(({"t2v_r1": 30.0, "t2v_medr": 4.0}, {"t2v_r1": 20.0, "t2v_medr": 9.0}))
    ]
    rows = re.findall(r"<tr><td>(.*?)</td>.*?<td( class=\"best\")?>([\d.]+)</td>", _metric_tables(runs))
    best = {(label, value) for label, mark, value in rows if mark}
    assert best == {("R@1", "30.00"), ("median rank", "4.00")}, rows
