"""Backbones that return a spatial feature map and know their output width.

Every backbone here is an ``nn.Module`` with ``feature_dim`` (channels of the last map) and
``forward_map(x) -> [B, C, ...]`` (``[B, C, H', W']`` for images, ``[B, C, T', H', W']`` for
clips); ``forward(x)`` is the ``[B, C]`` average over every trailing dimension. DenseCL needs the
map, everything else the pooled vector.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from contrastkit.registry import BACKBONES, RegistryError, register_backbone

__all__ = [
    "Backbone",
    "ConvNetSmall",
    "MoonCNN",
    "build_backbone",
    "cifar_resnet",
    "global_average_pool",
    "load_run_backbone",
]


class Backbone(nn.Module):
    """Base: subclasses implement ``forward_map`` and set ``feature_dim``. The 2-D CNNs run their
    convolutions in ``memory_format`` (channels-last; ``torch.contiguous_format`` for NCHW)."""

    feature_dim: int
    memory_format: torch.memory_format = torch.channels_last

    def forward_map(self, x: Tensor) -> Tensor:
        raise TypeError(f"{type(self).__name__} must implement forward_map(x)")

    def forward(self, x: Tensor) -> Tensor:
        return global_average_pool(self.forward_map(x))


def channels_last(x: Tensor, memory_format: torch.memory_format = torch.channels_last) -> Tensor:
    """Images ``[B, C, H, W]`` in channels-last memory layout (other tensors as they are). The
    convolutions of a 2-D backbone then run in that layout, faster on CPUs (``docs/benchmarks.md``);
    the values are the same."""
    return x.contiguous(memory_format=memory_format) if x.dim() == 4 else x


def global_average_pool(feature_map: Tensor) -> Tensor:
    """``[B, C, *spatial]`` -> ``[B, C]``: the mean over every dimension after the channels."""
    return feature_map.flatten(2).mean(dim=2) if feature_map.dim() > 2 else feature_map


class ConvNetSmall(Backbone):
    """The "MoCo-small" encoder of ``docs/methods/moco.md``: four conv-BN-ReLU blocks, each halving the
    resolution after the first (32x32 input -> 4x4 map), widths ``width * (1, 2, 4, 8)``.

    Args:
        in_channels: image channels.
        width: channels of the first block (32 gives 32-64-128-256).
    """

    def __init__(self, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        channels = in_channels
        for i, out in enumerate(widths):
            layers += [
                nn.Conv2d(channels, out, 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            channels = out
        self.body = nn.Sequential(*layers)
        self.feature_dim = channels

    def forward_map(self, x: Tensor) -> Tensor:
        return self.body(channels_last(x, self.memory_format))


class _TorchvisionResNet(Backbone):
    """torchvision's ResNet blocks with stage widths ``width * (1, 2, 4, 8)`` and the CIFAR stem."""

    def __init__(self, depth: int, in_channels: int, width: int) -> None:
        super().__init__()
        from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

        counts = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3]}
        if depth not in counts:
            raise ValueError(f"depth must be one of {sorted(counts)}, got {depth}")
        block: type[BasicBlock] | type[Bottleneck] = Bottleneck if depth == 50 else BasicBlock
        net = ResNet(block, counts[depth])
        if width != 64:  # rebuild the stages narrower with torchvision's own _make_layer
            net.inplanes = width
            net.bn1 = nn.BatchNorm2d(width)
            net.layer1 = net._make_layer(block, width, counts[depth][0])
            net.layer2 = net._make_layer(block, 2 * width, counts[depth][1], stride=2)
            net.layer3 = net._make_layer(block, 4 * width, counts[depth][2], stride=2)
            net.layer4 = net._make_layer(block, 8 * width, counts[depth][3], stride=2)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False), net.bn1, net.relu)
        self.layers = nn.Sequential(net.layer1, net.layer2, net.layer3, net.layer4)
        self.feature_dim = 8 * width * block.expansion

    def forward_map(self, x: Tensor) -> Tensor:
        return self.layers(self.stem(channels_last(x, self.memory_format)))


def cifar_resnet(depth: int = 18, in_channels: int = 3, width: int = 64) -> Backbone:
    """torchvision ResNet with the CIFAR stem: 3x3 stride-1 conv1, no max-pool, no fc.

    Args:
        depth: 18, 34 or 50.
        in_channels: image channels.
        width: channels of the first stage (64 = standard; smaller for CPU runs).

    Examples:
        >>> import torch
        >>> net = cifar_resnet(18, width=16)
        >>> net(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 128])
    """
    return _TorchvisionResNet(depth, in_channels, width)


class MaxPool2x2(nn.MaxPool2d):
    """``nn.MaxPool2d(2)`` that, when no gradient is being recorded, takes the maximum of the four
    strided slices instead: the same values, bit for bit, but about 7x faster on a CPU, where
    ``max_pool2d`` on a few channels costs more than the convolution before it. Frozen forwards
    (MOON's global and previous models) and evaluation take this path; training keeps
    ``max_pool2d``, whose backward is faster than the slices'. Measured in
    ``benchmarks/moon_step.py``."""

    def __init__(self) -> None:
        super().__init__(2)

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return super().forward(x)
        return max_pool_2x2(x)


def max_pool_2x2(x: Tensor) -> Tensor:
    """``F.max_pool2d(x, 2)`` for ``[..., H, W]`` as two strided maxima (odd edges dropped)."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    rows = torch.maximum(x[..., 0:h:2, :w], x[..., 1:h:2, :w])
    return torch.maximum(rows[..., 0::2], rows[..., 1::2])


class MoonCNN(Backbone):
    """MOON's "simple CNN" base encoder for CIFAR-10 (``docs/methods/moon.md``): two conv5x5 + max-pool
    stages and two fully connected layers, 84-d output. The map is ``[B, 84, 1, 1]``.

    The official code applies ReLU then max-pool; here the pool comes first. ReLU and max are
    both monotone, so outputs and gradients are identical, and the ReLU touches a quarter of the
    values (a frozen forward, as MOON runs two per step, is about 15% faster on a CPU). Parameter
    names are unchanged (``features.0`` and ``features.3`` are the convolutions). Without
    autograd the pools take a faster path with the same values (``MaxPool2x2``).
    """

    def __init__(self, in_channels: int = 3, image_size: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5),
            MaxPool2x2(),
            nn.ReLU(inplace=True),
            nn.Conv2d(6, 16, 5),
            MaxPool2x2(),
            nn.ReLU(inplace=True),
        )
        side = ((image_size - 4) // 2 - 4) // 2
        self.fc = nn.Sequential(nn.Linear(16 * side * side, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU())
        self.feature_dim = 84

    def forward_map(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x).flatten(1))[:, :, None, None]


@register_backbone("convnet_small", summary="four conv-BN-ReLU blocks (docs/methods/moco.md)")
def _convnet_small(in_channels: int, width: int | None, image_size: int) -> Backbone:
    return ConvNetSmall(in_channels, width or 32)


def _resnet(depth: int) -> Callable[[int, int | None, int], Backbone]:
    def build(in_channels: int, width: int | None, image_size: int) -> Backbone:
        return cifar_resnet(depth, in_channels, width or 64)

    return build


for _depth in (18, 34, 50):
    register_backbone(f"resnet{_depth}", summary=f"torchvision ResNet-{_depth}, CIFAR stem")(_resnet(_depth))


@register_backbone("moon_cnn", summary="MOON's simple CNN (docs/methods/moon.md)")
def _moon_cnn(in_channels: int, width: int | None, image_size: int) -> Backbone:
    return MoonCNN(in_channels, image_size)


def build_backbone(name: str, in_channels: int = 3, width: int | None = None, image_size: int = 32) -> Backbone:
    """A registered backbone by name (``convnet_small``, ``resnet18/34/50``, ``moon_cnn``, plugins'),
    or ``torchvision/<name>`` / ``timm/<name>`` (``contrastkit.nn.external``)."""
    if name.startswith(("torchvision/", "timm/")):
        from contrastkit.nn.external import build_external

        return build_external(name, in_channels)
    try:
        entry = BACKBONES.get(name)
    except RegistryError as err:
        raise ValueError(str(err)) from None
    backbone: Backbone = entry.build(in_channels, width, image_size)
    return backbone


def load_run_backbone(run_dir: str | os.PathLike[str]) -> tuple[Backbone, dict[str, Any], int]:
    """The image or clip backbone a contrastkit run trained: built from the run's ``recipe.yaml``
    with the ``backbone.*`` weights of ``checkpoints/last.ckpt`` (input channels read from the first
    conv), in eval mode. Returns ``(backbone, recipe, channels)``.

    Raises:
        FileNotFoundError: the folder lacks ``recipe.yaml`` or the checkpoint.
        ValueError: an unreadable checkpoint, one without backbone weights (graph methods), or
            weights that do not fit the recipe's backbone.
    """
    import yaml

    folder = Path(run_dir)
    ckpt = folder / "checkpoints" / "last.ckpt"
    if not (folder / "recipe.yaml").is_file() or not ckpt.is_file():
        raise FileNotFoundError(f"{folder} is not a finished run folder (needs recipe.yaml and checkpoints/last.ckpt)")
    recipe = yaml.safe_load((folder / "recipe.yaml").read_text()) or {}
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, KeyError, ...
        raise ValueError(f"{ckpt} is not a readable checkpoint ({str(err).splitlines()[0][:120]})") from None
    weights = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    if not weights:
        method = recipe.get("method", {}).get("name")
        raise ValueError(f"{folder} ({method}) has no backbone to export or to use as a feature extractor")
    channels = int(next(v for v in weights.values() if v.dim() >= 4).shape[1])  # first conv: [out, in, ...]
    model, data = recipe.get("model", {}), recipe.get("data", {})
    name = model.get("backbone", "convnet_small")
    backbone = build_backbone(name, channels, model.get("width"), data.get("image_size", 32))
    try:
        backbone.load_state_dict(weights)
    except RuntimeError as err:
        raise ValueError(f"{ckpt}: backbone weights do not fit {name}: {str(err).splitlines()[1][:160]}") from None
    return backbone.eval(), recipe, channels
