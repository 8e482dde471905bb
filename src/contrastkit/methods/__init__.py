"""One LightningModule per paper, built from functional/, losses/, memory/, nn/ and views/."""

from contrastkit.methods.base import ContrastiveMethod, OptimizerSettings, StepOutput
from contrastkit.methods.densecl import DenseCL, match_locations
from contrastkit.methods.mochi import MoCHi
from contrastkit.methods.moco import MoCo
from contrastkit.methods.simclr import SimCLR

__all__ = [
    "ContrastiveMethod",
    "DenseCL",
    "MoCHi",
    "MoCo",
    "OptimizerSettings",
    "SimCLR",
    "StepOutput",
    "match_locations",
]
