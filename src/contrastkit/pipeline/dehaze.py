"""``contrastkit dehaze``: restore user photos of any size with a trained dehazing run (or the dark
channel prior), in bounded memory.

Images above ``max_pixels`` are cut into ``tile`` x ``tile`` tiles overlapping by ``overlap``
pixels; each tile's output is weighted by a ramp that falls to ~0 at its inner edges, and the
weighted sum is normalised, so tile seams blend. Grayscale inputs come back grayscale, RGBA
inputs keep their alpha; the output has the input's size, file name and format, in ``out_dir``;
an input is never overwritten.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
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
    for top in rows:
        for left in cols:
            th, tw = min(tile, h - top), min(tile, w - left)
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


def _expand(inputs: Sequence[str | os.PathLike[str]]) -> Iterable[Path]:
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        else:
            yield path


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
    """Restore image files and folders of them into ``out_dir`` (same names and formats).

    Unreadable or non-image files are reported through ``warn`` by name and skipped; an output that
    would replace its input is refused (skipped with a message).
    """
    from PIL import Image, UnidentifiedImageError
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = DehazeReport()
    files = list(_expand(inputs))
    bar = tqdm(total=len(files), desc="dehaze", unit="image", disable=not progress)
    for path in files:
        bar.set_postfix_str(path.name[-30:])
        target = out / path.name
        try:
            if not path.is_file():
                raise FileNotFoundError("no such file")
            if target.resolve() == path.resolve():
                raise ValueError(f"the output {target} would overwrite the input; choose another --out")
            with Image.open(path) as opened:
                opened.load()
                source = opened
                fmt = opened.format
            mode = source.mode
            alpha = source.getchannel("A") if "A" in source.getbands() else None
            rgb = torch.from_numpy(np.asarray(source.convert("RGB")).copy()).permute(2, 0, 1)
        except (UnidentifiedImageError, OSError, ValueError, FileNotFoundError) as err:
            reason = str(err) if isinstance(err, ValueError) else f"not a readable image ({type(err).__name__})"
            report.skipped.append((path, reason))
            warn(f"skipped {path}: {reason}")
            bar.update(1)
            continue
        x = rgb.float() / 255
        h, w = x.shape[1:]
        tiles = 1 if h * w <= max_pixels else len(tile_starts(h, tile, overlap)) * len(tile_starts(w, tile, overlap))
        inner = tqdm(
            total=tiles, desc=f"  {path.name[-24:]}", unit="tile", leave=False, disable=not progress or tiles == 1
        )
        restored = restore_image(model, x, tile=tile, overlap=overlap, max_pixels=max_pixels, progress=inner)
        inner.close()
        result = Image.fromarray((restored * 255).round().byte().permute(1, 2, 0).numpy(), "RGB")
        if mode in ("L", "LA", "I", "I;16", "F", "1"):
            result = result.convert("L")
        if alpha is not None:
            result = result.convert("LA" if result.mode == "L" else "RGBA")
            result.putalpha(alpha)
        save: dict[str, Any] = {"quality": 95} if fmt == "JPEG" else {}
        tmp = target.with_name(f".{target.name}.part")
        result.save(tmp, format=fmt or None, **save)
        os.replace(tmp, target)
        report.written.append((path, target))
        bar.update(1)
    bar.close()
    return report
