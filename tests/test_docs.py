"""The documentation: the site builds with --strict (no broken link or reference, no docstring
warning), every method has its page, the code cites only pages of this repository, and the
results page lists every file of ``benchmarks/results``."""

from __future__ import annotations

import functools
import http.server
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.browser import CHROMIUM, NO_CHROMIUM, render

ROOT = Path(__file__).resolve().parents[1]
METHOD_PAGES = "simclr moco hcl mochi densecl mvgrl moon videomoco vclr longshort crossclr ccl aecr".split()
# a spec of ours that is not in the repository: "moco.md §3", "card pitfall 4", "shared/methods/"
SPEC = re.compile(
    r"(?<!docs/methods/)\b(?:"
    + "|".join(METHOD_PAGES)
    + r")\.md\b|\bcards?\b|card's|pitfall \d|oracle \d|shared/methods"
)

sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site as ``make docs`` builds it (``--strict``)."""
    out = tmp_path_factory.mktemp("docs") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_the_site_builds_strict(site):
    for page in ["index.html", "api/functional/index.html", "results/index.html"]:
        assert (site / page).is_file(), page
    for name in METHOD_PAGES:
        html = (site / "methods" / name / "index.html").read_text()
        assert "<math" in html, f"{name}: no equation"  # the objective, as MathML
        assert "Where we differ" in html and "Reproduced" in html, name
    # the generated parts: the CLI's own help, and a results entry inside a method page
    assert "usage: contrastkit train" in (site / "api/cli/index.html").read_text()
    assert "python benchmarks/image_cifar10.py" in (site / "methods/moco/index.html").read_text()


def test_the_code_cites_no_spec_outside_the_repository():
    hits = []
    for path in sorted(p for p in (ROOT / "src").rglob("*") if p.suffix in (".py", ".yaml", ".toml", ".md")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if SPEC.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not hits, "\n".join(hits)
    texts = [p.read_text() for p in (ROOT / "src").rglob("*") if p.suffix in (".py", ".yaml")]
    for cited in {m for text in texts for m in re.findall(r"docs/[\w/]+\.md", text)}:
        assert (ROOT / cited).is_file(), cited


def test_the_spec_pattern_catches_what_it_must():
    for line in ("see ``moco.md`` §3", "(card pitfall 4)", "the card's arms", "shared/methods/hcl.md"):
        assert SPEC.search(line), line
    assert not SPEC.search("see ``docs/methods/moco.md``, ShuffleBN")


def test_the_results_page_lists_every_result_and_is_up_to_date():
    import results_page

    page = (ROOT / "docs" / "results.md").read_text()
    for path in sorted((ROOT / "benchmarks" / "results").iterdir()):
        assert path.name in page or f"{path.stem}.md" in page or f"{path.stem}.json" in page, path.name

    def without_commits(text: str) -> str:  # a shallow clone cannot name them
        return re.sub(r"last written at commit [^.]+\.", "last written at commit X.", text)

    assert without_commits(results_page.page()) == without_commits(page), (
        "docs/results.md is out of date: run python benchmarks/results_page.py"
    )


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_chromium_shows_the_pages_with_navigation_search_and_equations(site, tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        pages = {
            "home": "/",
            "method": "/methods/moco/",
            "api": "/api/functional/#contrastkit.functional.info_nce",
        }
        doms = {}
        for name, path in pages.items():
            dom, console = render(base + path, tmp_path / name)
            assert console == [], (name, console)
            assert 'class="md-nav' in dom and "md-search__input" in dom, name  # navigation, search box
            doms[name] = dom
        assert "<math" in doms["method"] and "Where we differ" in doms["method"]
        assert 'id="contrastkit.functional.info_nce"' in doms["api"]
    finally:
        server.shutdown()
