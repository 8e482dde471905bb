"""Loss modules: configuration, queues and cross-rank gathering around ``functional``."""

from contrastkit.losses.info_nce import InfoNCELoss, MoCHiLoss, NTXentLoss

__all__ = ["InfoNCELoss", "MoCHiLoss", "NTXentLoss"]
