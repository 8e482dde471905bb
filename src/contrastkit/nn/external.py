"""Backbones by name from torchvision (``torchvision/<name>``, ImageNet stem) and timm
(``timm/<name>``, extra ``timm``), randomly initialised: pretrained weights come only from a local
file (``model.weights``), never from the network.

A torchvision backbone keeps torchvision's module names under ``model.``, so its weights load into
``torchvision.models.get_model(name)`` once the classifier is replaced by ``nn.Identity()``.

Examples:
    >>> backbone = build_external("torchvision/resnet18", 3)
    >>> backbone(torch.rand(2, 3, 64, 64)).shape
    torch.Size([2, 512])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from contrastkit.nn.backbones import Backbone

__all__ = ["EXTERNAL_PREFIXES", "TimmBackbone", "TorchvisionBackbone", "build_external"]

EXTERNAL_PREFIXES = ("torchvision/", "timm/")


class TorchvisionBackbone(Backbone):
    """A torchvision classification model without its classifier (ResNet family, or any model
    with a ``features`` module), ``in_channels`` adapted in the first conv."""

    def __init__(self, name: str, in_channels: int = 3) -> None:
        super().__init__()
        import torchvision

        if name not in torchvision.models.list_models(module=torchvision.models):
            raise ValueError(
                f"torchvision has no classification model {name!r}; e.g. resnet18, resnet50, convnext_tiny"
            )
        self.name = name
        self.model = torchvision.models.get_model(name, weights=None)
        if hasattr(self.model, "layer4") and hasattr(self.model, "fc"):
            self.kind = "resnet"
            self.feature_dim = self.model.fc.in_features
            self.model.fc = nn.Identity()
            if in_channels != 3:
                old = self.model.conv1
                self.model.conv1 = nn.Conv2d(in_channels, old.out_channels, 7, stride=2, padding=3, bias=False)
        elif hasattr(self.model, "features"):
            self.kind = "features"
            if in_channels != 3:
                raise ValueError(
                    f"torchvision/{name} takes 3-channel images; only ResNets are adapted to {in_channels}"
                )
            with torch.no_grad():
                self.feature_dim = int(self.model.features(torch.zeros(1, 3, 64, 64)).shape[1])
            for attr in ("classifier", "head", "heads"):
                if hasattr(self.model, attr):
                    setattr(self.model, attr, nn.Identity())
        else:
            raise ValueError(f"torchvision/{name} is neither a ResNet nor a model with a features module")

    def forward_map(self, x: Tensor) -> Tensor:
        m = self.model
        if self.kind == "resnet":
            x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
            out: Tensor = m.layer4(m.layer3(m.layer2(m.layer1(x))))
            return out
        out = m.features(x)
        return out


class TimmBackbone(Backbone):
    """A timm model without its classifier; ``forward`` uses timm's own pooling (tokens for ViTs)."""

    def __init__(self, name: str, in_channels: int = 3) -> None:
        super().__init__()
        try:
            import timm
        except ImportError:
            raise ValueError("timm backbones need timm: pip install 'contrastkit[timm]'") from None
        try:
            self.model = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_channels)
        except RuntimeError as err:
            raise ValueError(f"timm cannot build {name!r}: {str(err).splitlines()[0]}") from None
        self.feature_dim = int(self.model.num_features)

    def forward_map(self, x: Tensor) -> Tensor:
        out: Tensor = self.model.forward_features(x)
        return out

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        return out


def build_external(name: str, in_channels: int = 3) -> Backbone:
    """``torchvision/<name>`` or ``timm/<name>``."""
    source, _, model = name.partition("/")
    if source == "torchvision":
        return TorchvisionBackbone(model, in_channels)
    if source == "timm":
        return TimmBackbone(model, in_channels)
    raise ValueError(
        f"external backbones are named {' or '.join(p + '<name>' for p in EXTERNAL_PREFIXES)}, got {name!r}"
    )
