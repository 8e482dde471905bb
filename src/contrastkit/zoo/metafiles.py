"""Zoo metafiles: one YAML file per family of trained encoders, each entry pinned to a shipped
recipe and a seed, with the band its main metric must land in (taken from our own multi-seed
benchmark) and, optionally, a URL and sha256 of published weights.

The shipped metafiles live in ``contrastkit/recipes/zoo/``; ``$CONTRASTKIT_ZOO_FILES`` adds more
(paths separated by ``os.pathsep``), for a lab's own zoo or a test's tiny one.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["ZOO_FILES_ENV", "Entry", "Family", "ZooError", "entries", "find", "metafiles"]

ZOO_FILES_ENV = "CONTRASTKIT_ZOO_FILES"


class ZooError(Exception):
    """A zoo request that cannot be met (unknown entry, damaged cache, bad metafile); one line."""


class Entry(BaseModel):
    """One trained encoder: ``recipe`` trained with ``seed`` (and ``set`` overrides) must give a
    ``metric`` inside ``band`` (``[low, high]``, percent), as measured by ``band_from``.
    ``input_mean``/``input_std``: the per-channel normalisation of [0, 1] images it was trained
    with (what a user must apply before calling it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    recipe: str
    seed: int = 0
    set: dict[str, Any] = Field(default_factory=dict)
    metric: str
    band: tuple[float, float]
    band_from: str
    params: int | None = None
    train_minutes: float | None = None
    url: str | None = None
    sha256: str | None = None
    input_mean: tuple[float, ...] | None = None
    input_std: tuple[float, ...] | None = None
    family: str = ""

    @model_validator(mode="after")
    def _checked(self) -> Entry:
        if self.band[0] > self.band[1]:
            raise ValueError(f"band {list(self.band)} is empty (low > high)")
        if self.url and not self.sha256:
            raise ValueError("an entry with a url needs the sha256 of its file")
        return self

    def overrides(self) -> list[str]:
        """``--set`` strings that turn the shipped recipe into this entry's run."""
        return [f"trainer.seed={self.seed}", *(f"{k}={json.dumps(v)}" for k, v in self.set.items())]

    @property
    def command(self) -> str:
        """How to train this entry by hand (what ``zoo get`` runs when it has to train)."""
        sets = " ".join(f"--set {o}" for o in self.overrides())
        return f"contrastkit train {self.recipe} --data-root DATA {sets}"

    def in_band(self, value: float) -> bool:
        return self.band[0] <= value <= self.band[1]


class Family(BaseModel):
    model_config = ConfigDict(extra="forbid")

    family: str
    description: str
    benchmark: str
    input_mean: tuple[float, ...] | None = None
    input_std: tuple[float, ...] | None = None
    entries: list[Entry]


def metafiles() -> list[Path]:
    """The shipped metafiles, then those ``$CONTRASTKIT_ZOO_FILES`` names."""
    shipped = sorted(Path(str(resources.files("contrastkit") / "recipes" / "zoo")).glob("*.yaml"))
    extra = [Path(p).expanduser() for p in os.environ.get(ZOO_FILES_ENV, "").split(os.pathsep) if p]
    return shipped + extra


def _family(path: Path) -> Family:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ZooError(f"zoo metafile {path}: {str(err).splitlines()[0]}") from None
    try:
        family = Family.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ZooError(f"zoo metafile {path}: {where}: {first['msg']}") from None
    return family


def entries() -> dict[str, Entry]:
    """Every entry of every metafile, by name; a name used twice is refused."""
    out: dict[str, Entry] = {}
    for path in metafiles():
        family = _family(path)
        for entry in family.entries:
            if entry.name in out:
                raise ZooError(f"zoo entry {entry.name!r} is defined twice (again in {path})")
            inherited = {
                "input_mean": entry.input_mean or family.input_mean,
                "input_std": entry.input_std or family.input_std,
            }
            out[entry.name] = entry.model_copy(update={"family": family.family, **inherited})
    return out


def find(name: str) -> Entry:
    """The entry called ``name``; ``ZooError`` naming the known ones otherwise."""
    known = entries()
    if name not in known:
        raise ZooError(f"no zoo entry {name!r}; known: {', '.join(known) or 'none'} (contrastkit zoo list)")
    return known[name]
