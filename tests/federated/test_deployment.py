"""The same Flower apps deployed as real processes: one SuperLink and two SuperNodes on localhost."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def test_superlink_and_two_supernodes_run_moon(tmp_path):
    env = {**os.environ, "FLWR_HOME": str(tmp_path / "flwr"), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    (tmp_path / "flwr").mkdir()
    (tmp_path / "flwr" / "config.toml").write_text(
        '[superlink]\ndefault = "local"\n\n[superlink.local]\naddress = "127.0.0.1:8000"\ninsecure = true\n'
    )
    app = tmp_path / "app"
    app.mkdir()
    template = resources.files("contrastkit.federated") / "flower_app" / "pyproject.toml"
    results = tmp_path / "results.json"
    text = Path(str(template)).read_text().replace('results-file = ""', f'results-file = "{results}"')
    (app / "pyproject.toml").write_text(text.replace("rounds = 3", "rounds = 2"))
    processes = [
        _start(
            [
                str(BIN / "flower-superlink"),
                "--insecure",
                "--disable-runtime-dependency-installation",
                "--database",
                str(tmp_path / "link.db"),
            ],
            env,
            tmp_path / "superlink.log",
        )
    ]
    try:
        time.sleep(5)
        for pid in range(2):
            processes.append(
                _start(
                    [
                        str(BIN / "flower-supernode"),
                        "--insecure",
                        "--superlink",
                        "127.0.0.1:8000",
                        "--port",
                        str(9094 + pid),
                        "--node-config",
                        f"partition-id={pid} num-partitions=2",
                    ],
                    env,
                    tmp_path / f"supernode{pid}.log",
                )
            )
        time.sleep(5)
        done = subprocess.run(
            [str(BIN / "flwr"), "run", str(app), "local", "--stream"],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        deadline = time.time() + 300
        while time.time() < deadline and not (results.exists() and len(json.loads(results.read_text())) == 3):
            time.sleep(2)
        assert results.exists(), done.stdout[-3000:]
        history = json.loads(results.read_text())
        assert [r["round"] for r in history] == [0, 1, 2]
        assert all(len(r["ok"]) == 2 for r in history[1:])
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp_path / "flwr", ignore_errors=True)
