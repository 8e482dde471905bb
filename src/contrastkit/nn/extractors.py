"""Frozen multi-layer feature extractors for perceptual / contrastive-regularisation losses
(``docs/methods/aecr.md``): torchvision's VGG-19 slices (ImageNet weights from a local file), a fixed-seed
random VGG-19 (only when asked for by name), or the stages of a contrastkit backbone.

Each extractor maps ``[B, 3, H, W]`` to a list of feature maps, one per layer, and has every
parameter frozen (``requires_grad=False``) and kept in eval mode.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "FrozenExtractor",
    "VGG19_SLICES",
    "backbone_stages",
    "extractor_from_run",
    "extractor_from_zoo",
    "load_vgg19_features",
    "random_vgg19_features",
]

VGG19_SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))
"""``vgg19.features`` index ranges ending at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1."""


class FrozenExtractor(nn.Module):
    """Runs ``stages`` in sequence and returns every stage's output; frozen and always in eval mode.

    Args:
        stages: modules applied one after another.
        description: how reports name it (e.g. "VGG-19 ImageNet (vgg19.pth)").
    """

    def __init__(self, stages: Sequence[nn.Module], description: str) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.description = description
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FrozenExtractor:
        return super().train(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


def _vgg19_body(width_divisor: int = 1) -> nn.Sequential:
    from torchvision.models.vgg import cfgs, make_layers

    cfg = [c if c == "M" else max(1, int(c) // width_divisor) for c in cfgs["E"]]
    return make_layers(cfg, batch_norm=False)


def _slices(body: nn.Sequential) -> list[nn.Module]:
    return [nn.Sequential(*list(body.children())[a:b]) for a, b in VGG19_SLICES]


def load_vgg19_features(path: str | os.PathLike[str]) -> FrozenExtractor:
    """ImageNet VGG-19 slices from a local torchvision ``vgg19`` state dict (``features.N.*`` keys,
    with or without the ``features.`` prefix; classifier keys are ignored).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a VGG-19 state dict; names the missing / unexpected keys.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VGG-19 weights file {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not a readable weights file ({str(err).splitlines()[0][:100]})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict")
    body = _vgg19_body()
    ours = {k: v for k, v in body.state_dict().items() if int(k.split(".")[0]) < VGG19_SLICES[-1][1]}
    theirs = {}
    for key, value in state.items():
        key = key.removeprefix("module.").removeprefix("features.")
        if key.startswith("classifier.") or (key.split(".")[0].isdigit() and int(key.split(".")[0]) >= 30):
            continue
        theirs[key] = value
    missing = sorted(set(ours) - set(theirs))
    unexpected = sorted(set(theirs) - set(ours))
    wrong = sorted(k for k in set(ours) & set(theirs) if tuple(ours[k].shape) != tuple(theirs[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {', '.join(unexpected[:4])}{' ...' if len(unexpected) > 4 else ''}")
        if wrong:
            parts.append(f"wrong shapes for {', '.join(wrong[:4])}")
        raise ValueError(f"{path} is not a torchvision VGG-19 state dict: {'; '.join(parts)}")
    body.load_state_dict(theirs, strict=False)
    return FrozenExtractor(_slices(body), f"VGG-19 ImageNet weights from {path.name}")


def random_vgg19_features(seed: int = 0, width_divisor: int = 1) -> FrozenExtractor:
    """VGG-19 slices with fixed-seed random (Kaiming) weights, channels divided by ``width_divisor``.

    Not ImageNet features: the CR ordering of ``docs/methods/aecr.md`` is less certain with them, and every
    report that uses them says so.
    """
    if width_divisor < 1:
        raise ValueError(f"width_divisor must be >= 1, got {width_divisor}")
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        body = _vgg19_body(width_divisor)
    finally:
        torch.random.set_rng_state(state)
    width = "" if width_divisor == 1 else f", channels / {width_divisor}"
    return FrozenExtractor(_slices(body), f"random VGG-19 (seed {seed}{width}; not ImageNet features)")


def backbone_stages(backbone: nn.Module, description: str) -> FrozenExtractor:
    """The stages of a contrastkit image backbone: ``stem`` + each of ``layers`` (ResNets), or each
    conv-BN-ReLU block of ``body`` (``convnet_small``)."""
    parts: Any = backbone
    if hasattr(parts, "stem") and hasattr(parts, "layers"):
        stages = [parts.stem, *parts.layers]
    elif hasattr(parts, "body"):
        children = list(parts.body.children())
        stages, current = [], []
        for module in children:
            current.append(module)
            if isinstance(module, nn.ReLU):
                stages.append(nn.Sequential(*current))
                current = []
        if current:
            stages.append(nn.Sequential(*current))
    else:
        raise ValueError(f"{type(backbone).__name__} has neither stem+layers nor body; cannot split it into stages")
    return FrozenExtractor(stages, description)


def extractor_from_run(run_dir: str | Path) -> FrozenExtractor:
    """The stages of the image backbone trained in a contrastkit run folder."""
    from contrastkit.nn.backbones import load_run_backbone

    backbone, recipe, channels = load_run_backbone(run_dir)
    name = recipe.get("model", {}).get("backbone")
    extractor = backbone_stages(backbone, f"{name} backbone of run {run_dir}")
    if channels == 1:  # a grayscale encoder (e.g. digits) sees the mean of the RGB channels
        extractor.stages[0] = nn.Sequential(_ChannelMean(), extractor.stages[0])
    return extractor


def extractor_from_zoo(name: str) -> FrozenExtractor:
    """The stages of a zoo encoder, fed images normalised as it was trained (a grayscale encoder
    sees the mean of the RGB channels)."""
    from contrastkit import zoo
    from contrastkit.nn.experts import frame_expert

    entry = zoo.find(name)
    expert = frame_expert(f"zoo:{name}")
    extractor = backbone_stages(expert, f"convnet_small stages of zoo entry {name}")
    stem = next(m for m in expert.modules() if isinstance(m, nn.Conv2d))
    first: list[nn.Module] = [_ChannelMean()] if stem.in_channels == 1 else []
    if entry.input_mean and entry.input_std:
        first.append(_Normalize(entry.input_mean, entry.input_std))
    if first:
        extractor.stages[0] = nn.Sequential(*first, extractor.stages[0])
    return extractor


class _Normalize(nn.Module):
    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    mean: Tensor
    std: Tensor

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class _ChannelMean(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=1, keepdim=True)
