"""MOON's network (``docs/methods/moon.md``): base encoder -> projection head -> classifier on ``z``.

Every algorithm (FedAvg, FedProx, MOON) uses the same network, projection head included, as
the official code does. The classifier sits on the projection ``z``, not on ``h``, as in the official code.
"""

from __future__ import annotations

from torch import Tensor, nn

from contrastkit.nn.backbones import build_backbone

__all__ = ["FederatedModel"]


class FederatedModel(nn.Module):
    """``forward(x) -> (h, z, logits)``.

    Args:
        backbone: ``moon_cnn`` (CIFAR-10 in the paper) or a CIFAR ResNet from ``contrastkit.nn``.
        in_channels, image_size: input geometry.
        num_classes: classifier outputs.
        proj_dim: output of the projection head (256 in the paper).
        width: ResNet width (ignored by ``moon_cnn``).
    """

    def __init__(
        self,
        backbone: str,
        in_channels: int,
        image_size: int,
        num_classes: int,
        proj_dim: int = 256,
        width: int | None = None,
    ) -> None:
        super().__init__()
        self.encoder = build_backbone(backbone, in_channels, width, image_size)
        d = self.encoder.feature_dim
        self.projection = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, proj_dim))
        self.classifier = nn.Linear(proj_dim, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = self.encoder(x).flatten(1)
        z = self.projection(h)
        return h, z, self.classifier(z)
