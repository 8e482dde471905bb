"""Evaluation protocols of MVGRL (``docs/methods/mvgrl.md``) on frozen embeddings.

- Node level: logistic regression (one ``Linear``, xavier init, Adam lr 0.01, 300 full-batch
  steps) on the training nodes, accuracy on the test nodes, repeated ``repeats`` times.
- Graph level: ``LinearSVC`` on the raw embeddings, stratified 10-fold cross-validation, ``C``
  chosen inside each training fold by 5-fold grid search over 1e-3 .. 1e3, solved in the primal
  (see ``svm_graph_classification`` for why).
"""

from __future__ import annotations

import statistics
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

__all__ = ["node_classification", "svm_graph_classification"]


def node_classification(
    embeddings: Tensor,
    labels: Tensor,
    train_mask: Tensor,
    test_mask: Tensor,
    *,
    repeats: int = 50,
    steps: int = 300,
    lr: float = 0.01,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> tuple[float, float]:
    """Mean and std (percent) of test accuracy over ``repeats`` logistic regressions."""
    x_train, y_train = embeddings[train_mask].float(), labels[train_mask]
    x_test, y_test = embeddings[test_mask].float(), labels[test_mask]
    classes, dim = int(labels.max()) + 1, embeddings.shape[1]
    g = torch.Generator().manual_seed(seed)
    bound = (6.0 / (dim + classes)) ** 0.5
    # The repeats train as one batch of independent heads: the summed loss gives each head its own
    # gradient and Adam is elementwise, so this equals ``repeats`` separate runs, ~repeats x faster.
    weight = torch.stack([torch.empty(classes, dim).uniform_(-bound, bound, generator=g) for _ in range(repeats)])
    weight.requires_grad_()
    bias = torch.zeros(repeats, classes, requires_grad=True)
    opt = torch.optim.Adam([weight, bias], lr=lr, weight_decay=weight_decay)
    targets = y_train.repeat(repeats)
    for _ in range(steps):
        logits = torch.einsum("nd,rcd->rnc", x_train, weight) + bias[:, None, :]
        loss = F.cross_entropy(logits.reshape(-1, classes), targets, reduction="sum") / len(y_train)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = (torch.einsum("nd,rcd->rnc", x_test, weight) + bias[:, None, :]).argmax(2)
        accs = ((pred == y_test).float().mean(1) * 100).tolist()
    return statistics.mean(accs), statistics.pstdev(accs)


def svm_graph_classification(
    embeddings: Tensor,
    labels: Tensor,
    *,
    folds: int = 10,
    seed: int = 0,
    dual: bool = False,
    dual_order: int = 0,
    progress: bool = False,
    desc: str = "SVM cross-validation",
) -> tuple[float, float]:
    """Mean and std (percent) of the 10 outer-fold accuracies of a grid-searched LinearSVC.

    As the official code (``docs/methods/mvgrl.md``): raw embeddings, stratified outer folds (``seed``),
    ``GridSearchCV(LinearSVC)`` over ``C`` in 1e-3..1e3 with 5 inner folds. One deviation: the
    SVM is solved in the primal (liblinear's trust-region Newton method, the same L2-regularised
    squared-hinge objective as the default dual solver). The dual coordinate descent often stops
    at ``max_iter`` for large ``C`` and its answer then moves by a point or more with its random
    coordinate order; the primal solver has no random order, so the same embeddings always
    score the same (it too can stop at ``max_iter`` for the largest ``C`` on raw features, with
    a ``ConvergenceWarning``, but deterministically).

    ``dual=True`` uses the official default solver instead, with ``dual_order`` seeding its
    coordinate order (``benchmarks/graph_svm_solvers.py`` compares the two).

    ``progress`` shows a bar over the outer folds (``desc``): one search takes minutes on
    IMDB-BINARY-sized sets. The ``ConvergenceWarning`` of fits that stop at ``max_iter`` is
    silenced: stopping there is part of the protocol (``max_iter=1000`` as the official code),
    and on IMDB-BINARY it fires for most ``C >= 10`` fits, hundreds of lines per search.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import LinearSVC

    x, y = embeddings.numpy().astype(np.float64), labels.numpy()
    outer = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    grid = {"C": [1e-3, 1e-2, 1e-1, 1, 10, 100, 1000]}
    accs = []
    splits = tqdm(
        outer.split(x, y), desc=desc, total=folds, disable=not progress, leave=False, unit="fold", mininterval=0
    )
    with warnings.catch_warnings():  # scikit-learn hands the filter on to its worker processes
        warnings.simplefilter("ignore", ConvergenceWarning)
        for train, test in splits:
            model = LinearSVC(dual=dual, max_iter=1000, random_state=dual_order if dual else None)
            search = GridSearchCV(model, grid, cv=5, n_jobs=-1)  # liblinear is single-threaded: one fit per core
            search.fit(x[train], y[train])
            accs.append(float((search.predict(x[test]) == y[test]).mean() * 100))
    return statistics.mean(accs), statistics.pstdev(accs)
