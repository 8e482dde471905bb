"""Clip encoders (``[B, C, T, H, W]`` -> ``forward_map`` ``[B, C', T', H', W']``) and the frame
scorer of VideoMoCo (``docs/methods/videomoco.md``).

- ``TinyClipCNN``: three Conv3d-BN-ReLU blocks (widths ``w, 2w, 4w``; ~0.1M parameters at
  ``w = 16``), our CPU-sized encoder (docs/methods/videomoco.md).
- ``VideoResNet``: torchvision's ``r3d_18``, ``r2plus1d_18``, ``mc3_18`` and ``s3d`` without
  their classifier; the map is pooled over every trailing dimension, so clips smaller than the
  224 / 112 pixels they were designed for work. Weights come from a local file only
  (``load_backbone_weights``): nothing downloads.
- ``FramewiseEncoder``: a 2-D image backbone applied to every frame of a clip, features
  averaged over time (frame-level methods such as VCLR evaluated on clips).
- ``FrameScorer``: VideoMoCo's generator G (docs/methods/videomoco.md), for any ``T``: Conv3d over the clip ->
  spatial mean -> a bidirectional GRU over time -> one logit per frame -> softmax over frames.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn

from contrastkit.nn.backbones import Backbone
from contrastkit.registry import register_backbone

__all__ = ["FrameScorer", "FramewiseEncoder", "TinyClipCNN", "VideoResNet", "load_backbone_weights"]


class TinyClipCNN(Backbone):
    """Conv3d(3x3x3)-BN-ReLU x 3; the last two halve time and space.

    Args:
        in_channels: frame channels.
        width: channels of the first block (16 gives 16-32-64).
    """

    def __init__(self, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for i, out in enumerate((width, 2 * width, 4 * width)):
            stride = (1, 2, 2) if i == 0 else (2, 2, 2)
            layers += [nn.Conv3d(channels, out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm3d(out)]
            layers.append(nn.ReLU(inplace=True))
            channels = out
        self.body = nn.Sequential(*layers)
        self.feature_dim = channels

    def forward_map(self, x: Tensor) -> Tensor:
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # torch 2.14's CPU bf16 Conv3d returns NaN weight gradients for 2-frame inputs (seen with
            # long/short views' short clips): on CPU the 3D convs run in float32 under autocast
            with torch.autocast("cpu", enabled=False):
                out: Tensor = self.body(x.float())
                return out
        return self.body(x)


class VideoResNet(Backbone):
    """A torchvision video network without its classifier (random initialisation).

    Args:
        name: ``r3d_18``, ``r2plus1d_18``, ``mc3_18`` or ``s3d``.
        in_channels: frame channels (3: the torchvision stems are RGB).
    """

    def __init__(self, name: str, in_channels: int = 3) -> None:
        super().__init__()
        from torchvision.models import video

        if name not in ("r3d_18", "r2plus1d_18", "mc3_18", "s3d"):
            raise ValueError(f"unknown video network {name!r}; choose r3d_18, r2plus1d_18, mc3_18 or s3d")
        if in_channels != 3:
            raise ValueError(f"torchvision's {name} takes RGB clips (3 channels), got {in_channels}")
        net: Any = getattr(video, name)(weights=None)
        if name == "s3d":
            self.body: nn.Module = net.features
            self.feature_dim = 1024
        else:
            self.body = nn.Sequential(net.stem, net.layer1, net.layer2, net.layer3, net.layer4)
            self.feature_dim = 512

    def forward_map(self, x: Tensor) -> Tensor:
        out: Tensor = self.body(x)
        return out


def load_backbone_weights(backbone: nn.Module, path: str | os.PathLike[str]) -> list[str]:
    """Load a local state dict (e.g. torchvision's published ``r2plus1d_18`` weights file) into
    ``backbone``; keys of a classifier head (``fc.``, ``classifier.``) are ignored and the
    ``stem.``/``layerN.``/``features.`` prefixes mapped onto ours. Returns the keys left unset.

    Raises:
        FileNotFoundError: no file at ``path``; ValueError: nothing in the file fits.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    ours = backbone.state_dict()
    mapped: dict[str, Tensor] = {}
    for key, value in state.items():
        key = key.removeprefix("module.").removeprefix("backbone.")
        if key.startswith(("fc.", "classifier.")):
            continue
        for candidate in (key, _torchvision_key(key)):
            if candidate in ours and ours[candidate].shape == value.shape:
                mapped[candidate] = value
                break
    if not mapped:
        raise ValueError(f"no tensor of {path} fits the backbone (expected keys like {next(iter(ours))})")
    missing = [k for k in ours if k not in mapped]
    backbone.load_state_dict(mapped, strict=False)
    return missing


def _torchvision_key(key: str) -> str:
    """torchvision's video ResNet / S3D key -> ours (``body.<index>`` for the stages)."""
    stages = {"stem": 0, "layer1": 1, "layer2": 2, "layer3": 3, "layer4": 4}
    head, _, rest = key.partition(".")
    if head in stages:
        return f"body.{stages[head]}.{rest}"
    if head == "features":
        return f"body.{rest}"
    return key


class FramewiseEncoder(nn.Module):
    """``[B, C, T, H, W]`` -> ``[B, D]``: ``backbone`` (an image encoder) on each of the ``T``
    frames, features averaged over time. Holds ``backbone`` by reference (same parameters)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, clips: Tensor) -> Tensor:
        b, c, t, h, w = clips.shape
        frames = clips.transpose(1, 2).reshape(b * t, c, h, w)
        out: Tensor = self.backbone(frames).view(b, t, -1).mean(dim=1)
        return out


class FrameScorer(nn.Module):
    """VideoMoCo's generator G, for any clip length: per-frame scores ``[B, T]`` (a softmax).

    Args:
        in_channels: frame channels.
        width: Conv3d channels (the GRU's input) and half the GRU's output.
    """

    def __init__(self, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv3d(in_channels, width, 3, stride=(1, 2, 2), padding=1),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
            nn.Conv3d(width, width, 3, stride=(1, 2, 2), padding=1),
            nn.ReLU(inplace=True),
        )
        self.gru = nn.GRU(width, width, batch_first=True, bidirectional=True)
        self.score = nn.Linear(2 * width, 1)

    def forward(self, clips: Tensor) -> Tensor:
        """``[B, C, T, H, W]`` -> ``[B, T]`` non-negative scores summing to 1 per clip."""
        per_frame = self.conv(clips).mean(dim=(3, 4)).transpose(1, 2)  # [B, T, width]
        hidden, _ = self.gru(per_frame)
        return self.score(hidden).squeeze(-1).softmax(dim=1)


@register_backbone("tiny3d", summary="three Conv3d blocks, ~0.1M parameters (docs/methods/videomoco.md)")
def _tiny3d(in_channels: int, width: int | None, image_size: int) -> Backbone:
    return TinyClipCNN(in_channels, width or 16)


def _video(name: str) -> Any:
    def build(in_channels: int, width: int | None, image_size: int) -> Backbone:
        return VideoResNet(name, in_channels)

    return build


for _name in ("r3d_18", "r2plus1d_18", "mc3_18", "s3d"):
    register_backbone(_name, summary=f"torchvision {_name}, no classifier, adaptive pooling")(_video(_name))
