"""Whole-file writes that a crash or kill cannot tear: a temporary file in the same folder,
flushed to disk, then renamed over the target."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["temporary_sibling", "write_atomic"]


def temporary_sibling(path: str | os.PathLike[str]) -> Path:
    """A hidden name beside ``path`` for writing it before the rename, unique to this process (two
    processes filling the same cache must not rename each other's halves); the suffix is kept
    last, for writers that choose the format by it (``.mp4``, ``.npy``)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


def write_atomic(path: str | os.PathLike[str], text: str | bytes) -> None:
    """Replace ``path`` with ``text`` (or bytes): readers see the old file or the new one, never a part."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        with open(tmp, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
