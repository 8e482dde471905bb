"""A quiet console (issue 21 item 2): no Lightning tips, device lines or known deprecation notices."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def test_train_smoke_prints_only_its_summary(tmp_path):
    done = subprocess.run(
        [str(BIN / "contrastkit"), "train", "simclr-digits", "--smoke", "--no-progress", "--runs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = (done.stdout + done.stderr).splitlines()
    assert len(lines) < 40, lines
    text = "\n".join(lines)
    for noise in ("Tip:", "GPU available", "TPU available", "LeafSpec", "Sparse invariant checks"):
        assert noise not in text, noise
    assert "kNN top-1" in text and "report:" in text
