"""A run folder's history, ``history.jsonl``: one JSON line per invocation that touched the folder,
appended and never rewritten — when, what (``train``, ``resume``, ``eval``, and for training
``trained`` or ``interrupted`` with the seconds spent and the epochs completed by then) and the
command. The report's Reproduce line, the total training time and whether the run finished are
read from it, so a resume or an ``eval`` adds to the record instead of replacing it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["HISTORY", "RunHistory", "append_history", "read_history"]

HISTORY = "history.jsonl"


def append_history(run_dir: str | Path, action: str, command: str, **fields: Any) -> None:
    """Append one line: ``{"time", "action", "command", **fields}``."""
    line = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "action": action, "command": command}
    with open(Path(run_dir) / HISTORY, "a", encoding="utf-8") as f:
        f.write(json.dumps(line | fields) + "\n")
        f.flush()


@dataclass
class RunHistory:
    """What the lines of a history say: the command that started the run, those that resumed it,
    the training seconds over all of them and the epochs completed (None when not recorded)."""

    command: str | None = None
    resumes: list[str] = field(default_factory=list)
    train_seconds: float = 0.0
    epochs_trained: int | None = None
    lines: int = 0


def read_history(run_dir: str | Path) -> RunHistory:
    """The history of ``run_dir`` (empty for folders written before it was kept). A line torn by a
    kill is skipped."""
    path = Path(run_dir) / HISTORY
    history = RunHistory()
    if not path.is_file():
        return history
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            continue
        history.lines += 1
        action = line.get("action")
        if action == "train" and history.command is None:
            history.command = line.get("command")
        elif action == "resume":
            history.resumes.append(str(line.get("command")))
        elif action in ("trained", "interrupted"):
            history.train_seconds += float(line.get("seconds", 0.0))
            history.epochs_trained = int(line.get("epochs", 0))
    return history
