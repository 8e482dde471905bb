"""Folders of videos: layouts, splits, and a decoded-frame cache.

Layouts ``load_video_folder`` reads:

- UCF101 / HMDB51 split files: ``classInd.txt`` (``1 ApplyEyeMakeup``), ``trainlist0N.txt``
  and ``testlist0N.txt`` (``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi [label]``) in the
  folder (or its ``splits/`` / ``ucfTrainTestlist/`` sub-folder), the videos under
  ``<root>/<Class>/`` (or ``<root>/videos/<Class>/``);
- ``train/<class>/*`` and ``test/<class>/*``;
- ``<class>/*`` alone, split stratified (``test_fraction``, seeded).

``decode_videos`` turns the files into one ``uint8 [N, 3, F, S, S]`` array: ``F`` frames spread
evenly over each video (a video with fewer than ``F`` frames is looped from its start: the one
rule for short videos), resized on decode so the shorter side is ``S`` and centre-cropped. A
file FFmpeg cannot read is skipped with one warning naming it and counted. With a cache folder
the array is written once (``.npy``, keyed by the files, their sizes and times, ``F`` and ``S``)
and read back afterwards, so a dataset is decoded once, not every run or epoch. Decoding runs
on ``workers`` threads (FFmpeg releases the GIL while it decodes); the default is every core, up
to 8.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor
from tqdm.auto import tqdm

from contrastkit._files import temporary_sibling
from contrastkit.data.errors import DataError
from contrastkit.data.images import AugmentedData, data_root
from contrastkit.data.video_io import VideoError, probe, read_frames
from contrastkit.registry import register_dataset

__all__ = [
    "CLIPS_TASK",
    "ClipData",
    "DecodedVideos",
    "VideoFolderData",
    "VideoSet",
    "cache_root",
    "decode_videos",
    "default_decode_workers",
    "frame_label_tensor",
    "load_video_folder",
]

CLIPS_TASK = "clips"


class ClipData(AugmentedData):
    """Options of the ``clips`` task's datasets.

    Attributes:
        video_frames: frames decoded per video (a shorter video loops from its start).
        clip_length, clip_stride: the window the evaluation encodes (and VideoMoCo trains on).
        per_frame_views: one augmentation draw per frame instead of per clip.
        cache_dir: where decoded frames and generated videos are kept (default: the user's cache).
        video_backend: the decoder, ``pyav`` or ``torchcodec`` (faster; PyAV with a warning where
            torchcodec cannot load; see ``data.video_io.read_frames``).
    """

    video_frames: int = Field(32, gt=0)
    clip_length: int = Field(16, gt=0)
    clip_stride: int = Field(1, gt=0)
    per_frame_views: bool = False
    cache_dir: str | None = None
    video_backend: Literal["pyav", "torchcodec"] = "pyav"


class VideoFolderData(ClipData):
    """``path``: the folder of videos (relative paths resolve against the data root)."""

    path: str | None = None


VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")


@dataclass
class VideoSet:
    """Video files with class labels, split into train and test."""

    name: str
    train_files: list[Path]
    train_labels: list[int]
    test_files: list[Path]
    test_labels: list[int]
    classes: tuple[str, ...]
    source: str
    frame_labels: dict[str, list[int]] | None = None  # resolved file path -> a label per frame
    frame_classes: tuple[str, ...] = ()


@dataclass
class DecodedVideos:
    """``frames`` ``uint8 [N, 3, F, S, S]`` of the readable files, their labels, and the skipped files."""

    frames: Tensor
    labels: Tensor
    files: list[Path]
    skipped: list[str] = field(default_factory=list)


def _videos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())


def _class_folders(root: Path) -> tuple[list[Path], list[int], tuple[str, ...]]:
    classes = tuple(sorted(d.name for d in root.iterdir() if d.is_dir() and _videos(d)))
    if not classes:
        raise DataError(f"no videos in class sub-folders of {root}")
    files, labels = [], []
    for label, name in enumerate(classes):
        for path in _videos(root / name):
            files.append(path)
            labels.append(label)
    return files, labels, classes


def _split_files(root: Path, split: int) -> tuple[Path, Path, Path] | None:
    for folder in (root, root / "splits", root / "ucfTrainTestlist"):
        names = (folder / "classInd.txt", folder / f"trainlist0{split}.txt", folder / f"testlist0{split}.txt")
        if all(p.is_file() for p in names):
            return names
    return None


def _read_split_list(path: Path, video_root: Path, classes: dict[str, int]) -> tuple[list[Path], list[int]]:
    files, labels = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        relative = line.split()[0]
        class_name = relative.split("/")[0]
        if class_name not in classes:
            raise DataError(f"{path}:{number}: class {class_name!r} is not in classInd.txt")
        file = video_root / relative
        if not file.is_file():
            raise DataError(f"{path}:{number} names {relative}, which is not under {video_root}")
        files.append(file)
        labels.append(classes[class_name])
    if not files:
        raise DataError(f"{path} lists no videos")
    return files, labels


def load_video_folder(
    root: str | os.PathLike[str], *, split: int = 1, test_fraction: float = 0.2, seed: int = 0
) -> VideoSet:
    """The videos under ``root`` in one of the layouts of the module docstring.

    Raises:
        DataError: a missing or empty folder, or a split file naming a missing video.
    """
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise DataError(f"video folder {folder} does not exist")
    lists = _split_files(folder, split)
    if lists is not None:
        class_ind, train_list, test_list = lists
        entries = [line.split() for line in class_ind.read_text().splitlines() if line.strip()]
        classes = {name: int(index) - 1 for index, name in entries}
        video_root = folder / "videos" if (folder / "videos").is_dir() else folder
        train_files, train_labels = _read_split_list(train_list, video_root, classes)
        test_files, test_labels = _read_split_list(test_list, video_root, classes)
        names = tuple(sorted(classes, key=classes.__getitem__))
        source = f"{folder} (split files {train_list.name} / {test_list.name})"
        return VideoSet(folder.name, train_files, train_labels, test_files, test_labels, names, source)
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        train_files, train_labels, names = _class_folders(folder / "train")
        test_files, test_raw, test_names = _class_folders(folder / "test")
        index = {n: i for i, n in enumerate(names)}
        missing = [n for n in test_names if n not in index]
        if missing:
            raise DataError(f"{folder / 'test'} has classes not in train: {', '.join(missing)}")
        test_labels = [index[test_names[label]] for label in test_raw]
        source = f"{folder} (train/test)"
        return VideoSet(folder.name, train_files, train_labels, test_files, test_labels, names, source)
    files, labels, names = _class_folders(folder)
    g = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for label in range(len(names)):
        rows = [i for i, y in enumerate(labels) if y == label]
        order = [rows[int(j)] for j in torch.randperm(len(rows), generator=g)]
        cut = max(1, round(len(rows) * test_fraction)) if len(rows) > 1 else 0
        test_idx += order[:cut]
        train_idx += order[cut:]
    return VideoSet(
        folder.name,
        [files[i] for i in sorted(train_idx)],
        [labels[i] for i in sorted(train_idx)],
        [files[i] for i in sorted(test_idx)],
        [labels[i] for i in sorted(test_idx)],
        names,
        f"{folder} (class folders, stratified {1 - test_fraction:.0%} train, seed {seed})",
    )


def _frame_indices(count: int, frames: int) -> list[int]:
    if count >= frames:
        return torch.linspace(0, count - 1, frames).round().long().tolist()
    return [i % count for i in range(frames)]  # short video: looped from its start


def frame_label_tensor(files: list[Path], labels: dict[str, list[int]], frames: int) -> Tensor:
    """``[N, frames]`` per-frame labels of ``files``, sampled at the frames ``decode_videos`` keeps."""
    rows = []
    for f in files:
        per_frame = labels.get(str(Path(f).resolve()))
        if per_frame is None:
            raise DataError(f"no per-frame labels for {f}")
        rows.append(torch.tensor(per_frame, dtype=torch.long)[_frame_indices(len(per_frame), frames)])
    return torch.stack(rows)


def _decode_one(path: Path, frames: int, size: int, backend: str = "pyav") -> np.ndarray:
    count = probe(path).num_frames
    if count == 0:
        raise VideoError(f"{path} has no frames")
    clip = read_frames(path, _frame_indices(count, frames), size=size, backend=backend)  # [F, H, W, 3], shorter = size
    h, w = clip.shape[1:3]
    top, left = (h - size) // 2, (w - size) // 2
    return clip[:, top : top + size, left : left + size].permute(3, 0, 1, 2).numpy()


def _decode_or_error(path: Path, frames: int, size: int, backend: str) -> np.ndarray | VideoError:
    try:
        return _decode_one(path, frames, size, backend)
    except VideoError as err:
        return err


def default_decode_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _cache_key(files: list[Path], frames: int, size: int, backend: str = "pyav") -> str:
    # PyAV's key is the one written before there were backends; resized frames differ by backend
    digest = hashlib.sha256(json.dumps([frames, size] if backend == "pyav" else [frames, size, backend]).encode())
    for f in files:
        stat = f.stat()
        digest.update(f"{f.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def decode_videos(
    files: list[Path],
    labels: list[int],
    *,
    frames: int,
    size: int,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    desc: str = "decoding videos",
    workers: int | None = None,
    backend: str = "pyav",
) -> DecodedVideos:
    """Decode ``files`` to ``uint8 [N, 3, frames, size, size]`` (see the module docstring).

    ``workers`` threads decode in parallel (None: every core, up to 8; 1: this thread only);
    the order of the output follows ``files`` whatever the number of workers. ``backend`` is
    ``read_frames``' (``pyav`` or ``torchcodec``).
    """
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"frames-{_cache_key(files, frames, size, backend)}"
        if (cache / "frames.npy").is_file() and (cache / "index.json").is_file():
            index = json.loads((cache / "index.json").read_text())
            return DecodedVideos(
                torch.from_numpy(np.load(cache / "frames.npy")),
                torch.tensor(index["labels"], dtype=torch.long),
                [Path(p) for p in index["files"]],
                index["skipped"],
            )
    workers = default_decode_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    arrays, kept, kept_labels, skipped = [], [], [], []
    with ThreadPoolExecutor(workers) as pool:
        decoded = pool.map(lambda path: _decode_or_error(path, frames, size, backend), files)
        bar = tqdm(decoded, total=len(files), desc=desc, disable=not progress, unit="video", leave=False)
        for path, label, result in zip(files, labels, bar):
            if isinstance(result, VideoError):
                warnings.warn(f"skipping unreadable video: {result}", stacklevel=2)
                skipped.append(str(path))
                continue
            arrays.append(result)
            kept.append(path)
            kept_labels.append(label)
    if not arrays:
        raise DataError(f"none of the {len(files)} videos could be decoded (first: {files[0] if files else '-'})")
    stacked = np.stack(arrays)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = temporary_sibling(cache / "frames.npy")
        np.save(tmp, stacked)
        os.replace(tmp, cache / "frames.npy")
        index = {"files": [str(p) for p in kept], "labels": kept_labels, "skipped": skipped}
        (cache / "index.json").write_text(json.dumps(index))
    return DecodedVideos(torch.from_numpy(stacked), torch.tensor(kept_labels, dtype=torch.long), kept, skipped)


def cache_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where generated and decoded data go: ``explicit`` (``data.cache_dir``), else
    ``$CONTRASTKIT_CACHE``, else ``~/.cache/contrastkit``."""
    value = explicit or os.environ.get("CONTRASTKIT_CACHE") or Path.home() / ".cache" / "contrastkit"
    return Path(value).expanduser()


def _folder_of(settings: Any, root: str | os.PathLike[str] | None, default: str) -> Path:
    """``data.path`` (relative paths under the data root), else ``<data root>/<default>``."""
    base = data_root(root or settings.root)
    if settings.path:
        folder = Path(settings.path).expanduser()
        return folder if folder.is_absolute() or base is None else base / folder
    if base is None:
        raise DataError(f"data.dataset needs data.path or a data root holding {default}/ (--data-root)")
    return base / default


@register_dataset(
    "video_folder",
    task=CLIPS_TASK,
    settings=VideoFolderData,
    summary="class folders of videos (or train/test, split files)",
)
def _video_folder_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> VideoSet:
    if not settings.path:
        raise DataError("data.dataset=video_folder needs data.path (a folder of class sub-folders of videos)")
    return load_video_folder(_folder_of(settings, root, ""), seed=seed)


@register_dataset(
    "ucf101",
    task=CLIPS_TASK,
    settings=VideoFolderData,
    summary="UCF101 with its split files (data.path or <data root>/UCF101)",
)
def _ucf101_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> VideoSet:
    return load_video_folder(_folder_of(settings, root, "UCF101"), seed=seed)


@register_dataset(
    "hmdb51",
    task=CLIPS_TASK,
    settings=VideoFolderData,
    summary="HMDB51 with its split files (data.path or <data root>/HMDB51)",
)
def _hmdb51_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> VideoSet:
    return load_video_folder(_folder_of(settings, root, "HMDB51"), seed=seed)
