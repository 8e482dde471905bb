"""A tiny zoo: one family whose entries train ``moco-digits`` for a few steps (seconds each)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

TINY = {
    "data.train_subset": 256,
    "data.test_subset": 100,
    "data.batch_size": 64,
    "optim.epochs": 1,
    "trainer.limit_train_batches": 3,
    "method.queue_size": 256,
    "eval.linear_probe": False,
    "eval.monitor_bank": None,
}


def write_family(path: Path, **entries: dict) -> Path:
    rows = [
        {
            "name": name,
            "recipe": "moco-digits",
            "seed": 0,
            "set": TINY,
            "metric": "knn_top1",
            "band": [0.0, 100.0],
            "band_from": "a test entry",
            **extra,
        }
        for name, extra in entries.items()
    ]
    family = {"family": "tiny", "description": "test entries", "benchmark": "none", "entries": rows}
    path.write_text(yaml.safe_dump(family, sort_keys=False))
    return path


@pytest.fixture
def tiny_zoo(tmp_path, monkeypatch):
    """A zoo home and a metafile with ``tiny`` (band 0-100) and ``tiny-strict`` (a band no run reaches)."""
    home = tmp_path / "home"
    monkeypatch.setenv("CONTRASTKIT_HOME", str(home))
    metafile = write_family(tmp_path / "tiny.yaml", tiny={}, **{"tiny-strict": {"band": [99.9, 100.0]}})
    monkeypatch.setenv("CONTRASTKIT_ZOO_FILES", str(metafile))
    return home


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory):
    """A zoo home in which ``tiny`` was trained once; tests copy it instead of training again."""
    import os

    home = tmp_path_factory.mktemp("trained-zoo")
    metafile = write_family(home.parent / "trained-tiny.yaml", tiny={})
    old = {k: os.environ.get(k) for k in ("CONTRASTKIT_HOME", "CONTRASTKIT_ZOO_FILES")}
    os.environ.update(CONTRASTKIT_HOME=str(home), CONTRASTKIT_ZOO_FILES=str(metafile))
    try:
        from contrastkit import zoo

        zoo.get("tiny", progress=False)
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return home


def copy_home(trained: Path, home: Path) -> None:
    shutil.copytree(trained / "zoo" / "tiny", home / "zoo" / "tiny")
