"""Reusable encoders: image and clip backbones, projection heads, momentum encoders, split BN,
VideoMoCo's frame scorer."""

from contrastkit.nn.backbones import (
    Backbone,
    ConvNetSmall,
    MoonCNN,
    build_backbone,
    cifar_resnet,
    global_average_pool,
)
from contrastkit.nn.clip_encoders import FrameScorer, TinyClipCNN, VideoResNet, load_backbone_weights
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
    "FrameScorer",
    "MomentumEncoder",
    "MoonCNN",
    "ProjectionHead",
    "SplitBatchNorm1d",
    "SplitBatchNorm2d",
    "SplitBatchNorm3d",
    "TinyClipCNN",
    "VideoResNet",
    "build_backbone",
    "cifar_resnet",
    "convert_to_split_batchnorm",
    "ema_update",
    "global_average_pool",
    "load_backbone_weights",
    "shuffle_batch",
    "unshuffle_batch",
]
