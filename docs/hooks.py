"""MkDocs hooks for the contrastkit site (``mkdocs.yml``: ``hooks``).

- ``<!-- cli: COMMAND -->`` in a page becomes the ``--help`` of ``contrastkit COMMAND`` (``-`` for
  the top level), and ``<!-- recipes -->`` the table of shipped recipes, so the CLI reference is
  the parser itself. ``<!-- results: NAME -->`` is the entry of ``benchmarks/results/NAME`` as
  the results page shows it.
- ``$$ ... $$`` (on lines of their own) and ``\\( ... \\)`` are LaTeX, turned into MathML here:
  browsers draw it natively, so the site needs no script and no network to show equations.
- Every ``benchmarks/results/*.md`` (and the images it shows) is served under ``bench/``, so the
  results page and the guides link to the full tables; a link written for GitHub readers,
  ``../benchmarks/results/NAME`` (from ``docs/``), is pointed there.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
_CLI = re.compile(r"<!-- cli: ([\w-]+) -->")
_RESULT = re.compile(r"<!-- results: ([\w.-]+) -->")
_BLOCK = re.compile(r"^\$\$\n(.+?)\n\$\$$", re.S | re.M)
_INLINE = re.compile(r"\\\((.+?)\\\)")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _math(markdown: str) -> str:
    from latex2mathml.converter import convert

    def outside_code(text: str) -> str:
        text = _BLOCK.sub(lambda m: "\n" + convert(m.group(1), display="block") + "\n", text)
        # in a span: a line that starts with <math> would be taken for an HTML block
        return _INLINE.sub(lambda m: f'<span class="math">{convert(m.group(1))}</span>', text)

    out, last = [], 0
    for fence in _FENCE.finditer(markdown):
        out += [outside_code(markdown[last : fence.start()]), fence.group(0)]
        last = fence.end()
    return "".join([*out, outside_code(markdown[last:])])


def _help(command: str) -> str:
    from contrastkit.cli import _parser

    parser = _parser()
    if command != "-":
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[command]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        parser.print_help()
    return f"```text\n{out.getvalue().rstrip()}\n```"


def _recipes() -> str:
    from contrastkit.config import list_recipes, load_recipe

    rows = ["| recipe | method | dataset | what it is |", "|---|---|---|---|"]
    for name in list_recipes():
        raw = load_recipe(name)
        method, dataset = raw.get("method", {}).get("name", "–"), raw.get("data", {}).get("dataset", "–")
        rows.append(f"| `{name}` | {method} | {dataset} | {raw.get('description', '')} |")
    return "\n".join(rows)


def _result(stem: str, depth: int) -> str:
    """A benchmark result as the results page shows it (``benchmarks/results_page.py``), its links
    made relative to a page ``depth`` folders down."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from results_page import section

    return section(stem, level=3).replace("](bench/", "](" + "../" * depth + "bench/")


def on_files(files: Files, config: Any) -> Files:
    for path in sorted(RESULTS.iterdir()):
        if path.suffix in (".md", ".png"):
            uri = f"bench/{path.name}"
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    markdown = _math(_CLI.sub(lambda m: _help(m.group(1)), markdown))
    markdown = _RESULT.sub(lambda m: _result(m.group(1), page.file.src_uri.count("/")), markdown)
    if "<!-- recipes -->" in markdown:
        markdown = markdown.replace("<!-- recipes -->", _recipes())
    depth = page.file.src_uri.count("/")
    return markdown.replace("](" + "../" * (depth + 1) + "benchmarks/results/", "](" + "../" * depth + "bench/")
