"""One LightningModule per paper, built from functional/, losses/, memory/, nn/ and views/.

Each method registers itself (``contrastkit.registry.register_method``) next to its class, with
its recipe options, so importing this package makes every shipped method known to recipes.
"""

from contrastkit.methods.aecr import AECR, AECRParams
from contrastkit.methods.base import Batch, ContrastiveMethod, OptimizerSettings, StepOutput
from contrastkit.methods.ccl import CCL, CCLParams
from contrastkit.methods.clip_base import ClipMethod
from contrastkit.methods.crossclr import CrossCLR, CrossCLRParams
from contrastkit.methods.densecl import DenseCL, DenseCLParams, match_locations
from contrastkit.methods.graph_base import EarlyStopping, GraphMethod
from contrastkit.methods.longshort import LongShortParams, LongShortViews
from contrastkit.methods.mochi import MoCHi, MoCHiParams
from contrastkit.methods.moco import MoCo, MoCoParams
from contrastkit.methods.mvgrl import MVGRL, MVGRLParams
from contrastkit.methods.mvgrl_graph import MVGRLGraph
from contrastkit.methods.simclr import SimCLR, SimCLRParams
from contrastkit.methods.vclr import VCLR, VCLRParams
from contrastkit.methods.videomoco import VideoMoCo, VideoMoCoParams

__all__ = [
    "AECR",
    "MVGRL",
    "AECRParams",
    "CCL",
    "CCLParams",
    "ClipMethod",
    "Batch",
    "ContrastiveMethod",
    "CrossCLR",
    "CrossCLRParams",
    "DenseCL",
    "DenseCLParams",
    "EarlyStopping",
    "GraphMethod",
    "MVGRLGraph",
    "MVGRLParams",
    "LongShortParams",
    "LongShortViews",
    "MoCHi",
    "MoCHiParams",
    "MoCo",
    "MoCoParams",
    "OptimizerSettings",
    "SimCLR",
    "SimCLRParams",
    "StepOutput",
    "VCLR",
    "VCLRParams",
    "VideoMoCo",
    "VideoMoCoParams",
    "match_locations",
]
