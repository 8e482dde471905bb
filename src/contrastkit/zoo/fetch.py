"""Getting a zoo entry's weights: from the cache (sha256 checked), else from its URL (http(s) or
file://, sha256 checked), else by training its pinned recipe and checking that the result lands
in the entry's band. ``verify`` always retrains and compares."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from contrastkit.zoo.cache import (
    Cached,
    entry_dir,
    locked,
    read_cached,
    save_weights,
    sha256_of,
    weights_bytes,
    write_cached,
)
from contrastkit.zoo.metafiles import Entry, ZooError, find

__all__ = ["OutsideBand", "Say", "get", "verify", "weights_path"]

Say = Callable[[str], None]


class OutsideBand(Exception):
    """Trained weights whose metric missed the entry's band; they stay cached, marked unverified."""


def _quiet(_: str) -> None:
    pass


def weights_path(name: str) -> Path:
    """The cached weights of ``name`` after their sha256 is checked; ``ZooError`` when not cached."""
    entry = find(name)
    cached = read_cached(entry.name)
    if cached is None:
        raise ZooError(f"zoo entry {name!r} is not cached: contrastkit zoo get {name} --data-root DATA")
    _check_hash(entry, cached)
    return cached.weights


def get(name: str, *, data_root: str | Path | None = None, progress: bool = True, say: Say = _quiet) -> Cached:
    """The entry's weights, cached first if need be (see the module docstring).

    Raises:
        ZooError: unknown entry, a cached or downloaded file whose sha256 does not match.
        OutsideBand: weights trained here whose metric missed the band (kept, unverified).
    """
    entry = find(name)
    with locked(entry.name):
        cached = read_cached(entry.name)
        if cached is not None:
            _check_hash(entry, cached)
            return cached
        if entry.url:
            try:
                return _download(entry, progress)
            except (urllib.error.URLError, OSError, TimeoutError) as err:
                reason = getattr(err, "reason", err)
                say(f"zoo: {entry.url} is unreachable ({reason}); training {entry.recipe} seed {entry.seed} instead")
        return _train_and_store(entry, data_root, progress, say)


def verify(
    name: str, *, data_root: str | Path | None = None, progress: bool = True, say: Say = _quiet
) -> tuple[bool, float, Cached | None]:
    """Retrain ``name`` from its recipe and compare its metric to the band. Returns (inside the
    band, the metric, the cache record); an empty cache is filled with the retrained weights, a
    filled one is left as it is (``say`` tells whether the retrained weights are bit-identical)."""
    entry = find(name)
    with locked(entry.name):
        cached = read_cached(entry.name)
        if cached is None:
            try:
                stored = _train_and_store(entry, data_root, progress, say)
            except OutsideBand:
                kept = read_cached(entry.name)
                assert kept is not None and kept.value is not None
                return False, kept.value, kept
            assert stored.value is not None
            return True, stored.value, stored
        scratch = Path(tempfile.mkdtemp(prefix="verify-", dir=entry_dir(entry.name)))
        try:
            value, state, _ = _train(entry, data_root, progress, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        same = hashlib.sha256(weights_bytes(state)).hexdigest() == cached.sha256
        say(f"zoo: retrained weights are {'bit-identical to' if same else 'different from'} the cached ones")
        return entry.in_band(value), value, cached


def _check_hash(entry: Entry, cached: Cached) -> None:
    actual = sha256_of(cached.weights)
    expected = [h for h in (cached.sha256, entry.sha256 if cached.source == entry.url else None) if h]
    if any(actual != h for h in expected):
        raise ZooError(
            f"zoo entry {entry.name!r}: {cached.weights} fails its sha256 (damaged or replaced); "
            f"delete {entry_dir(entry.name)} and get it again"
        )


def _download(entry: Entry, progress: bool) -> Cached:
    assert entry.url and entry.sha256
    folder = entry_dir(entry.name)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".download.part"
    with urllib.request.urlopen(entry.url, timeout=60) as response, open(tmp, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        from tqdm import tqdm

        with tqdm(total=total, unit="B", unit_scale=True, desc=entry.name, disable=not progress) as bar:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                bar.update(len(block))
    actual = sha256_of(tmp)
    if actual != entry.sha256:
        tmp.unlink()
        raise ZooError(
            f"zoo entry {entry.name!r}: {entry.url} has sha256 {actual[:12]}…, the metafile says {entry.sha256[:12]}…"
        )
    tmp.replace(folder / "backbone.pt")
    record = Cached(entry.name, actual, entry.url, True, entry.metric, None, list(entry.band), params=entry.params)
    write_cached(record)
    return record


def _train(
    entry: Entry, data_root: str | Path | None, progress: bool, runs_dir: Path
) -> tuple[float, dict[str, Any], str]:
    """Train the entry's recipe; returns (its metric, the backbone's state dict, the run folder)."""
    from contrastkit.config import apply_overrides, load_recipe
    from contrastkit.nn.backbones import load_run_backbone
    from contrastkit.pipeline.run import train

    raw = apply_overrides(load_recipe(entry.recipe), entry.overrides())
    results = train(raw, data_root=data_root, runs_dir=runs_dir, command=entry.command, progress=progress)
    if entry.metric not in results["final"]:
        raise ZooError(f"zoo entry {entry.name!r}: the run reports no {entry.metric!r} ({', '.join(results['final'])})")
    backbone, _, _ = load_run_backbone(results["run_dir"])
    return float(results["final"][entry.metric]), backbone.state_dict(), str(results["run_dir"])


def _train_and_store(entry: Entry, data_root: str | Path | None, progress: bool, say: Say) -> Cached:
    say(f"zoo: training {entry.name} ({entry.command}, about {entry.train_minutes or '?'} min on 2 CPU cores)")
    value, state, run_dir = _train(entry, data_root, progress, entry_dir(entry.name) / "run")
    weights = save_weights(state, entry.name)
    params = sum(t.numel() for k, t in state.items() if "running_" not in k and "num_batches" not in k)
    record = Cached(
        entry.name,
        sha256_of(weights),
        "trained",
        entry.in_band(value),
        entry.metric,
        value,
        list(entry.band),
        run_dir,
        params,
    )
    write_cached(record)
    if not record.verified:
        raise OutsideBand(
            f"zoo entry {entry.name!r}: {entry.metric} {value:.2f} is outside its band "
            f"[{entry.band[0]:.2f}, {entry.band[1]:.2f}]; the weights are kept in {weights.parent}, marked unverified"
        )
    return record
