"""CrossCLR's objective (crossclr.md): the card's §8 oracles and parity with the released loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from contrastkit.functional.crossclr import anchor_weights, connectivity, crossclr

B, D = 12, 16


def _data(seed=0, b=B):
    g = torch.Generator().manual_seed(seed)
    v, t = torch.randn(b, D, generator=g), torch.randn(b, D, generator=g)
    x, y = torch.rand(b, 20, generator=g), torch.rand(b, 10, generator=g)  # non-negative inputs, as the code expects
    return v, t, x, y


def released_noq(v, t, x, y, tau=0.03, tau_w=0.0035, lam=0.8, gamma=0.7):
    """The released ``CrossCLR_noq.forward`` step by step on CPU (sorting, masks and loops as
    released, no logger), as the reference the library's ``mode="official"`` must equal."""
    v, t = F.normalize(v, dim=1), F.normalize(t, dim=1)
    b = v.shape[0]
    vt, tv, vv, tt = v @ t.t() / tau, t @ v.t() / tau, v @ v.t() / tau, t @ t.t() / tau
    off = 1 - torch.eye(b, dtype=torch.float64)
    avg_v, avg_t = ((x @ x.t()) * off).mean(1), ((y @ y.t()) * off).mean(1)
    sv, iv = torch.sort(avg_v)
    st, it = torch.sort(avg_t)
    sv, st = sv / sv.max(), st / st.max()
    neg_v, neg_t = (vv * off)[:, iv[sv < gamma]], (tt * off)[:, it[st < gamma]]
    mask_v, mask_t = torch.ones_like(vt), torch.ones_like(tv)
    mask_v[:, iv[sv > gamma]] = 0
    mask_t[:, it[st > gamma]] = 0
    for i in range(b):
        mask_v[i, i] = 1
        mask_t[i, i] = 1
    logits_v = torch.cat([vt * mask_v, lam * neg_v], 1)
    logits_t = torch.cat([tv * mask_t, lam * neg_t], 1)
    pos_v = torch.cat([torch.eye(b, dtype=torch.float64), torch.zeros_like(neg_v)], 1)
    pos_t = torch.cat([torch.eye(b, dtype=torch.float64), torch.zeros_like(neg_t)], 1)
    loss_v = -torch.log((F.softmax(logits_v, 1) * pos_v).sum(1))
    loss_t = -torch.log((F.softmax(logits_t, 1) * pos_t).sum(1))
    w_v, w_t = torch.exp(avg_v / avg_v.sum() / tau_w), torch.exp(avg_t / avg_t.sum() / tau_w)
    return ((loss_v * w_v).sum() / w_v.sum() + (loss_t * w_t).sum() / w_t.sum()) / 2


def symmetric_infonce(v, t, tau=0.03):
    logits = F.normalize(v, dim=1) @ F.normalize(t, dim=1).t() / tau
    target = torch.arange(len(v))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def test_official_mode_equals_the_released_loss():
    for seed in range(4):
        v, t, x, y = (a.double() for a in _data(seed))
        ours = crossclr(v, t, x, y, mode="official")
        assert torch.allclose(ours, released_noq(v, t, x, y), rtol=1e-9, atol=1e-9)
    v, t, x, y = (a.double() for a in _data(7))
    assert torch.allclose(
        crossclr(v, t, x, y, mode="official", prune_threshold=0.9, intra_weight=0.5),
        released_noq(v, t, x, y, gamma=0.9, lam=0.5),
    )


def test_oracle1_paper_form_without_intra_pruning_and_weights_is_symmetric_infonce():
    v, t, x, y = _data()
    ours = crossclr(v, t, x, y, intra_weight=0, prune_threshold=math.inf, weight_temperature=math.inf)
    assert torch.allclose(ours, symmetric_infonce(v, t), atol=1e-6)


def test_oracle2_official_without_pruning_and_weights_is_the_intra_only_release():
    v, t, x, y = _data(1)
    official = crossclr(v, t, x, y, mode="official", prune_threshold=1.5, weight_temperature=math.inf)
    assert torch.allclose(official, crossclr(v, t, x, y, mode="intra_only"), atol=1e-7)


def test_oracle3_official_zero_lambda_adds_b_units_to_every_denominator():
    v, t, x, y = _data(2)
    rows = crossclr(v, t, x, y, mode="official", intra_weight=0, prune_threshold=1.5, reduction="none")
    s = F.normalize(v, dim=1) @ F.normalize(t, dim=1).t() / 0.03
    expected = -s.diagonal() + torch.log(torch.exp(s).sum(1) + B)
    assert torch.allclose(rows[0], expected, atol=1e-4)


def test_oracle4_identical_inputs_prune_every_negative_in_the_paper_form():
    v, t, _, _ = _data(3)
    same = torch.rand(1, 20).expand(B, 20)
    for lam in (0.0, 0.8, 2.0):
        rows = crossclr(v, t, same, same, intra_weight=lam, reduction="none")
        assert torch.allclose(rows, torch.zeros_like(rows), atol=1e-6)


def test_oracle5_permuting_the_batch_changes_nothing():
    v, t, x, y = _data(4)
    perm = torch.randperm(B, generator=torch.Generator().manual_seed(0))
    for mode in ("paper", "official", "intra_only"):
        a = crossclr(v, t, x, y, mode=mode)
        b = crossclr(v[perm], t[perm], x[perm], y[perm], mode=mode)
        assert torch.allclose(a, b, atol=1e-6), mode


def test_oracle6_equal_connectivity_gives_equal_weights_and_the_plain_mean():
    assert torch.allclose(anchor_weights(torch.full((B,), 0.3), 0.0035), torch.ones(B))
    v, t, _, _ = _data(5)
    equal = torch.eye(B) + 1  # every pair of rows has the same dot product (B + 2): equal connectivities
    c, _ = connectivity(equal)
    assert torch.allclose(c, c[0].expand(B))
    weighted = crossclr(v, t, equal, equal, prune_threshold=2.0)
    rows = crossclr(v, t, equal, equal, prune_threshold=2.0, reduction="none")
    assert torch.allclose(weighted, rows.mean(), atol=1e-6)


@pytest.mark.parametrize("kind", ["dot", "cosine"])
def test_connectivity_is_the_mean_similarity_to_the_other_rows(kind):
    x = torch.rand(B, 12, dtype=torch.float64)
    z = F.normalize(x, dim=1) if kind == "cosine" else x
    loop = torch.stack([sum(z[i] @ z[j] for j in range(B) if j != i) / B for i in range(B)])
    c, cn = connectivity(x, kind)
    if kind == "dot":
        assert torch.allclose(c, loop) and torch.allclose(cn, loop / loop.max())
    else:
        assert torch.allclose(cn, (loop - loop.min()) / (loop.max() - loop.min()))


def test_the_self_similarity_product_has_the_gradient_of_a_matmul():
    from contrastkit.functional.crossclr import _SelfSimilarity

    a = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_SelfSimilarity.apply, (a,))
    weights = torch.randn(7, 7, dtype=torch.float64)  # an asymmetric upstream gradient
    (grad,) = torch.autograd.grad((_SelfSimilarity.apply(a) * weights).sum(), a)
    (expected,) = torch.autograd.grad((a @ a.t() * weights).sum(), a)
    assert torch.allclose(grad, expected)


def test_weights_fall_back_to_uniform_with_a_warning_when_connectivities_sum_to_zero_or_less():
    with pytest.warns(UserWarning, match="uniform weights"):
        w = anchor_weights(torch.tensor([-0.2, 0.1, 0.05]), 0.0035)
    assert torch.equal(w, torch.ones(3))


def test_oracle7_no_gradient_reaches_the_inputs():
    v, t, x, y = _data(6)
    v.requires_grad_(True)
    x.requires_grad_(True)
    crossclr(v, t, x, y).backward()
    assert x.grad is None and v.grad is not None and v.grad.abs().sum() > 0


def test_oracle8_swapping_the_modalities_gives_the_same_loss():
    v, t, x, y = _data(8)
    for mode in ("paper", "official"):
        assert torch.allclose(crossclr(v, t, x, y, mode=mode), crossclr(t, v, y, x, mode=mode), atol=1e-6)


def test_boundary_a_sample_at_gamma_leaves_intra_but_stays_in_cross():
    """gamma = 1: the most connected sample (cn = 1) leaves the intra block (kept only when
    cn < gamma) but stays a cross negative (pruned only when cn > gamma)."""
    v, t, x, y = (a.double() for a in _data(9))
    _, cn = connectivity(x)
    top = int(cn.argmax())
    rows = crossclr(v, t, x, y, mode="official", prune_threshold=1.0, reduction="none")[0]
    vn, tn = F.normalize(v, dim=1), F.normalize(t, dim=1)
    cross, intra = vn @ tn.t() / 0.03, 0.8 * (vn @ vn.t() / 0.03).fill_diagonal_(0)
    keep = torch.ones(B, dtype=torch.bool)
    keep[top] = False
    expected = torch.logsumexp(torch.cat([cross, intra[:, keep]], 1), 1) - cross.diagonal()
    assert torch.allclose(rows, expected)
    assert torch.allclose(
        crossclr(v, t, x, y, mode="official", prune_threshold=1.0), released_noq(v, t, x, y, gamma=1.0)
    )


def test_cosine_connectivity_is_min_max_normalised_and_mixed_sign_inputs_are_safe():
    x = torch.randn(B, 20)
    c, cn = connectivity(x, "cosine")
    assert torch.equal(c, cn) and float(cn.min()) == 0.0 and float(cn.max()) == pytest.approx(1.0)
    v, t, _, _ = _data(10)
    assert torch.isfinite(crossclr(v, t, x, x, connectivity_kind="cosine"))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_finite_in_low_precision(dtype):
    v, t, x, y = _data(11, b=64)
    for mode in ("paper", "official", "intra_only"):
        loss = crossclr(v.to(dtype), t.to(dtype), x.to(dtype), y.to(dtype), mode=mode)
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
        assert torch.allclose(loss, crossclr(v, t, x, y, mode=mode), rtol=0.05)


def test_bad_arguments_are_refused():
    v, t, x, y = _data()
    with pytest.raises(ValueError, match="mode"):
        crossclr(v, t, x, y, mode="queue")
    with pytest.raises(ValueError, match="one row per pair"):
        crossclr(v, t, x[:5], y)
    with pytest.raises(ValueError, match="connectivity"):
        crossclr(v, t, x, y, connectivity_kind="l1")


def test_everything_pruned_leaves_the_positive_alone_with_finite_gradients():
    v, t, x, y = _data(12)
    v.requires_grad_(True)
    loss = crossclr(v, t, x, y, prune_threshold=0.0)  # every other sample influential: nothing to push
    loss.backward()
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-6) and torch.isfinite(v.grad).all()
