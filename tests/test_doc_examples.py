"""Every Python example of the README and ``docs/`` runs, as written, at a tiny size.

Our own runner rather than pytest-markdown-docs: each block runs in a fresh interpreter (several
pages register methods under one name, and the zoo reads ``$CONTRASTKIT_HOME``), in an empty
folder, after the page's hidden set-up when it has one: an HTML comment right before the block,
``<!-- example setup: ... -->``, which the site does not show (the reader's own loader, a file the
example reads). A block fenced as ``python`` runs; a sketch that cannot run must be fenced
otherwise (``text``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(?:<!-- example setup:\n(?P<setup>.*?)-->\n)?```python\n(?P<code>.*?)```", re.S)


def _examples() -> list[tuple[str, str, str]]:
    out = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for number, m in enumerate(BLOCK.finditer(page.read_text()), 1):
            out.append((f"{page.relative_to(ROOT)}#{number}", m.group("setup") or "", m.group("code")))
    return out


EXAMPLES = _examples()


def test_the_pages_have_examples_to_run():
    assert len(EXAMPLES) >= 7
    assert sum(1 for _, setup, _ in EXAMPLES if setup) >= 3  # the set-ups are found, not skipped


@pytest.mark.parametrize(("where", "setup", "code"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_the_example_runs(where, setup, code, tmp_path):
    env = {**os.environ, "CONTRASTKIT_HOME": str(tmp_path / "home"), "CONTRASTKIT_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", setup + "\n" + code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{where}:\n{done.stderr[-3000:]}"
