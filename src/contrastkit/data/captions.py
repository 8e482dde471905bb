"""Real sentences for the video–text protocol: moving CIFAR-10 objects with written captions.

Each pair is a clip from Video I's generator (``moving_object_frames``: a CIFAR-10 image in a
disc moving in one of 8 compass directions over a smooth random background; training clips
take their texture from CIFAR-10's training split, test clips from its test split) and a caption
written from the object's class, its direction and its speed by one of several paraphrase
templates ("a cat moving to the left", "the cat drifts leftwards slowly", ...). Captions of the
same class and direction are near-duplicate real sentences — the case CrossCLR's pruning and
weighting are for — and their (class, direction) pair is the cluster id (80 clusters).

- text features: the real all-MiniLM-L6-v2 sentence encoder (``nn.text.MiniLMEncoder``,
  offline, extra ``text``), 384-d, cached per dataset; ``data.text_encoder=hashing`` uses the
  dependency-free hashing encoder instead (tests, quick runs);
- video features (``video_input="descriptor"``): a fixed descriptor of the clip, no learning:
  its first, middle and last frames average-pooled to 8x8 and concatenated (576-d),
  standardised with the training split's statistics. It keeps appearance and, through the three
  positions, motion; the learned encoders of the method map it into the joint space. [design]
  The paper uses pretrained video-expert features, which do not exist offline here.
- or expert features beside it (``video_input="expert"``): an appearance expert, a trained
  image encoder (``video_expert``, e.g. ``zoo:moco-v2-cifar10-s{seed}``) applied to every frame
  and pooled over three stretches of time (``nn.experts.pooled_clip_features``), concatenated
  with the descriptor, which keeps the positions that motion needs and that the expert's global
  pooling drops — the paper's video side is likewise several pretrained experts concatenated;
- or the clips themselves (``video_input="clips"``): ``uint8 [N, 3, T, S, S]``, for a method
  that trains a clip encoder end to end (CrossCLR with the recipe's ``model.backbone``).

The clips are rendered in memory (the same generator ``generate_moving_objects`` writes to mp4);
no files are written except the text-feature cache.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from contrastkit.data.images import require_cifar10
from contrastkit.data.moving_objects import DIRECTIONS, _background, moving_object_frames
from contrastkit.data.pairs import PAIRS_TASK, PairSet
from contrastkit.registry import DataSettings, register_dataset

__all__ = ["CAPTION_TEMPLATES", "caption", "caption_pairs"]

DIRECTION_WORDS = {
    "E": ("to the right", "rightwards", "towards the right edge"),
    "NE": ("up and to the right", "diagonally up and right", "towards the top right corner"),
    "N": ("upwards", "up", "towards the top"),
    "NW": ("up and to the left", "diagonally up and left", "towards the top left corner"),
    "W": ("to the left", "leftwards", "towards the left edge"),
    "SW": ("down and to the left", "diagonally down and left", "towards the bottom left corner"),
    "S": ("downwards", "down", "towards the bottom"),
    "SE": ("down and to the right", "diagonally down and right", "towards the bottom right corner"),
}
CAPTION_TEMPLATES = (
    "{a} {cls} moving {dir}",
    "the {cls} drifts {dir} {speed}",
    "a picture of {a} {cls} sliding {dir}",
    "{a} {cls} travels {speed} {dir} across the frame",
    "something that looks like {a} {cls} goes {dir}",
    "watch the {cls} move {dir}",
)


def caption(name: str, direction: int, speed: float, template: int, wording: int) -> str:
    """One caption of an object of class ``name`` moving in compass ``direction`` (0 = east)."""
    article = "an" if name[0] in "aeiou" else "a"
    words = DIRECTION_WORDS[DIRECTIONS[direction]]
    pace = "slowly" if speed < 1.5 else "quickly"
    text = CAPTION_TEMPLATES[template % len(CAPTION_TEMPLATES)]
    return text.format(a=article, cls=name, dir=words[wording % len(words)], speed=pace)


def _clips(
    images: Tensor,
    labels: Tensor,
    count: int,
    frames: int,
    size: int,
    g: torch.Generator,
    classes: tuple[str, ...],
    radius: float,
) -> tuple[Tensor, Tensor, Tensor, list[str], Tensor]:
    """``count`` clips: raw ``uint8 [count, 3, T, S, S]``, descriptors ``[count, 576]``, clusters,
    captions, middle frames ``uint8 [count, 3, S, S]``."""
    raw, descriptors, clusters, captions, thumbnails = [], [], [], [], []
    positions = (0, frames // 2, frames - 1)
    for _ in range(count):
        pick = int(torch.randint(len(labels), (1,), generator=g))
        direction = int(torch.randint(len(DIRECTIONS), (1,), generator=g))
        speed = 1.0 + float(torch.rand(1, generator=g))
        start = (float(torch.rand(1, generator=g)) * size, float(torch.rand(1, generator=g)) * size)
        background = _background(size, g)
        texture = images[pick].float() / 255
        clip = moving_object_frames(direction, texture, background, frames, start, speed, radius=radius)
        raw.append(clip.permute(3, 0, 1, 2))
        chosen = clip[list(positions)].permute(0, 3, 1, 2).float() / 255  # [3 frames, 3, S, S]
        descriptors.append(F.adaptive_avg_pool2d(chosen, 8).flatten())
        cls = int(labels[pick])
        clusters.append(cls * len(DIRECTIONS) + direction)
        template = int(torch.randint(len(CAPTION_TEMPLATES), (1,), generator=g))
        wording = int(torch.randint(3, (1,), generator=g))
        captions.append(caption(classes[cls], direction, speed, template, wording))
        thumbnails.append(clip[frames // 2].permute(2, 0, 1))
    return torch.stack(raw), torch.stack(descriptors), torch.tensor(clusters), captions, torch.stack(thumbnails)


def caption_pairs(
    root: str | os.PathLike[str] | None,
    seed: int = 0,
    *,
    train: int = 1000,
    test: int = 400,
    frames: int = 8,
    size: int = 32,
    text_encoder: str = "minilm",
    cache_dir: str | os.PathLike[str] | None = None,
    video_input: str = "descriptor",
    video_expert: str | None = None,
    object_radius: float = 0.25,
) -> PairSet:
    """The captions protocol (module docstring); needs CIFAR-10 under ``root`` (``cifar10/``)."""
    from contrastkit.data.video_folders import cache_root
    from contrastkit.nn.text import HashingTextEncoder, MiniLMEncoder, encode_texts

    if video_input not in ("descriptor", "clips", "expert"):
        raise ValueError(f"video_input must be 'descriptor', 'clips' or 'expert', got {video_input!r}")
    if video_input == "expert" and not video_expert:
        raise ValueError("video_input 'expert' needs data.video_expert (e.g. zoo:moco-v2-cifar10-s0)")
    cifar = require_cifar10(root, "the captions protocol writes captions about real CIFAR-10 objects")
    g = torch.Generator().manual_seed(seed)
    radius = object_radius * size
    tr_raw, tr_v, tr_c, tr_text, _ = _clips(
        cifar.train_images, cifar.train_labels, train, frames, size, g, cifar.classes, radius
    )
    te_raw, te_v, te_c, te_text, thumbs = _clips(
        cifar.test_images, cifar.test_labels, test, frames, size, g, cifar.classes, radius
    )
    if video_input == "expert":
        from contrastkit.nn.experts import frame_expert, pooled_clip_features

        expert = frame_expert(str(video_expert).format(seed=seed))
        tr_e, te_e = (pooled_clip_features(expert, raw, cifar.mean, cifar.std) for raw in (tr_raw, te_raw))
        tr_v, te_v = torch.cat([tr_e, tr_v], dim=1), torch.cat([te_e, te_v], dim=1)
    mean, std = tr_v.mean(0), tr_v.std(0).clamp_min(1e-6)
    tr_v, te_v = (tr_v - mean) / std, (te_v - mean) / std
    if video_input == "clips":
        tr_v, te_v = tr_raw, te_raw
    encoder: Any = MiniLMEncoder() if text_encoder == "minilm" else HashingTextEncoder()
    cache = cache_root(cache_dir) / "text-features"
    tr_t = encode_texts(tr_text, encoder, cache_dir=cache)
    te_t = encode_texts(te_text, encoder, cache_dir=cache)
    pairs = PairSet(
        "captions",
        tr_v,
        tr_t,
        te_v,
        te_t,
        tr_c,
        te_c,
        f"moving CIFAR-10 objects with written captions ({train} train / {test} test pairs, {frames} frames of "
        f"{size}px, {len(CAPTION_TEMPLATES)} templates; text: {encoder.name}; video: "
        f"{_video_side(video_input, video_expert, seed)}; "
        f"seed {seed})",
    )
    pairs.test_captions = te_text
    pairs.test_thumbnails = thumbs
    return pairs


def _video_side(video_input: str, video_expert: str | None, seed: int) -> str:
    if video_input == "expert":
        return f"frozen expert {str(video_expert).format(seed=seed)} pooled over 3 stretches + the 8x8 descriptor"
    return "raw clips" if video_input == "clips" else "3 frames pooled to 8x8"


class CaptionData(DataSettings):
    """Options of ``caption_pairs``.

    Attributes:
        text_encoder: ``minilm`` (sentence-transformers, the ``[text]`` extra) or ``hashing``.
        video_input: ``descriptor`` (a fixed pooled descriptor), ``expert`` (a frozen image
            encoder's frame features) or ``clips`` (raw clips for a trained clip encoder).
        video_expert: the expert's weights for ``expert``: ``zoo:NAME``, ``run:RUN_DIR`` or a
            state-dict file; ``{seed}`` is replaced by the run's seed (one zoo checkpoint per seed).
        object_radius: the disc's radius as a fraction of the frame (0.25: a CIFAR-10 image shrunk
            to half the frame; 0.5: at its own resolution, as an expert trained on CIFAR-10 saw it).
        cache_dir: where text features and rendered clips are kept (default: the user's cache).
    """

    text_encoder: Literal["minilm", "hashing"] = "minilm"
    video_input: Literal["descriptor", "clips", "expert"] = "descriptor"
    video_expert: str | None = None
    object_radius: float = Field(0.25, gt=0, le=0.5)
    cache_dir: str | None = None


@register_dataset(
    "caption_pairs",
    task=PAIRS_TASK,
    settings=CaptionData,
    summary="moving CIFAR-10 objects with written captions, MiniLM text features (needs the CIFAR-10 data root)",
)
def _caption_pairs_dataset(settings: Any, root: str | os.PathLike[str] | None, seed: int) -> PairSet:
    return caption_pairs(
        root or settings.root,
        seed,
        train=settings.train_subset or 1000,
        test=settings.test_subset or 400,
        text_encoder=settings.text_encoder,
        cache_dir=settings.cache_dir,
        video_input=settings.video_input,
        video_expert=settings.video_expert,
        object_radius=settings.object_radius,
    )
