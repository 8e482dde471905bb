"""CCL's objectives (ccl.md §2): card §8 oracles 1-4, 6, 8 and a loop transcription of the code's NCE."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from contrastkit.functional.class_contrastive import class_contrastive, symmetric_class_contrastive, symmetric_kl


def loop_nce(f1, f2, labels, tau):
    """The official NCE row by row: cosine as 1 - ||a - b||^2 / 2, 1e-10 inside the logs."""
    a, b = F.normalize(f1.double(), dim=1), F.normalize(f2.double(), dim=1)
    n = len(labels)
    total = 0.0
    for i in range(n):
        c = torch.stack([1 - (a[i] - b[j]).pow(2).sum() / 2 for j in range(n)])
        p = torch.softmax(c / tau, 0)
        pos = [j for j in range(n) if labels[j] == labels[i]]
        neg = [j for j in range(n) if labels[j] != labels[i]]
        total += float(sum(-torch.log(p[j] + 1e-10) for j in pos) / len(pos))
        total += float(sum(-torch.log(1 - p[j] + 1e-10) for j in neg) / len(neg))
    return total / n


def test_equals_the_official_form_computed_in_a_loop():
    g = torch.Generator().manual_seed(0)
    f1, f2 = torch.randn(10, 6, generator=g), torch.randn(10, 6, generator=g)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 3, 3, 0, 4])
    for tau in (0.1, 0.5):  # the code's 1e-10 inside the logs moves tiny probabilities: agreement to 1e-4
        ours = float(class_contrastive(f1.double(), f2.double(), labels, tau))
        assert ours == pytest.approx(loop_nce(f1, f2, labels, tau), rel=1e-4)


def test_oracle1_identical_features_one_per_class_at_low_temperature_cost_nothing():
    f = F.normalize(torch.randn(6, 16), dim=1)
    f = torch.linalg.qr(torch.randn(16, 16))[0][:6]  # orthonormal rows
    assert float(class_contrastive(f, f, torch.arange(6), 0.005)) < 1e-6


def test_oracle2_equal_similarities_give_log_b_plus_the_negative_term():
    b = 8
    same = torch.ones(b, 4)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    expected = math.log(b) - math.log(1 - 1 / b)
    assert float(class_contrastive(same, same, labels, 0.3)) == pytest.approx(expected, rel=1e-6)


def test_oracle3_cosine_from_the_distance_is_the_dot_product_of_unit_vectors():
    a, b = F.normalize(torch.randn(5, 7).double(), dim=1), F.normalize(torch.randn(5, 7).double(), dim=1)
    assert torch.allclose(1 - (a - b).pow(2).sum(1) / 2, (a * b).sum(1), atol=1e-12)


def test_oracle4_symmetric_kl_is_zero_on_itself_symmetric_and_non_negative():
    o1, o2 = torch.randn(6, 5), torch.randn(6, 5)
    assert float(symmetric_kl(o1, o1)) == pytest.approx(0.0, abs=1e-7)
    assert torch.allclose(symmetric_kl(o1, o2), symmetric_kl(o2, o1))
    assert float(symmetric_kl(o1, o2)) > 0
    p, q = torch.softmax(o1, 1), torch.softmax(o2, 1)
    brute = 0.5 * ((p * (p / q).log()).sum(1) + (q * (q / p).log()).sum(1)).mean()
    assert torch.allclose(symmetric_kl(o1, o2), brute, atol=1e-6)


def test_oracle6_masked_rows_leave_rows_and_columns_alike():
    g = torch.Generator().manual_seed(1)
    f1, f2 = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    keep = torch.tensor([True, True, False, True, True, False, True, True])
    masked = class_contrastive(f1, f2, labels, 0.5, mask=keep)
    assert torch.allclose(masked, class_contrastive(f1[keep], f2[keep], labels[keep], 0.5), atol=1e-6)
    rows = class_contrastive(f1, f2, labels, 0.5, mask=keep, reduction="none")
    assert (rows[~keep] == 0).all() and (rows[keep] > 0).all()


def test_oracle8_snce_is_symmetric_and_a_row_without_negatives_stays_finite():
    g = torch.Generator().manual_seed(2)
    f1, f2 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert torch.allclose(symmetric_class_contrastive(f1, f2, labels), symmetric_class_contrastive(f2, f1, labels))
    one_class = class_contrastive(f1, f2, torch.zeros(6, dtype=torch.long), 0.1)  # no negatives anywhere
    assert torch.isfinite(one_class)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_finite_in_low_precision(dtype):
    f1, f2 = torch.randn(32, 16), torch.randn(32, 16)
    labels = torch.arange(32) % 5
    loss = class_contrastive(f1.to(dtype), f2.to(dtype), labels, 0.1)
    assert torch.isfinite(loss) and torch.allclose(loss, class_contrastive(f1, f2, labels, 0.1), rtol=0.02)
