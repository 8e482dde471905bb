"""Reusable encoders: backbones, projection heads, momentum encoders, split BN."""

from contrastkit.nn.backbones import (
    Backbone,
    ConvNetSmall,
    MoonCNN,
    build_backbone,
    cifar_resnet,
    global_average_pool,
)
from contrastkit.nn.heads import DenseProjectionHead, ProjectionHead
from contrastkit.nn.momentum import MomentumEncoder, ema_update
from contrastkit.nn.split_batchnorm import (
    SplitBatchNorm1d,
    SplitBatchNorm2d,
    SplitBatchNorm3d,
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
    "SplitBatchNorm1d",
    "SplitBatchNorm2d",
    "SplitBatchNorm3d",
    "build_backbone",
    "cifar_resnet",
    "convert_to_split_batchnorm",
    "ema_update",
    "global_average_pool",
    "shuffle_batch",
    "unshuffle_batch",
]
