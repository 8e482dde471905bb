"""Whole-file writes: temporary names that concurrent processes cannot share."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from contrastkit._files import temporary_sibling, write_atomic


def test_the_temporary_name_is_hidden_per_process_and_keeps_the_suffix(tmp_path):
    target = tmp_path / "train" / "00000.mp4"
    tmp = temporary_sibling(target)
    assert tmp.parent == target.parent and tmp.name.startswith(".") and tmp.suffix == ".mp4"
    assert str(os.getpid()) in tmp.name and tmp != target


def _write(path: str, text: str, go) -> None:
    go.wait(60)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        write_atomic(path, text)


def test_two_processes_writing_one_file_never_fail_or_tear_it(tmp_path):
    """Two benchmark processes filling one dataset cache crashed: one renamed the other's temporary."""
    path = tmp_path / "labels.csv"
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    workers = [context.Process(target=_write, args=(str(path), text * 1000, go)) for text in ("a", "b")]
    for w in workers:
        w.start()
    go.set()  # both write at once for a second
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    assert path.read_text() in ("a" * 1000, "b" * 1000)
    assert not [p for p in tmp_path.iterdir() if p.name != "labels.csv"]  # no temporary left behind


def test_an_interrupted_write_leaves_the_old_file_whole_and_no_temporary(tmp_path, monkeypatch):
    """The write fails half-way (here: a character the encoding refuses, after a valid part):
    the target still holds the old text, of another length than the new one."""
    path = tmp_path / "results.json"
    path.write_text('{"old": 1}')
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, '{"new": "' + "x" * 10_000 + "\udc80" + '"}')
    assert path.read_text() == '{"old": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", killed)  # a kill between the write and the rename
    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, "new")
    assert path.read_text() == '{"old": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
