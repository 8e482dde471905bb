"""Where zoo weights live on disk: ``$CONTRASTKIT_HOME/zoo/<name>/`` (default
``$XDG_CACHE_HOME/contrastkit``, else ``~/.cache/contrastkit``), holding ``backbone.pt`` (a state
dict) and ``entry.json`` (its sha256, where it came from, the measured metric, verified or not).
Every file is written whole (temporary sibling, then rename) and one lock file per entry makes
two processes asking for the same entry fill it once."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from contrastkit._files import write_atomic

__all__ = [
    "HOME_ENV",
    "Cached",
    "entry_dir",
    "home",
    "locked",
    "read_cached",
    "save_weights",
    "sha256_of",
    "weights_bytes",
    "write_cached",
]

HOME_ENV = "CONTRASTKIT_HOME"


def home() -> Path:
    """``$CONTRASTKIT_HOME``, else ``$XDG_CACHE_HOME/contrastkit``, else ``~/.cache/contrastkit``."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "contrastkit"


def entry_dir(name: str) -> Path:
    return home() / "zoo" / name


@dataclass(frozen=True)
class Cached:
    """What ``entry.json`` records beside ``backbone.pt``."""

    name: str
    sha256: str
    source: str  # "trained" or the URL it came from
    verified: bool
    metric: str
    value: float | None  # the measured metric (None for downloaded weights)
    band: list[float]
    run_dir: str | None = None
    params: int | None = None

    @property
    def weights(self) -> Path:
        return entry_dir(self.name) / "backbone.pt"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_cached(name: str) -> Cached | None:
    """The cache record of ``name``, or None when nothing (or only half) is cached."""
    folder = entry_dir(name)
    record, weights = folder / "entry.json", folder / "backbone.pt"
    if not (record.is_file() and weights.is_file()):
        return None
    try:
        return Cached(**json.loads(record.read_text()))
    except (ValueError, TypeError):
        return None


def write_cached(record: Cached) -> None:
    write_atomic(entry_dir(record.name) / "entry.json", json.dumps(asdict(record), indent=2) + "\n")


def weights_bytes(state: dict[str, Any]) -> bytes:
    """A state dict as ``torch.save`` bytes that depend on the tensors only (saving to a path would
    put the file's name inside the archive, and with it into the sha256)."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def save_weights(state: dict[str, Any], name: str) -> Path:
    """Write a state dict as the entry's ``backbone.pt``, whole or not at all."""
    target = entry_dir(name) / "backbone.pt"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, weights_bytes(state))
    return target


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """Hold the entry's lock: a second process asking for it waits, then finds it cached."""
    lock = home() / "zoo" / f".{name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        try:
            import fcntl
        except ImportError:  # no POSIX locks (Windows): one process at a time is up to the user
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
