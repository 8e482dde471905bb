"""Federated contrastive learning on Flower: FedAvg, FedProx and MOON (``federated`` extra)."""

from contrastkit.federated.local import LocalSettings, local_train
from contrastkit.federated.model import FederatedModel
from contrastkit.federated.partition import dirichlet_partition, label_histograms

__all__ = ["FederatedModel", "LocalSettings", "dirichlet_partition", "label_histograms", "local_train"]
