"""contrastkit as a user installs it: the wheel, built from this tree, installed into a fresh venv
and run from outside the source tree — recipes, a smoke train and ``dehaze --dark-channel``.

The fresh venv takes its dependencies (torch, Lightning, ...) from this interpreter's
site-packages through a path file, so nothing is downloaded; contrastkit itself comes only from
the wheel."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
QUIET_PIP = ["--disable-pip-version-check", "--no-input", "--no-cache-dir"]


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path, str]:
    """(the fresh venv's bin folder, a working folder outside the tree, pip install's stderr)."""
    tmp = tmp_path_factory.mktemp("packaging")
    dist = tmp / "dist"
    built = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            *QUIET_PIP,
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(ROOT),
        ],
        tmp,
    )
    (wheel,) = dist.glob("contrastkit-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp)
    purelib = Path(
        sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)})
    )  # the fresh venv's site-packages
    (purelib / "_contrastkit_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", *QUIET_PIP, "--root-user-action=ignore"]
    install = _run([*pip, "--no-deps", str(wheel)], tmp)
    work = tmp / "work"
    work.mkdir()
    return venv / "bin", work, built.stderr + install.stderr


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"  # dependencies' own, not ours
    return env


def test_the_wheel_installs_without_warnings(installed):
    _, _, stderr = installed
    assert "warning" not in stderr.lower() and "deprecat" not in stderr.lower(), stderr


def test_the_installed_package_is_the_wheel_and_lists_its_recipes(installed):
    bin_dir, work, _ = installed
    where = _run([str(bin_dir / "python"), "-c", "import contrastkit; print(contrastkit.__file__)"], work, _env())
    assert str(bin_dir.parent) in where.stdout and str(ROOT / "src") not in where.stdout
    recipes = _run([str(bin_dir / "contrastkit"), "recipes"], work, _env()).stdout
    for name in ("moco-digits", "aecr-synthetic", "mvgrl-cora", "ccl-cifar"):
        assert name in recipes
    zoo = _run([str(bin_dir / "contrastkit"), "zoo", "list"], work, {**_env(), "CONTRASTKIT_HOME": str(work / "h")})
    assert "moco-v2-cifar10-s0" in zoo.stdout  # the zoo's metafile travels inside the wheel


def test_the_installed_program_trains_and_dehazes(installed):
    from PIL import Image

    bin_dir, work, _ = installed
    _run([str(bin_dir / "contrastkit"), "train", "moco-digits", "--smoke", "--no-progress"], work, _env())
    (run,) = (work / "runs" / "moco-digits").iterdir()
    assert (run / "report.md").is_file() and (run / "results.json").is_file()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(80, 200, (48, 64, 3), dtype=np.uint8)).save(work / "hazy.png")
    _run(
        [str(bin_dir / "contrastkit"), "dehaze", "hazy.png", "--dark-channel", "--out", "clear", "--no-progress"],
        work,
        _env(),
    )
    assert Image.open(work / "clear" / "hazy.png").size == (64, 48)
