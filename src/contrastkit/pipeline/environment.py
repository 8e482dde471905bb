"""What a run ran on, recorded in ``results.json`` so that runs can be compared: package versions,
the git commit of the source tree (when it is a checkout), the CPU or GPU and the thread count."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

import contrastkit

__all__ = ["environment", "environment_line"]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    source = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def environment() -> dict[str, Any]:
    """Versions, commit, hardware and threads of this process."""
    gpus = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    return {
        "contrastkit": contrastkit.__version__,
        "torch": torch.__version__,
        "lightning": _version("lightning"),
        "flwr": _version("flwr"),
        "python": platform.python_version(),
        "git_commit": _git_commit(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpus": gpus,
    }


def environment_line(env: dict[str, Any]) -> str:
    """One line for a report."""
    commit = env.get("git_commit")
    hardware = ", ".join(env["gpus"]) if env.get("gpus") else f"CPU ({env.get('cpu_count')} cores)"
    return (
        f"contrastkit {env.get('contrastkit')}"
        + (f" at {commit[:12]}{'+dirty' if commit.endswith('+dirty') else ''}" if commit else "")
        + f", torch {env.get('torch')}, Lightning {env.get('lightning')}, Python {env.get('python')}; "
        + f"{hardware}, {env.get('torch_threads')} threads"
    )
