"""The batched node-classification protocol equals separate logistic regressions."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from contrastkit.evaluation.graph import node_classification, svm_graph_classification


def _one_by_one(x, y, train, test, repeats, seed, steps=300, lr=0.01):  # type: ignore[no-untyped-def]
    classes, dim = int(y.max()) + 1, x.shape[1]
    g = torch.Generator().manual_seed(seed)
    bound = (6.0 / (dim + classes)) ** 0.5
    accs = []
    for _ in range(repeats):
        head = torch.nn.Linear(dim, classes)
        with torch.no_grad():
            head.weight.copy_(torch.empty(classes, dim).uniform_(-bound, bound, generator=g))
            head.bias.zero_()
        opt = torch.optim.Adam(head.parameters(), lr=lr)
        for _ in range(steps):
            loss = F.cross_entropy(head(x[train]), y[train])
            opt.zero_grad()
            loss.backward()
            opt.step()
        accs.append(float((head(x[test]).argmax(1) == y[test]).float().mean() * 100))
    return accs


def test_batched_repeats_match_separate_runs() -> None:
    torch.manual_seed(0)
    n, d = 300, 16
    y = torch.randint(0, 4, (n,))
    x = torch.randn(n, d)
    x[torch.arange(n), y] += 1.0
    train = torch.zeros(n, dtype=torch.bool)
    train[:60] = True
    accs = _one_by_one(x, y, train, ~train, repeats=4, seed=5, steps=50)
    mean, std = node_classification(x, y, train, ~train, repeats=4, seed=5, steps=50)
    assert abs(mean - sum(accs) / 4) < 1e-4
    assert 25.0 < mean <= 100.0  # better than chance on separable data
    assert std >= 0.0


def test_svm_protocol_separates_separable_graph_embeddings() -> None:
    from contrastkit.evaluation.graph import svm_graph_classification

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(120) % 2
    emb = torch.randn(120, 8, generator=g)
    emb[:, 0] += 4.0 * (2 * labels - 1)
    mean, std = svm_graph_classification(emb, labels, seed=0)
    assert mean > 95.0
    shuffled, _ = svm_graph_classification(emb, labels[torch.randperm(120, generator=g)], seed=0)
    assert shuffled < 75.0  # random labels are not learnable


def test_svm_protocol_is_deterministic() -> None:
    """Same embeddings, same score: seeded folds and a primal solver with no random coordinate order."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 16, generator=g)
    y = (x[:, 0] + 0.8 * torch.randn(60, generator=g) > 0).long()
    first = svm_graph_classification(x, y, seed=3)
    assert svm_graph_classification(x, y, seed=3) == first


def test_official_dual_solver_option_separates_and_repeats_per_order() -> None:
    """``dual=True`` (the official default solver) learns separable data, and a fixed coordinate
    order gives a fixed score."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(120) % 2
    emb = torch.randn(120, 8, generator=g)
    emb[:, 0] += 4.0 * (2 * labels - 1)
    mean, _ = svm_graph_classification(emb, labels, seed=0, dual=True, dual_order=1)
    assert mean > 95.0
    assert svm_graph_classification(emb, labels, seed=0, dual=True, dual_order=1)[0] == mean


def test_svm_progress_bar_counts_the_outer_folds(capsys: pytest.CaptureFixture[str]) -> None:
    """``progress=True`` shows one bar over the folds (a search takes minutes on IMDB-BINARY);
    the default stays silent and the score does not depend on it."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 4, generator=g)
    y = (x[:, 0] > 0).long()
    quiet = svm_graph_classification(x, y, seed=1, folds=5)
    assert capsys.readouterr().err == ""
    assert svm_graph_classification(x, y, seed=1, folds=5, progress=True, desc="trained: SVM") == quiet
    err = capsys.readouterr().err
    assert "trained: SVM" in err and "5/5" in err


def test_svm_search_does_not_flood_the_log_with_convergence_warnings(capfd: pytest.CaptureFixture[str]) -> None:
    """Heavy-tailed features make the largest-C fits stop at max_iter (as IMDB-BINARY's raw
    embeddings do); the worker processes must not print a ConvergenceWarning for each."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(np.exp(3 * rng.standard_normal((120, 64))))
    y = torch.from_numpy(rng.integers(0, 2, 120))
    svm_graph_classification(x, y, seed=0, folds=3)
    out = capfd.readouterr()
    assert "ConvergenceWarning" not in out.err + out.out


def test_svm_search_sees_only_the_outer_training_fold(monkeypatch):
    """The C grid search is fitted on each outer fold's training rows only, and the fold's test
    rows are only predicted: fitting on all rows would leak the test fold into the choice of C."""
    import sklearn.model_selection as selection

    from contrastkit.evaluation.graph import svm_graph_classification

    fits, predictions = [], []

    class Recording(selection.GridSearchCV):
        def fit(self, X, y=None, **kw):
            fits.append(set(X[:, 0].astype(int).tolist()))
            return super().fit(X, y, **kw)

        def predict(self, X):
            predictions.append(set(X[:, 0].astype(int).tolist()))
            return super().predict(X)

    monkeypatch.setattr(selection, "GridSearchCV", Recording)
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 2
    emb = torch.cat([torch.arange(60.0)[:, None], labels[:, None] * 3.0 + torch.randn(60, 3, generator=g)], dim=1)
    svm_graph_classification(emb, labels, folds=5, seed=0)
    assert len(fits) == len(predictions) == 5
    for trained, tested in zip(fits, predictions):
        assert not trained & tested and trained | tested == set(range(60))
