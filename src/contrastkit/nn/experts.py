"""Frozen experts: a trained image encoder applied to every frame of a clip, its features pooled
over time, as video-text methods take their video side from pretrained experts (CrossCLR,
Zolfaghari et al., ICCV 2021, trains on such features, not on pixels)."""

from __future__ import annotations

import torch
from torch import Tensor

from contrastkit.nn.backbones import Backbone, ConvNetSmall
from contrastkit.nn.inflate import freeze_module, initial_weights
from contrastkit.views.image import normalize_images

__all__ = ["frame_expert", "pooled_clip_features"]


def frame_expert(source: str) -> Backbone:
    """The ConvNetSmall that ``source`` (``zoo:NAME``, ``run:RUN_DIR`` or a state-dict file)
    holds, its width read from the first convolution, frozen and in eval mode."""
    state = initial_weights(source)
    first = state.get("body.0.weight")
    if first is None or first.dim() != 4:
        raise ValueError(f"expert {source}: not a convnet_small state dict (no 2-D body.0.weight)")
    expert = ConvNetSmall(int(first.shape[1]), int(first.shape[0]))
    expert.load_state_dict(state)
    freeze_module(expert)
    return expert


@torch.no_grad()
def pooled_clip_features(
    expert: Backbone,
    clips: Tensor,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    segments: int = 3,
    batch: int = 512,
) -> Tensor:
    """Expert features of ``clips`` (``uint8 [N, 3, T, S, S]``): every frame encoded (normalised
    with ``mean``/``std``, those the expert was trained with), then averaged within ``segments``
    equal stretches of time and concatenated, ``[N, segments * D]`` — the mean keeps appearance,
    the stretches keep the order that motion needs."""
    n, _, t = clips.shape[:3]
    if t < segments:
        raise ValueError(f"clips of {t} frames cannot be split into {segments} segments")
    frames = clips.permute(0, 2, 1, 3, 4).reshape(n * t, *clips.shape[1:2], *clips.shape[3:])
    features = torch.cat(
        [expert(normalize_images(frames[i : i + batch], mean, std)) for i in range(0, len(frames), batch)]
    )
    per_frame = features.view(n, t, -1)
    bounds = torch.linspace(0, t, segments + 1).round().long().tolist()
    return torch.cat([per_frame[:, a:b].mean(1) for a, b in zip(bounds[:-1], bounds[1:], strict=True)], dim=1)
