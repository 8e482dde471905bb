"""MI estimators against brute force and the card's identities (mvgrl.md §2, §9)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from contrastkit.functional.mutual_information import jsd_mutual_information, local_global_loss, mi_loss


def test_jsd_equals_the_bce_form_with_equal_counts():
    pos, neg = torch.randn(50), torch.randn(50)
    bce = F.binary_cross_entropy_with_logits(torch.cat([pos, neg]), torch.cat([torch.ones(50), torch.zeros(50)]))
    torch.testing.assert_close(bce, math.log(2) - jsd_mutual_information(pos, neg) / 2)


def test_jsd_against_a_loop():
    pos, neg = torch.randn(7), torch.randn(7, 5)
    e_pos = sum(math.log(2) - math.log1p(math.exp(-float(p))) for p in pos) / 7
    e_neg = sum(math.log1p(math.exp(float(n))) - math.log(2) for n in neg.flatten()) / 35
    torch.testing.assert_close(jsd_mutual_information(pos, neg), torch.tensor(e_pos - e_neg))


def test_hard_negative_weights_have_mean_one_and_tilt_to_hard_ones():
    pos, neg = torch.zeros(3), torch.tensor([[0.0, 1.0, 2.0]] * 3)
    plain = mi_loss(pos, neg)
    hard = mi_loss(pos, neg, beta=2.0)
    assert hard > plain  # more weight on the high-scoring (hard) negatives
    torch.testing.assert_close(mi_loss(pos, neg, beta=0.0), plain)


def test_infonce_against_cross_entropy():
    pos, neg = torch.randn(6), torch.randn(6, 4)
    expected = F.cross_entropy(torch.cat([pos[:, None], neg], 1), torch.zeros(6, dtype=torch.long))
    torch.testing.assert_close(mi_loss(pos, neg, estimator="infonce"), expected)


def test_local_global_against_a_loop():
    nodes, graphs = torch.randn(9, 4), torch.randn(3, 4)
    owner = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    pos, neg = [], []
    for i in range(9):
        for g in range(3):
            (pos if owner[i] == g else neg).append(float(nodes[i] @ graphs[g]))
    e_pos = sum(math.log(2) - math.log1p(math.exp(-p)) for p in pos) / len(pos)
    e_neg = sum(math.log1p(math.exp(n)) - math.log(2) for n in neg) / len(neg)
    torch.testing.assert_close(local_global_loss(nodes, graphs, owner), torch.tensor(-(e_pos - e_neg)))
    assert torch.isfinite(local_global_loss(nodes, graphs, owner, estimator="infonce", beta=1.0))


def test_bad_estimator():
    with pytest.raises(ValueError, match="estimator"):
        mi_loss(torch.zeros(2), torch.zeros(2, 2), estimator="dv")
