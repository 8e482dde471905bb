"""Evaluation protocols: kNN, linear probe, feature extraction (graph/retrieval/PSNR follow)."""

from contrastkit.evaluation.dense_probe import make_mosaics, quadrant_probe
from contrastkit.evaluation.features import extract_features
from contrastkit.evaluation.graph import node_classification, svm_graph_classification
from contrastkit.evaluation.knn import knn_accuracy, knn_predict
from contrastkit.evaluation.linear_probe import linear_probe

__all__ = [
    "extract_features",
    "knn_accuracy",
    "knn_predict",
    "linear_probe",
    "make_mosaics",
    "node_classification",
    "quadrant_probe",
    "svm_graph_classification",
]
