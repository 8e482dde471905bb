"""``contrastkit dehaze``: restore user photos of any size with a trained dehazing run (or the dark
channel prior), in bounded memory.

Images above ``max_pixels`` are cut into ``tile`` x ``tile`` tiles overlapping by ``overlap``
pixels; each tile's output is weighted by a ramp that falls to ~0 at its inner edges, and the
weighted sum is normalised, so tile seams blend.

Outputs look like their inputs in an image viewer: same size, file name, format and mode
(grayscale, 16-bit grayscale, alpha, palette, CMYK), with the EXIF block (orientation, camera,
date, GPS) and the ICC profile copied, pixels in the stored orientation. A folder is walked with
its sub-folders and mirrored under ``out_dir`` (under its own name when several inputs are
given); two inputs that would write one name get distinct names, said in one line. An input is
never overwritten; ``out_dir`` is made only when the first output is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor

__all__ = ["DehazeReport", "dehaze_files", "load_restorer", "restore_image", "tile_starts"]

Restorer = Callable[[Tensor], Tensor]


def load_restorer(run_dir: str | os.PathLike[str]) -> Any:
    """The trained network of a ``dehaze``-task run folder (``recipe.yaml`` + ``checkpoints/last.ckpt``),
    in eval mode; ``ValueError`` names missing / unexpected keys of a checkpoint that does not fit."""
    from contrastkit.config import RecipeError, upgrade_stored_recipe, validate
    from contrastkit.nn.inflate import load_strict
    from contrastkit.pipeline.run import load_checkpoint
    from contrastkit.registry import METHODS

    folder = Path(run_dir)
    ckpt = folder / "checkpoints" / "last.ckpt"
    if not (folder / "recipe.yaml").is_file() or not ckpt.is_file():
        raise RecipeError(f"{folder} is not a finished run folder (needs recipe.yaml and checkpoints/last.ckpt)")
    recipe = validate(upgrade_stored_recipe(yaml.safe_load((folder / "recipe.yaml").read_text())))
    if recipe.task != "dehaze":
        raise RecipeError(f"{folder} trained {recipe.method.name} on the {recipe.task} task, not a dehazing model")
    params = recipe.method.model_copy(update={"cr_weight": 0.0})  # inference needs no feature extractor
    method = METHODS.get(recipe.method.name).build(params, optimizer=None, seed=recipe.trainer.seed)
    load_strict(method, load_checkpoint(ckpt)["state_dict"], f"{ckpt} does not fit {params.description()}")
    return method.eval()


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``[0, length)`` with at least ``overlap`` shared pixels."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step)) + [length - tile]
    return sorted(set(starts))


def _ramp(size: int, overlap: int, at_start: bool, at_end: bool, device: torch.device) -> Tensor:
    w = torch.ones(size, device=device)
    if overlap > 0:
        ramp = torch.linspace(1 / (overlap + 1), 1, overlap + 1, device=device)[:-1]
        if not at_start:
            w[:overlap] = ramp
        if not at_end:
            w[-overlap:] = ramp.flip(0)
    return w


@torch.no_grad()
def restore_image(
    model: Any,
    image: Tensor,
    *,
    tile: int = 512,
    overlap: int = 32,
    max_pixels: int = 1024 * 1024,
    progress: Any = None,
) -> Tensor:
    """Restore one float image ``[3, H, W]`` in [0, 1] -> ``[3, H, W]`` in [0, 1].

    ``model`` has ``restore([B, 3, h, w]) -> [B, 3, h, w]`` (or is such a callable). Images of at
    most ``max_pixels`` are restored whole; larger ones tile by tile (see the module docstring).
    ``progress``: an optional tqdm bar advanced once per tile.
    """
    restore: Restorer = model.restore if hasattr(model, "restore") else model
    _, h, w = image.shape
    if h * w <= max_pixels:
        return restore(image[None])[0].clamp(0, 1)
    if overlap * 2 >= tile:
        raise ValueError(f"overlap {overlap} must be less than half the tile {tile}")
    out = torch.zeros_like(image)
    weight = torch.zeros(1, h, w, dtype=image.dtype, device=image.device)
    rows, cols = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    # a model that estimates something of the whole image (the prior's airlight) does it once
    whole_image = model.tile_restorer(image) if hasattr(model, "tile_restorer") else None
    for top in rows:
        for left in cols:
            th, tw = min(tile, h - top), min(tile, w - left)
            if whole_image is not None:
                piece = whole_image(top, left, th, tw).clamp(0, 1)
            else:
                piece = restore(image[None, :, top : top + th, left : left + tw])[0].clamp(0, 1)
            wy = _ramp(th, overlap, top == 0, top + th >= h, image.device)
            wx = _ramp(tw, overlap, left == 0, left + tw >= w, image.device)
            mask = wy[:, None] * wx[None, :]
            out[:, top : top + th, left : left + tw] += piece * mask
            weight[:, top : top + th, left : left + tw] += mask
            if progress is not None:
                progress.update(1)
    return out / weight.clamp_min(1e-8)


class DehazeReport:
    """What ``dehaze_files`` did: written outputs and skipped inputs with the reason."""

    def __init__(self) -> None:
        self.written: list[tuple[Path, Path]] = []
        self.skipped: list[tuple[Path, str]] = []


GRAY_16 = ("I;16", "I;16B", "I;16L", "I")
KEPT_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", *GRAY_16)


def plan_outputs(
    inputs: Sequence[str | os.PathLike[str]], out: Path, warn: Callable[[str], None]
) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """``(input file, output file)`` pairs and refused inputs with the reason. Folders are walked
    (hidden entries left out) and mirrored; a name already taken gets ``-2``, ``-3``, ... and a line."""
    jobs: list[tuple[Path, Path]] = []
    refused: list[tuple[Path, str]] = []
    taken: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(
                f
                for f in path.rglob("*")
                if f.is_file() and not any(p.startswith(".") for p in f.relative_to(path).parts)
            )
            if not files:
                refused.append((path, "an empty folder"))
            base = out if len(inputs) == 1 else out / path.resolve().name
            pairs = [(f, base / f.relative_to(path)) for f in files]
        elif path.exists():
            pairs = [(path, out / path.name)]
        else:
            refused.append((path, "no such file or folder"))
            pairs = []
        for source, target in pairs:
            wanted, n = target, 1
            while target in taken:
                n += 1
                target = wanted.with_name(f"{wanted.stem}-{n}{wanted.suffix}")
            if target != wanted:
                warn(f"{source} is written as {target.name}: another input already writes {wanted.name}")
            taken.add(target)
            jobs.append((source, target))
    return jobs, refused


def _read(path: Path) -> tuple[Tensor, dict[str, Any]]:
    """The image as float ``[3, H, W]`` in [0, 1] and what writing it back needs (``ValueError``
    in one line for what cannot be kept)."""
    from PIL import Image

    with Image.open(path) as opened:
        opened.load()
        source: Image.Image = opened
    mode = source.mode
    if mode not in KEPT_MODES:
        raise ValueError(f"images of mode {mode} are not supported; save it as RGB, grayscale or CMYK first")
    meta: dict[str, Any] = {
        "format": opened.format,
        "mode": mode,
        "exif": source.info.get("exif"),
        "icc_profile": source.info.get("icc_profile"),
        "alpha": None,
    }
    if mode == "P" and "transparency" in source.info:
        source, meta["mode"] = source.convert("RGBA"), "RGBA"
    if "A" in source.getbands():
        meta["alpha"] = source.getchannel("A")
    if mode in GRAY_16:
        gray = torch.from_numpy(np.asarray(source).astype(np.float32) / 65535).clamp(0, 1)
        return gray[None].expand(3, -1, -1).contiguous(), meta
    rgb = torch.from_numpy(np.asarray(source.convert("RGB")).copy()).permute(2, 0, 1)
    return rgb.float() / 255, meta


def _write(restored: Tensor, meta: dict[str, Any], target: Path) -> None:
    """Save ``[3, H, W]`` in [0, 1] in the input's mode, format, EXIF and ICC profile, whole or not at all."""
    from PIL import Image

    mode = meta["mode"]
    if mode in GRAY_16:
        gray = (restored.mean(0) * 65535).round().numpy().astype(np.uint16)
        result = Image.fromarray(gray if mode != "I" else gray.astype(np.int32))  # I;16 or I
    else:
        result = Image.fromarray((restored * 255).round().byte().permute(1, 2, 0).numpy(), "RGB")
        if mode in ("1", "L", "LA"):
            result = result.convert("L")
        if meta["alpha"] is not None:
            result = result.convert("LA" if result.mode == "L" else "RGBA")
            result.putalpha(meta["alpha"])
        if mode == "P":
            result = result.quantize(256)
        elif mode in ("1", "CMYK"):
            result = result.convert(mode)
    save: dict[str, Any] = {"quality": 95} if meta["format"] == "JPEG" else {}
    save.update({k: meta[k] for k in ("exif", "icc_profile") if meta[k]})
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    try:
        result.save(tmp, format=meta["format"] or None, **save)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def dehaze_files(
    inputs: Sequence[str | os.PathLike[str]],
    model: Any,
    out_dir: str | os.PathLike[str],
    *,
    tile: int = 512,
    overlap: int = 32,
    max_pixels: int = 1024 * 1024,
    progress: bool = True,
    warn: Callable[[str], None] = print,
) -> DehazeReport:
    """Restore image files and folders of them into ``out_dir`` (see the module docstring).

    Every input that is refused — missing, an empty folder, unreadable, not an image, a mode that
    cannot be kept, an output that would replace it — is one ``warn`` line and a ``skipped`` entry.

    Raises:
        ValueError: ``out_dir`` is a file.
    """
    from PIL import UnidentifiedImageError
    from tqdm import tqdm

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the restored images")
    report = DehazeReport()
    files, refused = plan_outputs(inputs, out, warn)
    for path, reason in refused:
        report.skipped.append((path, reason))
        warn(f"skipped {path}: {reason}")
    bar = tqdm(total=len(files), desc="dehaze", unit="image", disable=not progress)
    for path, target in files:
        bar.set_postfix_str(path.name[-30:])
        try:
            if target.resolve() == path.resolve():
                raise ValueError(f"the output {target} would overwrite the input; choose another --out")
            x, meta = _read(path)
        except (UnidentifiedImageError, OSError, ValueError) as err:
            reason = str(err) if isinstance(err, ValueError) else f"not a readable image ({type(err).__name__})"
            report.skipped.append((path, reason))
            warn(f"skipped {path}: {reason}")
            bar.update(1)
            continue
        h, w = x.shape[1:]
        tiles = 1 if h * w <= max_pixels else len(tile_starts(h, tile, overlap)) * len(tile_starts(w, tile, overlap))
        inner = tqdm(
            total=tiles, desc=f"  {path.name[-24:]}", unit="tile", leave=False, disable=not progress or tiles == 1
        )
        restored = restore_image(model, x, tile=tile, overlap=overlap, max_pixels=max_pixels, progress=inner)
        inner.close()
        _write(restored, meta, target)
        report.written.append((path, target))
        bar.update(1)
    bar.close()
    return report
