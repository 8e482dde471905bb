"""Reusable encoders: image and clip backbones, projection heads, momentum encoders, split BN,
VideoMoCo's frame scorer, I3D inflation of an image encoder into a clip encoder."""

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
from contrastkit.nn.inflate import ConvNetSmall3d, inflate
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
    "ConvNetSmall3d",
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
    "inflate",
    "global_average_pool",
    "load_backbone_weights",
    "shuffle_batch",
    "unshuffle_batch",
]
