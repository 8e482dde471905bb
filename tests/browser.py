"""Headless Chromium for the tests that look at a page (``contrastkit compare``, the docs site)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NO_CHROMIUM = "no chromium on PATH (make test installs Debian's chromium where it can)"


def render(url: str, tmp_path: Path, *, screenshot: Path | None = None) -> tuple[str, list[str]]:
    """The DOM after load as headless Chromium built it at ``url``, and the console lines it
    logged; with ``screenshot``, a 1280x900 PNG of the page there too."""
    assert CHROMIUM is not None
    shot = [f"--screenshot={screenshot}", "--window-size=1280,900", "--hide-scrollbars"] if screenshot else []
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            *shot,
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
