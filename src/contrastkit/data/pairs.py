"""Paired features of two modalities (video–text) for cross-modal methods: one row per pair,
optionally a cluster / category id per pair.

- ``clustered_pairs``: the seeded protocol of ``docs/methods/crossclr.md`` (no download): 60 semantic
  clusters, 6 "hub" clusters of 40 near-duplicate pairs and 54 of 4-6; video inputs
  ``tanh(W_v [c_k; 0.6 u_i]) + 0.05 e``, text inputs ``tanh(W_t [c_k; a_k u_i]) + 0.05 e`` with
  ``a_k = 0.1`` for hubs (near-duplicate captions) and 0.6 otherwise; the test split is a second
  independent draw of instances of the same clusters.
- ``feature_pairs``: a user's files: ``<data.path>/{train,test}/video.{npy,pt,npz}`` and
  ``text.{npy,pt,npz}`` (``[N, D]`` or ``[N, T, D]``), optional ``clusters.{npy,pt,npz}`` ``[N]``;
  without a ``test/`` folder 20% of ``train/`` is held out (seeded). Row counts must agree and
  every row must be finite; otherwise one line names the file and the rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from contrastkit.data.errors import DataError
from contrastkit.registry import DataSettings, register_dataset

__all__ = ["PAIRS_TASK", "PairSet", "clustered_pairs", "load_feature_pairs", "read_array"]

PAIRS_TASK = "pairs"
SUFFIXES = (".npy", ".pt", ".npz")


@dataclass
class PairSet:
    """Aligned features of two modalities, split into train and test."""

    name: str
    train_video: Tensor
    train_text: Tensor
    test_video: Tensor
    test_text: Tensor
    train_clusters: Tensor | None
    test_clusters: Tensor | None
    source: str
    hub_clusters: tuple[int, ...] = ()
    test_captions: list[str] | None = None  # the sentences behind test_text, where there are any
    test_thumbnails: Tensor | None = None  # uint8 [N, 3, H, W], a frame of each test video


def _cluster_sizes(g: torch.Generator, hubs: int, hub_size: int, small: int) -> list[int]:
    return [hub_size] * hubs + [4 + int(torch.randint(3, (1,), generator=g)) for _ in range(small)]


def clustered_pairs(
    seed: int = 0,
    *,
    hubs: int = 6,
    hub_size: int = 40,
    small: int = 54,
    latent: int = 16,
    input_dim: int = 64,
) -> PairSet:
    """The clustered pairs of our CrossCLR protocol (train and test: two draws of instances of the same clusters)."""
    g = torch.Generator().manual_seed(seed)
    sizes = _cluster_sizes(g, hubs, hub_size, small)
    codes = torch.randn(len(sizes), latent, generator=g)
    w_v = torch.randn(input_dim, 2 * latent, generator=g) / (2 * latent) ** 0.5
    w_t = torch.randn(input_dim, 2 * latent, generator=g) / (2 * latent) ** 0.5
    scale = torch.tensor([0.1 if k < hubs else 0.6 for k in range(len(sizes))])

    def draw() -> tuple[Tensor, Tensor, Tensor]:
        clusters = torch.cat([torch.full((n,), k) for k, n in enumerate(sizes)])
        u = torch.randn(len(clusters), latent, generator=g)
        c = codes[clusters]
        video = torch.tanh(torch.cat([c, 0.6 * u], 1) @ w_v.t()) + 0.05 * torch.randn(len(u), input_dim, generator=g)
        text = torch.tanh(torch.cat([c, scale[clusters, None] * u], 1) @ w_t.t())
        text = text + 0.05 * torch.randn(len(u), input_dim, generator=g)
        return video, text, clusters

    train_v, train_t, train_c = draw()
    test_v, test_t, test_c = draw()
    return PairSet(
        "clustered_pairs",
        train_v,
        train_t,
        test_v,
        test_t,
        train_c,
        test_c,
        f"clustered pairs (docs/methods/crossclr.md: {len(sizes)} clusters, {hubs} hubs of {hub_size} near-duplicates, "
        f"{len(train_c)} train / {len(test_c)} test pairs, seed {seed})",
        tuple(range(hubs)),
    )


def read_array(path: Path) -> Tensor:
    """A ``.npy`` / ``.npz`` (its only array, or ``arr_0``) / ``.pt`` tensor file as a float tensor."""
    try:
        if path.suffix == ".npy":
            array = torch.from_numpy(np.load(path, allow_pickle=False))
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                names = list(z.keys())
                array = torch.from_numpy(z["arr_0"] if "arr_0" in names else z[names[0]])
        elif path.suffix == ".pt":
            array = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(array, Tensor):
                raise DataError(f"{path} holds a {type(array).__name__}, not a tensor")
        else:
            raise DataError(f"{path}: unsupported suffix (use {', '.join(SUFFIXES)})")
    except (OSError, ValueError, RuntimeError) as err:
        raise DataError(f"cannot read {path}: {err}") from None
    return array


def _find(folder: Path, stem: str, required: bool = True) -> Path | None:
    for suffix in SUFFIXES:
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    if required:
        raise DataError(f"no {stem}.npy / {stem}.pt / {stem}.npz in {folder}")
    return None


def _finite_rows(array: Tensor, path: Path) -> Tensor:
    array = array.float()
    bad = (~torch.isfinite(array.reshape(len(array), -1))).any(1).nonzero().flatten().tolist()
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
        raise DataError(f"{path} has non-finite values in {len(bad)} row(s): {shown}")
    return array


def _split(folder: Path) -> tuple[Tensor, Tensor, Tensor | None]:
    video_path, text_path = _find(folder, "video"), _find(folder, "text")
    assert video_path is not None and text_path is not None
    video, text = _finite_rows(read_array(video_path), video_path), _finite_rows(read_array(text_path), text_path)
    if len(video) != len(text):
        raise DataError(f"{video_path} has {len(video)} rows but {text_path} has {len(text)}: one row per pair")
    cluster_path = _find(folder, "clusters", required=False)
    clusters = None
    if cluster_path is not None:
        clusters = read_array(cluster_path).long().flatten()
        if len(clusters) != len(video):
            raise DataError(f"{cluster_path} has {len(clusters)} rows but {video_path} has {len(video)}")
    return video, text, clusters


def load_feature_pairs(folder: str | os.PathLike[str], seed: int = 0, test_fraction: float = 0.2) -> PairSet:
    """A user's paired features (layout in the module docstring)."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"no feature folder at {root}")
    train_dir = root / "train" if (root / "train").is_dir() else root
    tv, tt, tc = _split(train_dir)
    if (root / "test").is_dir():
        ev, et, ec = _split(root / "test")
        source = f"feature pairs from {root} ({len(tv)} train / {len(ev)} test)"
    else:
        order = torch.randperm(len(tv), generator=torch.Generator().manual_seed(seed))
        cut = len(tv) - max(1, round(test_fraction * len(tv)))
        train, test = order[:cut], order[cut:]
        ev, et, ec = tv[test], tt[test], tc[test] if tc is not None else None
        tv, tt, tc = tv[train], tt[train], tc[train] if tc is not None else None
        source = f"feature pairs from {train_dir} ({len(tv)} train / {len(ev)} held out, seed {seed})"
    if tv.shape[1:] != ev.shape[1:] or tt.shape[1:] != et.shape[1:]:
        raise DataError(f"train and test features of {root} differ in shape")
    return PairSet(root.name, tv, tt, ev, et, tc, ec, source)


@register_dataset(
    "clustered_pairs",
    task=PAIRS_TASK,
    summary="seeded video-text pairs with hub clusters (docs/methods/crossclr.md)",
    reads_root=False,
)
def _clustered_pairs_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> PairSet:
    return clustered_pairs(seed)


class FeaturePairData(DataSettings):
    """``path``: the folder holding ``{train,test}/{video,text}.npy``."""

    path: str | None = None


@register_dataset(
    "feature_pairs",
    task=PAIRS_TASK,
    settings=FeaturePairData,
    summary="your paired features: <data.path>/{train,test}/{video,text}",
)
def _feature_pairs_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> PairSet:
    if not settings.path:
        raise DataError("feature_pairs needs data.path: a folder with train/video.npy and train/text.npy")
    return load_feature_pairs(settings.path, seed)
