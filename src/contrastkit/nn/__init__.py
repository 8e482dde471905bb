"""Reusable encoders: backbones, projection heads, momentum encoders, split BN."""

from contrastkit.nn.backbones import Backbone, ConvNetSmall, MoonCNN, build_backbone, cifar_resnet
from contrastkit.nn.heads import DenseProjectionHead, ProjectionHead
from contrastkit.nn.momentum import MomentumEncoder, ema_update
from contrastkit.nn.split_batchnorm import (
    SplitBatchNorm2d,
    convert_to_split_batchnorm,
    shuffle_batch,
    unshuffle_batch,
)

__all__ = [
    "Backbone",
    "ConvNetSmall",
    "DenseProjectionHead",
    "MomentumEncoder",
    "MoonCNN",
    "ProjectionHead",
    "SplitBatchNorm2d",
    "build_backbone",
    "cifar_resnet",
    "convert_to_split_batchnorm",
    "ema_update",
    "shuffle_batch",
    "unshuffle_batch",
]
