import pytest
import torch

from contrastkit.evaluation.knn import knn_accuracy
from contrastkit.evaluation.low_label import few_label_key, few_label_knn, stratified_label_subset


def _labels() -> torch.Tensor:
    return torch.tensor([0] * 50 + [1] * 30 + [2] * 3)


def test_subset_keeps_the_fraction_of_every_class_and_at_least_one():
    labels = _labels()
    idx = stratified_label_subset(labels, 0.1, torch.Generator().manual_seed(0))
    counts = torch.bincount(labels[idx], minlength=3).tolist()
    assert counts == [5, 3, 1]  # round(5.0), round(3.0), max(1, round(0.3))
    assert idx.unique().numel() == idx.numel()


def test_subsets_differ_between_draws_and_repeat_with_the_seed():
    labels = _labels()
    g = torch.Generator().manual_seed(3)
    first, second = stratified_label_subset(labels, 0.2, g), stratified_label_subset(labels, 0.2, g)
    assert not torch.equal(first, second)
    again = stratified_label_subset(labels, 0.2, torch.Generator().manual_seed(3))
    assert torch.equal(first, again)


def test_few_label_knn_is_the_mean_of_knn_on_each_draw():
    torch.manual_seed(0)
    labels = _labels()
    train = torch.randn(83, 8) + labels[:, None].float()
    test_labels = torch.tensor([0, 1, 2] * 10)
    test = torch.randn(30, 8) + test_labels[:, None].float()
    mean, std = few_label_knn(train, labels, test, test_labels, 3, 0.1, draws=4, k=5, seed=7)
    g = torch.Generator().manual_seed(7)
    manual = []
    for _ in range(4):
        idx = stratified_label_subset(labels, 0.1, g)
        manual.append(knn_accuracy(train[idx], labels[idx], test, test_labels, 3, 5))
    assert mean == pytest.approx(sum(manual) / 4)
    assert std == pytest.approx(torch.tensor(manual).std().item())


def test_separable_features_score_perfectly_with_one_label_per_class():
    labels = torch.arange(4).repeat_interleave(20)
    train = torch.nn.functional.one_hot(labels, 4).float() + 0.01 * torch.randn(80, 4)
    mean, std = few_label_knn(train, labels, train, labels, 4, 0.01, draws=3, k=200)
    assert (mean, std) == (100.0, 0.0)


def test_bad_arguments_and_keys():
    with pytest.raises(ValueError, match="fraction"):
        stratified_label_subset(_labels(), 0.0, torch.Generator())
    with pytest.raises(ValueError, match="draws"):
        few_label_knn(
            torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), torch.zeros(1, 2), torch.zeros(1), 1, 0.5, draws=0
        )
    assert few_label_key(0.01) == "knn_top1_1pct_labels"
    assert few_label_key(0.1) == "knn_top1_10pct_labels"
    assert few_label_key(0.005) == "knn_top1_0p5pct_labels"
