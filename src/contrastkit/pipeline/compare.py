"""``contrastkit compare RUN_DIR... --out report.html``: training runs side by side on one
self-contained HTML page (no network, no script libraries; charts are inline SVG, images are
embedded as data URIs).

The page has: the runs (recipe, data, seed, commit, hardware, command), the recipe settings
that differ between them, the metric tables (trained, random init, gain), the loss and the
monitor curves overlaid (random-init baselines dashed), and each run's embedding map.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from contrastkit._files import write_atomic
from contrastkit.config import flatten_keys, upgrade_stored_recipe
from contrastkit.pipeline.environment import environment_line
from contrastkit.pipeline.report import epochs_line, format_cell, read_csv_rows

__all__ = ["RunRecord", "compare_runs", "load_run", "recipe_differences"]

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")


@dataclass
class RunRecord:
    """What the page shows of one run folder."""

    folder: Path
    label: str
    results: dict[str, Any]
    recipe: dict[str, Any]
    epochs: list[dict[str, str]]
    color: str = PALETTE[0]


def load_run(folder: str | Path, label: str, color: str = PALETTE[0]) -> RunRecord:
    """One finished training run folder (``results.json`` and ``recipe.yaml``)."""
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder")
    results_file = path / "results.json"
    if not results_file.is_file():
        raise ValueError(f"{path} is not a finished run folder (no results.json)")
    results = json.loads(results_file.read_text())
    if "final" not in results:
        raise ValueError(f"{path} is not a training run (compare reads folders written by contrastkit train)")
    recipe_file = path / "recipe.yaml"
    recipe = upgrade_stored_recipe(yaml.safe_load(recipe_file.read_text()) or {}) if recipe_file.is_file() else {}
    return RunRecord(path, label, results, recipe or {}, read_csv_rows(path / "metrics.csv"), color)


def recipe_differences(recipes: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(keys whose values differ between the recipes, keys equal in all), each sorted; a key
    missing from a recipe counts as a difference."""
    flat = [flatten_keys(r) for r in recipes]
    keys = sorted(set().union(*flat)) if flat else []
    sentinel = object()
    differ = [k for k in keys if len({json.dumps(f.get(k, sentinel), default=str) for f in flat}) > 1]
    return differ, [k for k in keys if k not in differ]


# --- charts ---------------------------------------------------------------------------------------


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if m * step >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def svg_chart(
    title: str,
    series: list[tuple[str, str, list[float], list[float]]],
    baselines: list[tuple[str, str, float]],
    xlabel: str,
    ylabel: str,
) -> str:
    """An inline SVG line chart: ``series`` (label, colour, xs, ys) as ``polyline.curve``,
    ``baselines`` (label, colour, y) as dashed ``line.baseline``; a legend below."""
    width, height, left, right, top, bottom = 640, 300, 64, 16, 28, 44
    xs = [x for _, _, sx, _ in series for x in sx]
    ys = [y for _, _, _, sy in series for y in sy] + [y for _, _, y in baselines]
    if not xs or not ys:
        return f'<p class="empty">{html.escape(title)}: no values recorded.</p>'
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    pad = 0.05 * ((max(ys) - min(ys)) or abs(max(ys)) or 1.0)
    y0, y1 = min(ys) - pad, max(ys) + pad

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def py(y: float) -> float:
        return top + (y1 - y) / (y1 - y0) * (height - top - bottom)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{width / 2}" y="16" class="title">{html.escape(title)}</text>',
    ]
    for t in _ticks(y0, y1):
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{py(t):.1f}" y2="{py(t):.1f}"/>')
        parts.append(f'<text class="tick" x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    for t in _ticks(x0, x1):
        parts.append(f'<text class="tick" x="{px(t):.1f}" y="{height - bottom + 16}">{_fmt(t)}</text>')
    parts.append(
        f'<line class="axis" x1="{left}" x2="{width - right}" y1="{height - bottom}" y2="{height - bottom}"/>'
        f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{height - bottom}"/>'
        f'<text class="label" x="{(left + width - right) / 2}" y="{height - 6}">{html.escape(xlabel)}</text>'
        f'<text class="label" transform="translate(14 {(top + height - bottom) / 2}) rotate(-90)">'
        f"{html.escape(ylabel)}</text>"
    )
    for label, color, y in baselines:
        parts.append(
            f'<line class="baseline" x1="{left}" x2="{width - right}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
            f'stroke="{color}"><title>{html.escape(label)}: {_fmt(y)}</title></line>'
        )
    for label, color, sx, sy in series:
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(sx, sy, strict=True))
        parts.append(
            f'<polyline class="curve" data-run="{html.escape(label)}" points="{points}" stroke="{color}">'
            f"<title>{html.escape(label)}</title></polyline>"
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key"><span class="swatch" style="background:{c}"></span>{html.escape(n)}</span>'
        for n, c, _, _ in series
    ) + "".join(
        f'<span class="key"><span class="swatch dashed" style="border-color:{c}"></span>{html.escape(n)}</span>'
        for n, c, _ in baselines
    )
    return f'<figure>{"".join(parts)}<figcaption class="legend">{legend}</figcaption></figure>'


def _epoch_series(run: RunRecord, column: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for row in run.epochs:
        value = row.get(column)
        if value not in (None, "") and row.get("epoch") not in (None, ""):
            y = float(value)
            if math.isfinite(y):
                xs.append(float(row["epoch"]) + 1)
                ys.append(y)
    return xs, ys


def _curves(runs: list[RunRecord]) -> list[str]:
    charts = [
        svg_chart(
            "Training loss (epoch mean)",
            [(r.label, r.color, *_epoch_series(r, "train/loss")) for r in runs],
            [],
            "epoch",
            "loss",
        )
    ]
    monitors = sorted({c for r in runs for row in r.epochs[:1] for c in row if c.startswith("val/")})
    for column in monitors:
        key = column.split("/", 1)[1]
        series = [(r.label, r.color, *_epoch_series(r, column)) for r in runs]
        baselines = [
            (f"{r.label}, random init", r.color, float(r.results["random_init"][key]))
            for r in runs
            if isinstance((r.results.get("random_init") or {}).get(key), int | float)
        ]
        charts.append(svg_chart(f"Monitor: {key} per epoch", [s for s in series if s[2]], baselines, "epoch", key))
    return charts


# --- page -----------------------------------------------------------------------------------------


def better(key: str) -> str | None:
    """Which way a metric improves: ``"lower"`` for ranks (median, mean), ``None`` for cosine
    diagnostics (neither way is better), else ``"higher"``."""
    if key.endswith(("_medr", "_mnr")):
        return "lower"
    if any(part in ("cos", "cosine") for part in key.split("_")):
        return None
    return "higher"


def _metric_tables(runs: list[RunRecord]) -> str:
    metrics: dict[str, str] = {}
    for r in runs:
        for m in r.results.get("metrics", []):
            metrics.setdefault(m["key"], m["label"])
    rows = []
    for key, label in metrics.items():
        values = [(r, (r.results.get("final") or {}).get(key)) for r in runs]
        numeric = [v for _, v in values if isinstance(v, int | float)]
        order = better(key)
        best = (max(numeric) if order == "higher" else min(numeric)) if numeric and order else None
        for r, value in values:
            init = (r.results.get("random_init") or {}).get(key)
            gain = f"{value - init:+.2f}" if isinstance(value, int | float) and isinstance(init, int | float) else "—"
            mark = ' class="best"' if value is not None and value == best and len(numeric) > 1 else ""
            trained, at_init = format_cell(r.results.get("final"), key), format_cell(r.results.get("random_init"), key)
            rows.append(
                f"<tr><td>{html.escape(label)}</td><td>{_run_tag(r)}</td><td{mark}>{trained}</td>"
                f"<td>{at_init}</td><td>{gain}</td></tr>"
            )
    return (
        '<table class="metrics"><thead><tr><th>metric</th><th>run</th><th>trained</th><th>random init</th>'
        f"<th>gain</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        '<p class="note">The best trained value of each metric in bold: the highest, or the lowest for ranks;'
        " cosine diagnostics are not marked.</p>"
    )


def _run_tag(run: RunRecord) -> str:
    return f'<span class="tag" style="border-color:{run.color}">{html.escape(run.label)}</span>'


def _runs_table(runs: list[RunRecord]) -> str:
    rows = []
    for r in runs:
        res = r.results
        env = res.get("environment")
        epochs = html.escape(epochs_line(res)) if "epochs" in res else "—"
        rows.append(
            f"<tr><td>{_run_tag(r)}</td><td>{html.escape(str(res.get('recipe')))}</td>"
            f"<td>{html.escape(str(res.get('method')))}</td><td>{html.escape(str(res.get('data')))}</td>"
            f"<td>{res.get('seed')}</td><td>{epochs}</td><td>{float(res.get('train_seconds', 0)):.0f}</td>"
            f"<td>{html.escape(environment_line(env)) if env else '—'}</td>"
            f"<td><code>{html.escape(str(res.get('command', '')))}</code>"
            + (f"<br><code>{html.escape(res['evaluated_with'])}</code>" if res.get("evaluated_with") else "")
            + f"</td><td><code>{html.escape(str(r.folder))}</code></td></tr>"
        )
    return (
        "<table><thead><tr><th>run</th><th>recipe</th><th>method</th><th>data</th><th>seed</th><th>epochs</th>"
        "<th>train s</th><th>environment</th><th>command</th><th>folder</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _recipe_table(runs: list[RunRecord]) -> str:
    differ, same = recipe_differences([r.recipe for r in runs])
    flat = [flatten_keys(r.recipe) for r in runs]

    def row(key: str, css: str) -> str:
        cells = "".join(
            f"<td>{html.escape(json.dumps(f[key], default=str))}</td>" if key in f else '<td class="absent">absent</td>'
            for f in flat
        )
        return f'<tr class="{css}"><th>{html.escape(key)}</th>{cells}</tr>'

    head = "<tr><th>setting</th>" + "".join(f"<th>{_run_tag(r)}</th>" for r in runs) + "</tr>"
    differing = "".join(row(k, "differs") for k in differ) or (
        f'<tr><td colspan="{len(runs) + 1}">The recipes are identical.</td></tr>'
    )
    return (
        f"<table class='recipes'><thead>{head}</thead><tbody>{differing}</tbody></table>"
        f"<details><summary>{len(same)} settings equal in every run</summary>"
        f"<table class='recipes'><thead>{head}</thead><tbody>{''.join(row(k, 'same') for k in same)}</tbody></table>"
        "</details>"
    )


def _embeddings(runs: list[RunRecord]) -> str:
    cells = []
    for r in runs:
        image = r.folder / "embedding.png"
        if image.is_file():
            data = base64.b64encode(image.read_bytes()).decode("ascii")
            cells.append(
                f'<figure class="embedding"><img alt="embedding map of {html.escape(r.label)}" '
                f'src="data:image/png;base64,{data}"><figcaption>{_run_tag(r)}</figcaption></figure>'
            )
    return "".join(cells) or "<p>No run has an embedding map.</p>"


STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1400px;padding:0 16px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;
vertical-align:top}td code{font-size:12px}.metrics td:nth-child(n+3){text-align:right}
tr.differs{background:#fff4d6}td.best{font-weight:700}.tag{border-left:6px solid;padding-left:6px}
.charts{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0}.chart text{font-size:11px;fill:#333}
.chart .title{font-size:13px;text-anchor:middle;font-weight:600}.chart .label{text-anchor:middle}
.chart .tick{text-anchor:middle}.grid{stroke:#eee}.axis{stroke:#666}
.curve{fill:none;stroke-width:2}.baseline{stroke-dasharray:6 4;stroke-width:1.5}
.legend{font-size:12px}.key{margin-right:14px;white-space:nowrap}
.swatch{display:inline-block;width:14px;height:3px;vertical-align:middle;margin-right:4px}
.swatch.dashed{height:0;border-top:2px dashed;background:none!important}
.embedding img{max-width:420px;border:1px solid #ddd}.embeddings{display:flex;flex-wrap:wrap;gap:12px}
.note{color:#666;font-size:12px}.absent{color:#999;font-style:italic}
"""

# Records in the page itself that the browser drew the charts (the smoke test reads it back).
CHECK_SCRIPT = """
window.addEventListener("error", e => {
  document.body.dataset.errors = (document.body.dataset.errors || "") + e.message + ";";
});
window.addEventListener("load", () => {
  const drawn = [...document.querySelectorAll("polyline.curve")].filter(p => p.getBBox().width > 0);
  document.body.dataset.drawnCurves = String(drawn.length);
});
"""


def compare_runs(run_dirs: list[str | Path], out: str | Path, command: str = "") -> Path:
    """Write the comparison page of ``run_dirs`` (runs named R1, R2, ... in that order) to ``out``."""
    if not run_dirs:
        raise ValueError("compare needs at least one run folder")
    runs = [load_run(d, f"R{i + 1}", PALETTE[i % len(PALETTE)]) for i, d in enumerate(run_dirs)]
    for r in runs:
        r.label = f"{r.label}: {r.results.get('recipe')} seed {r.results.get('seed')}"
        if r.results.get("finished") is False:
            r.label += " (unfinished)"
        if r.results.get("smoke"):
            r.label += " (smoke)"
    path = Path(out)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"--out must be an .html file, got {path}")
    body = [
        "<h1>contrastkit: runs compared</h1>",
        f'<p class="note">Written {datetime.now().isoformat(timespec="seconds")}'
        + (f" by <code>{html.escape(command)}</code>" if command else "")
        + ".</p>",
        "<h2>Runs</h2>",
        _runs_table(runs),
        "<h2>Recipe settings that differ</h2>",
        _recipe_table(runs),
        "<h2>Metrics</h2>",
        _metric_tables(runs),
        "<h2>Curves</h2>",
        '<div class="charts">' + "".join(_curves(runs)) + "</div>",
        "<h2>Embedding maps (t-SNE of test embeddings)</h2>",
        '<div class="embeddings">' + _embeddings(runs) + "</div>",
    ]
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>contrastkit: runs compared</title>'
        f"<style>{STYLE}</style><script>{CHECK_SCRIPT}</script></head><body>{''.join(body)}</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, page)
    return path
