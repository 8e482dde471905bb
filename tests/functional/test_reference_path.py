"""The readable reference path of ``info_nce``: in-batch plus extra negative groups, per-group
similarity factors (VideoMoCo's decay), per-row weights and masks, and the fused CPU kernel
tested equal to it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from contrastkit.functional import info_nce, reduce_rows
from contrastkit.memory import Queue
from tests.reference import anchor_loss

HCL_SETTINGS = [(0.0, 0.0), (1.0, 0.1), (0.5, 0.0), (2.0, 0.5)]


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def loop_general(q, k, groups, factors, in_batch, t, beta=0.0, tau_plus=0.0):
    """One anchor at a time: negatives are ``factor * cos`` similarities; a factor is applied
    by scaling the similarity, which ``anchor_loss`` takes as ``q . v`` of unit vectors, so the
    factored negative is the vector ``factor * unit(v)``."""
    rows = []
    for b in range(q.shape[0]):
        qb, kb = _unit(q[b].double()), _unit(k[b].double())
        negs = [_unit(k[j].double()) for j in range(q.shape[0]) if j != b] if in_batch else []
        for g, group in enumerate(groups):
            vectors = group if group.dim() == 2 else group[b]
            for j in range(vectors.shape[0]):
                f = 1.0
                if factors and factors[g] is not None:
                    f = float(factors[g][j] if factors[g].dim() == 1 else factors[g][b, j])
                negs.append(f * _unit(vectors[j].double()))
        rows.append(anchor_loss(qb, kb, negs, t, beta, tau_plus))
    return torch.stack(rows)


@pytest.mark.parametrize("beta,tau_plus", HCL_SETTINGS)
@pytest.mark.parametrize("case", ["queue", "in_batch", "in_batch+hard", "queue+per_anchor", "in_batch+queue"])
def test_fused_kernel_equals_reference_path(beta, tau_plus, case):
    b, d = 6, 5
    q = torch.randn(b, d, dtype=torch.float64, requires_grad=True)
    k = torch.randn(b, d, dtype=torch.float64, requires_grad=True)
    queue, hard = torch.randn(13, d, dtype=torch.float64), torch.randn(b, 1, d, dtype=torch.float64)
    negatives, in_batch = {
        "queue": ([queue], False),
        "in_batch": (None, True),
        "in_batch+hard": ([hard], True),
        "queue+per_anchor": ([queue, hard], False),
        "in_batch+queue": ([queue], True),
    }[case]
    kw = dict(in_batch=in_batch, temperature=0.2, beta=beta, tau_plus=tau_plus)
    fast = info_nce(q, k, negatives, fused=True, **kw)
    slow = info_nce(q, k, negatives, fused=False, **kw)
    torch.testing.assert_close(fast, slow)
    for a, r in zip(torch.autograd.grad(fast, [q, k]), torch.autograd.grad(slow, [q, k])):
        torch.testing.assert_close(a, r)
    ref = loop_general(q, k, negatives or [], None, in_batch, 0.2, beta, tau_plus).mean()
    torch.testing.assert_close(slow, ref)


@pytest.mark.parametrize("beta,tau_plus", HCL_SETTINGS)
def test_in_batch_plus_one_hard_negative_per_anchor_matches_loop(beta, tau_plus):
    """Long/short views: the other rows' positives and one per-anchor hard negative at once."""
    q = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    k = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    hard = torch.randn(5, 1, 4, dtype=torch.float64, requires_grad=True)
    ours = info_nce(q, k, hard, in_batch=True, temperature=0.3, beta=beta, tau_plus=tau_plus, reduction="none")
    ref = loop_general(q, k, [hard], None, True, 0.3, beta, tau_plus)
    torch.testing.assert_close(ours, ref)
    for a, r in zip(torch.autograd.grad(ours.sum(), [q, k, hard]), torch.autograd.grad(ref.sum(), [q, k, hard])):
        torch.testing.assert_close(a, r)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("factor_shape", ["column", "row_column"])
def test_negative_factors_scale_similarities_as_the_loop(reduction, factor_shape):
    b, d, kq = 4, 6, 9
    q = torch.randn(b, d, dtype=torch.float64, requires_grad=True)
    k = torch.randn(b, d, dtype=torch.float64)
    queue = torch.randn(kq, d, dtype=torch.float64) * 3  # not unit: normalised inside
    factor = torch.rand(kq, dtype=torch.float64) if factor_shape == "column" else torch.rand(b, kq).double()
    ours = info_nce(q, k, queue, negative_factors=factor, temperature=0.1, reduction=reduction)
    rows = loop_general(q, k, [queue], [factor], False, 0.1)
    ref = rows if reduction == "none" else rows.mean()
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(torch.autograd.grad(ours.sum(), q)[0], torch.autograd.grad(ref.sum(), q)[0])


def test_temporal_decay_of_one_or_age_zero_is_moco_and_is_not_undone_by_normalisation():
    """videomoco.md oracle 1 (t = 1 or all ages 0 gives MoCo's logits) and pitfall 1: the decay
    scales q.Q of unit vectors; decaying the stored keys instead is undone by normalisation."""
    q, k = torch.randn(8, 16), torch.randn(8, 16)
    queue = Queue(64, 16)
    moco = info_nce(q, k, queue.keys, temperature=0.07)
    assert queue.age().eq(0).all()
    for factors in (0.99 ** queue.age().float(), torch.ones(64)):
        torch.testing.assert_close(info_nce(q, k, queue.keys, negative_factors=factors, temperature=0.07), moco)
    queue.enqueue(torch.randn(8, 16))
    queue.enqueue(torch.randn(8, 16))
    decay = 0.5 ** queue.age().float()
    decayed = info_nce(q, k, queue.keys, negative_factors=decay, temperature=0.07)
    keys_scaled = info_nce(q, k, queue.keys * decay[:, None], temperature=0.07)
    plain = info_nce(q, k, queue.keys, temperature=0.07)
    torch.testing.assert_close(keys_scaled, plain)
    assert not torch.allclose(decayed, plain)
    # by hand: CE([q.k, t^age q.Q] / tau, 0)
    qn, kn, qq = F.normalize(q, dim=1), F.normalize(k, dim=1), F.normalize(queue.keys, dim=1)
    logits = torch.cat([(qn * kn).sum(1, keepdim=True), (qn @ qq.t()) * decay], dim=1) / 0.07
    torch.testing.assert_close(decayed, F.cross_entropy(logits, torch.zeros(8, dtype=torch.long)))


@pytest.mark.parametrize("beta,tau_plus", [(0.0, 0.0), (1.0, 0.1)])
def test_weights_and_mask_reduce_rows_like_a_weighted_mean(beta, tau_plus):
    q = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    k = torch.randn(6, 5, dtype=torch.float64)
    w = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.0, 4.0], dtype=torch.float64)
    m = torch.tensor([True, True, False, True, True, False])
    kw = dict(temperature=0.2, beta=beta, tau_plus=tau_plus)
    rows = info_nce(q, k, reduction="none", **kw)
    expected = (rows * w * m).sum() / (w * m).sum()
    torch.testing.assert_close(info_nce(q, k, weights=w, mask=m, **kw), expected)
    torch.testing.assert_close(info_nce(q, k, weights=w, mask=m, reduction="sum", **kw), (rows * w * m).sum())
    torch.testing.assert_close(info_nce(q, k, weights=w, mask=m, reduction="none", **kw), rows * w * m)
    torch.testing.assert_close(info_nce(q, k, mask=m, **kw), rows[m].mean())
    # a dropped anchor gets no gradient; a kept one does
    grad = torch.autograd.grad(info_nce(q, k, mask=m, weights=w, **kw), q)[0]
    assert grad[~m].abs().sum() == 0 and (grad[m].abs().sum(1) > 0).all()


def test_reduce_rows_keeps_non_finite_dropped_rows_out_and_handles_no_kept_row():
    rows = torch.tensor([1.0, float("nan"), 3.0], requires_grad=True)
    kept = torch.tensor([True, False, True])
    out = reduce_rows(rows, mask=kept)
    torch.testing.assert_close(out, torch.tensor(2.0))
    out.backward()
    assert torch.isfinite(rows.grad).all()
    none_kept = reduce_rows(torch.tensor([1.0, 2.0]), mask=torch.tensor([False, False]))
    assert float(none_kept) == 0.0
    torch.testing.assert_close(
        reduce_rows(torch.tensor([1.0, 2.0, 9.0]), weights=torch.tensor([1.0, 3.0, 0.0])), torch.tensor(1.75)
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("temperature", [0.01, 1.0])
def test_factors_weights_and_masks_are_finite_in_low_precision(dtype, temperature):
    q, k = torch.randn(8, 16, dtype=dtype) * 30, torch.randn(8, 16, dtype=dtype) * 30
    queue = torch.randn(32, 16, dtype=dtype)
    loss = info_nce(
        q,
        k,
        [queue, torch.randn(8, 1, 16, dtype=dtype)],
        in_batch=True,
        negative_factors=[torch.linspace(0.5, 1, 32, dtype=dtype), None],
        weights=torch.rand(8),
        mask=torch.arange(8) % 3 != 0,
        temperature=temperature,
        beta=1.0,
        tau_plus=0.1,
    )
    assert torch.isfinite(loss) and loss.dtype == torch.float32


def test_argument_errors_name_what_was_seen():
    q, k, queue = torch.randn(4, 3), torch.randn(4, 3), torch.randn(7, 3)
    with pytest.raises(ValueError, match=r"negative_factors must have shape \[7\] or \[4, 7\]"):
        info_nce(q, k, queue, negative_factors=torch.ones(6))
    with pytest.raises(ValueError, match="negative_factors has 2 entries but negatives has 1"):
        info_nce(q, k, [queue], negative_factors=[None, None])
    with pytest.raises(ValueError, match="negative_factors needs negatives"):
        info_nce(q, k, negative_factors=torch.ones(3))
    with pytest.raises(ValueError, match=r"weights must be a floating-point tensor of shape \[4\]"):
        info_nce(q, k, weights=torch.ones(3))
    with pytest.raises(ValueError, match="weights must be >= 0"):
        info_nce(q, k, weights=-torch.ones(4))
    with pytest.raises(ValueError, match=r"mask must be a bool tensor of shape \[4\]"):
        info_nce(q, k, mask=torch.ones(4))
    with pytest.raises(ValueError, match="in_batch=False needs negatives"):
        info_nce(q, k, in_batch=False)
    with pytest.raises(ValueError, match="fused=True needs plain inputs"):
        info_nce(q, k, queue, weights=torch.ones(4), fused=True)
    assert math.isfinite(float(info_nce(q, k, queue, in_batch=True)))
