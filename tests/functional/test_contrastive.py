"""info_nce and nt_xent against brute-force loops and the oracles of moco.md / hcl.md."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from contrastkit.functional import info_nce, nt_xent
from contrastkit.functional._kernel import ObjectiveConfig
from contrastkit.functional.contrastive import estimator_loss
from tests.reference import loop_info_nce, loop_nt_xent

HCL_SETTINGS = [(0.0, 0.0), (0.0, 0.1), (0.5, 0.0), (1.0, 0.1), (2.0, 0.5), (6.0, 0.9)]


def _grads(loss: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, inputs))


@pytest.mark.parametrize("beta,tau_plus", HCL_SETTINGS)
@pytest.mark.parametrize("negatives", ["queue", "per_anchor", "queue+per_anchor", "in_batch"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_info_nce_matches_loop_reference(beta, tau_plus, negatives, reduction):
    b, k, d, t = 5, 11, 6, 0.2
    q = torch.randn(b, d, dtype=torch.float64, requires_grad=True)
    pos = torch.randn(b, d, dtype=torch.float64, requires_grad=True)
    groups = {
        "queue": [torch.randn(k, d, dtype=torch.float64)],
        "per_anchor": [torch.randn(b, 3, d, dtype=torch.float64)],
        "queue+per_anchor": [torch.randn(k, d, dtype=torch.float64), torch.randn(b, 3, d, dtype=torch.float64)],
        "in_batch": None,
    }[negatives]
    ours = info_nce(q, pos, groups, temperature=t, beta=beta, tau_plus=tau_plus, reduction=reduction)
    ref_rows = loop_info_nce(q, pos, groups, temperature=t, beta=beta, tau_plus=tau_plus)
    ref = ref_rows if reduction == "none" else ref_rows.mean()
    torch.testing.assert_close(ours, ref)
    for g_ours, g_ref in zip(_grads(ours.sum(), [q, pos]), _grads(ref.sum(), [q, pos])):
        torch.testing.assert_close(g_ours, g_ref)


@pytest.mark.parametrize("beta,tau_plus", HCL_SETTINGS)
def test_gradient_reaches_negatives_that_require_it(beta, tau_plus):
    q = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    pos = torch.randn(4, 5, dtype=torch.float64)
    shared = torch.randn(9, 5, dtype=torch.float64, requires_grad=True)
    per_anchor = torch.randn(4, 3, 5, dtype=torch.float64, requires_grad=True)
    kw = dict(temperature=0.3, beta=beta, tau_plus=tau_plus)
    ours = info_nce(q, pos, [shared, per_anchor], **kw)
    ref = loop_info_nce(q, pos, [shared, per_anchor], **kw).mean()
    for g_ours, g_ref in zip(_grads(ours, [q, shared, per_anchor]), _grads(ref, [q, shared, per_anchor])):
        torch.testing.assert_close(g_ours, g_ref)


@pytest.mark.parametrize("beta,tau_plus", HCL_SETTINGS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nt_xent_matches_loop_reference(beta, tau_plus, reduction):
    z1 = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    ours = nt_xent(z1, z2, temperature=0.5, beta=beta, tau_plus=tau_plus, reduction=reduction)
    rows = loop_nt_xent(z1, z2, temperature=0.5, beta=beta, tau_plus=tau_plus)
    ref = {"mean": rows.mean(), "sum": rows.sum(), "none": rows}[reduction]
    torch.testing.assert_close(ours, ref)
    for g_ours, g_ref in zip(_grads(ours.sum(), [z1, z2]), _grads(ref.sum(), [z1, z2])):
        torch.testing.assert_close(g_ours, g_ref)


@pytest.mark.parametrize("keep_bytes", [0, 1 << 30], ids=["streamed", "kept-tiles"])
@pytest.mark.parametrize("beta, tau_plus", [(0.0, 0.0), (1.0, 0.1), (0.5, 0.0), (2.0, 0.1)])
def test_streamed_queue_spans_several_blocks(monkeypatch, keep_bytes, beta, tau_plus):
    """A queue longer than one cache block gives the same loss and gradient as the loop, whether
    HCL's tiles are kept for the end pass or the gradient is accumulated on the fly; two shared
    queues and a per-anchor group share one workspace."""
    import contrastkit.functional._kernel as kernel

    monkeypatch.setattr(kernel, "_BLOCK_ELEMENTS", 64)
    monkeypatch.setattr(kernel, "_BLOCK_ELEMENTS_GPU", 64)
    monkeypatch.setattr(kernel, "_KEEP_BYTES", keep_bytes)
    q = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    pos = torch.randn(3, 4, dtype=torch.float64)
    queue = torch.randn(1000, 4, dtype=torch.float64) * 3
    per_anchor = F.normalize(torch.randn(3, 7, 4, dtype=torch.float64), dim=-1)
    for negatives in ([queue], [queue, per_anchor, queue[:300] * -2]):
        for _ in range(2):  # the second call reuses the workspace
            if len(negatives) == 1:
                ours = info_nce(q, pos, queue, temperature=0.1, beta=beta, tau_plus=tau_plus)
            else:
                cfg = ObjectiveConfig(0.1, beta, tau_plus)
                qn, pn = F.normalize(q, dim=1), F.normalize(pos, dim=1)
                pos_logits = (qn * pn).sum(1) / 0.1
                ours = estimator_loss(qn, pos_logits, negatives, [()] * 3, cfg, normalize=True, reduction="mean")
            ref = loop_info_nce(q, pos, negatives, temperature=0.1, beta=beta, tau_plus=tau_plus).mean()
            torch.testing.assert_close(ours, ref)
            torch.testing.assert_close(_grads(ours, [q])[0], _grads(ref, [q])[0])


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
def test_in_batch_hcl_workspaces_are_reused_across_sizes(beta):
    """The whole in-batch tile's HCL temporaries live in per-thread workspaces: calls of
    different sizes, one after another, each still match the loop reference."""
    import contrastkit.functional._kernel as kernel

    for n in (7, 3, 7, 11):
        z1 = torch.randn(n, 4, dtype=torch.float64, requires_grad=True)
        z2 = torch.randn(n, 4, dtype=torch.float64, requires_grad=True)
        ours = nt_xent(z1, z2, temperature=0.2, beta=beta, tau_plus=0.1)
        ref = loop_nt_xent(z1, z2, temperature=0.2, beta=beta, tau_plus=0.1).mean()
        torch.testing.assert_close(ours, ref)
        for g_ours, g_ref in zip(_grads(ours, [z1, z2]), _grads(ref, [z1, z2])):
            torch.testing.assert_close(g_ours, g_ref)
    assert kernel._WORKSPACE.buffers["inner"].numel() >= (2 * 11) ** 2


@pytest.mark.parametrize("beta, tau_plus", [(0.0, 0.0), (1.0, 0.1)])
def test_unit_norm_queue_is_used_without_rescaling(monkeypatch, beta, tau_plus):
    """A queue of unit rows (MoCo's) skips the scaled copy and still matches the loop; a queue
    one row of which is off unit norm by more than float32 rounding is rescaled."""
    import contrastkit.functional._kernel as kernel

    monkeypatch.setattr(kernel, "_BLOCK_ELEMENTS", 64)
    q = torch.randn(3, 4, requires_grad=True)
    pos = torch.randn(3, 4)
    unit = F.normalize(torch.randn(500, 4), dim=1)
    assert kernel._inverse_norms_unless_unit(unit) is None
    off = unit.clone()
    off[17] *= 1.001
    assert kernel._inverse_norms_unless_unit(off) is not None
    for queue in (unit, off):
        ours = info_nce(q, pos, queue, temperature=0.1, beta=beta, tau_plus=tau_plus)
        q64 = q.detach().double().requires_grad_()
        ref = loop_info_nce(q64, pos.double(), [queue.double()], temperature=0.1, beta=beta, tau_plus=tau_plus).mean()
        torch.testing.assert_close(ours.double(), ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(_grads(ours, [q])[0].double(), _grads(ref, [q64])[0], rtol=1e-4, atol=1e-6)


def test_workspace_requests_over_the_cap_are_not_kept(monkeypatch):
    import contrastkit.functional._kernel as kernel

    monkeypatch.setattr(kernel, "_KEEP_BYTES", 64)
    like = torch.zeros(1)
    first = kernel._workspace(100, like, slot="test-cap")
    assert first.numel() == 100 and "test-cap" not in kernel._WORKSPACE.buffers
    kept = kernel._workspace(8, like, slot="test-cap")
    assert kernel._workspace(4, like, slot="test-cap").data_ptr() == kept.data_ptr()


# --- oracles of hcl.md §8 -------------------------------------------------------------


def test_beta0_tau0_is_simclr_nt_xent():
    z1, z2 = torch.randn(16, 8), torch.randn(16, 8)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.t() / 0.5).fill_diagonal_(float("-inf"))
    target = (torch.arange(32) + 16) % 32
    expected = F.cross_entropy(sim, target)
    torch.testing.assert_close(nt_xent(z1, z2, temperature=0.5), expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(nt_xent(z1, z2, temperature=0.5, beta=0.0, tau_plus=0.0), expected)


def test_beta0_is_the_debiased_dcl_formula():
    z1, z2 = torch.randn(8, 5, dtype=torch.float64), torch.randn(8, 5, dtype=torch.float64)
    t, tau = 0.5, 0.1
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    e = torch.exp(z @ z.t() / t)
    n = z.shape[0]
    mask = ~torch.eye(n, dtype=torch.bool)
    mask[torch.arange(n), (torch.arange(n) + n // 2) % n] = False
    neg = e.masked_select(mask).view(n, -1)
    pos = torch.exp((F.normalize(z1, dim=1) * F.normalize(z2, dim=1)).sum(1) / t).repeat(2)
    big_n = n - 2
    ng = torch.clamp((-big_n * tau * pos + neg.sum(1)) / (1 - tau), min=big_n * math.exp(-1 / t))
    expected = (-torch.log(pos / (pos + ng))).mean()
    torch.testing.assert_close(nt_xent(z1, z2, temperature=t, beta=0.0, tau_plus=tau), expected)


def _reweighted_sum(q, queue, beta, t):
    """R_a of hcl.md: N * sum_j softmax_j(beta s/t) exp(s_j/t), for tau_plus = 0."""
    s = F.normalize(q, dim=1) @ F.normalize(queue, dim=1).t()
    return queue.shape[0] * (torch.softmax(beta * s / t, dim=1) * torch.exp(s / t)).sum(1)


def test_reweighted_sum_is_monotone_in_beta_and_tends_to_hardest():
    q, pos, queue = (
        torch.randn(4, 6, dtype=torch.float64),
        torch.randn(4, 6, dtype=torch.float64),
        torch.randn(30, 6, dtype=torch.float64),
    )
    t = 0.5
    losses = [info_nce(q, pos, queue, temperature=t, beta=b, reduction="none") for b in (0, 0.5, 1, 2, 6, 50)]
    for lo, hi in zip(losses, losses[1:]):
        assert torch.all(hi >= lo - 1e-12), "HCL loss must not decrease as beta grows (tau_plus = 0)"
    lpos = (F.normalize(q, dim=1) * F.normalize(pos, dim=1)).sum(1) / t
    r = _reweighted_sum(q, queue, 400.0, t)
    hardest = queue.shape[0] * torch.exp((F.normalize(q, dim=1) @ F.normalize(queue, dim=1).t()).max(1).values / t)
    torch.testing.assert_close(r, hardest, rtol=1e-3, atol=0)
    expected = torch.log(torch.exp(lpos) + r) - lpos
    torch.testing.assert_close(info_nce(q, pos, queue, temperature=t, beta=400.0, reduction="none"), expected)


def test_clamp_keeps_loss_finite_and_at_its_floor():
    z1 = torch.randn(8, 4)
    z2 = z1 + 0.01 * torch.randn(8, 4)
    t, n = 0.5, 14
    rows = nt_xent(z1, z2, temperature=t, beta=1.0, tau_plus=0.99, reduction="none")
    assert torch.isfinite(rows).all()
    pos = torch.exp((F.normalize(z1, dim=1) * F.normalize(z2, dim=1)).sum(1) / t).repeat(2)
    floor = -torch.log(pos / (pos + n * math.exp(-1 / t)))
    assert torch.all(rows <= floor + 1e-5), "Ng must never drop below N e^{-1/t}"


def test_nt_xent_is_symmetric_in_views_and_invariant_to_batch_order():
    z1, z2 = torch.randn(10, 8), torch.randn(10, 8)
    perm = torch.randperm(10)
    for beta, tau in [(0.0, 0.0), (1.0, 0.1)]:
        base = nt_xent(z1, z2, beta=beta, tau_plus=tau)
        torch.testing.assert_close(nt_xent(z2, z1, beta=beta, tau_plus=tau), base)
        torch.testing.assert_close(nt_xent(z1[perm], z2[perm], beta=beta, tau_plus=tau), base)


@pytest.mark.parametrize("beta,tau_plus", [(0.0, 0.0), (1.0, 0.1), (2.0, 0.9)])
def test_gradcheck_float64(beta, tau_plus):
    z1 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    queue = torch.randn(7, 3, dtype=torch.float64)
    kw = dict(temperature=0.5, beta=beta, tau_plus=tau_plus)
    assert torch.autograd.gradcheck(lambda a, b: nt_xent(a, b, **kw), (z1, z2))
    assert torch.autograd.gradcheck(lambda a, b: info_nce(a, b, queue, **kw), (z1, z2))
    assert torch.autograd.gradcheck(lambda a, b: info_nce(a, b, **kw), (z1, z2))


# --- oracles of moco.md §11 -----------------------------------------------------------


def test_orthogonal_everything_gives_log_one_plus_k():
    eye = torch.eye(8)
    q, pos, queue = eye[:2], eye[2:4], eye[4:8]
    loss = info_nce(q, pos, queue, temperature=0.2)
    torch.testing.assert_close(loss, torch.tensor(math.log(1 + 4)))


def test_key_equal_query_and_orthogonal_queue():
    eye = torch.eye(8)
    q, queue, t = eye[:2], eye[2:7], 0.2
    loss = info_nce(q, q.clone(), queue, temperature=t)
    torch.testing.assert_close(loss, torch.tensor(math.log(1 + 5 * math.exp(-1 / t))))


def test_plain_queue_loss_is_cross_entropy_with_label_zero():
    q, k, queue = torch.randn(8, 16), torch.randn(8, 16), F.normalize(torch.randn(64, 16), dim=1)
    qn, kn = F.normalize(q, dim=1), F.normalize(k, dim=1)
    logits = torch.cat([(qn * kn).sum(1, keepdim=True), qn @ queue.t()], dim=1) / 0.07
    expected = F.cross_entropy(logits, torch.zeros(8, dtype=torch.long))
    torch.testing.assert_close(info_nce(q, k, queue, temperature=0.07), expected)


# --- numerics across dtypes -------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("beta,tau_plus", [(0.0, 0.0), (1.0, 0.1)])
def test_finite_and_consistent_at_temperature_001(dtype, beta, tau_plus):
    """Large-norm inputs at t = 0.01 (logits up to 100): finite gradients in ``dtype``, and the
    loss equals the float64 loss of the same (rounded) values (losses here are ~30-60)."""
    t = 0.01
    q32, k32, queue32 = torch.randn(16, 32) * 30, torch.randn(16, 32) * 30, torch.randn(256, 32) * 30
    q, k, queue = q32.to(dtype, copy=True).requires_grad_(), k32.to(dtype), queue32.to(dtype)
    kw = dict(temperature=t, beta=beta, tau_plus=tau_plus)
    # agreement with float32 inputs: rounding the inputs moves logits by ~eps/t
    rounding = {torch.float16: 0.05, torch.bfloat16: 0.25, torch.float32: 1e-4}[dtype]
    assert abs(float(info_nce(q.detach(), k, queue, **kw)) - float(info_nce(q32, k32, queue32, **kw))) <= rounding
    assert abs(float(nt_xent(q.detach(), k, **kw)) - float(nt_xent(q32, k32, **kw))) <= rounding
    tol = 1e-3
    for fn in (
        lambda a, b, **k_: info_nce(a, b, queue, **k_),
        lambda a, b, **k_: info_nce(a, b, **k_),
        lambda a, b, **k_: nt_xent(a, b, **k_),
    ):
        loss = fn(q, k, **kw)
        assert torch.isfinite(loss), f"{dtype}: loss {loss}"
        (grad,) = torch.autograd.grad(loss, q)
        assert grad.dtype == dtype and torch.isfinite(grad).all()
    exact = info_nce(q.detach().double(), k.double(), queue.double(), **kw)
    assert abs(float(info_nce(q.detach(), k, queue, **kw)) - float(exact)) <= tol
    exact = nt_xent(q.detach().double(), k.double(), **kw)
    assert abs(float(nt_xent(q.detach(), k, **kw)) - float(exact)) <= tol


def test_reduced_precision_inputs_agree_with_float32_on_the_same_values():
    q16 = torch.randn(8, 16).half()
    k16 = torch.randn(8, 16).half()
    queue16 = torch.randn(100, 16).half()
    for t in (0.01, 0.1, 1.0):
        torch.testing.assert_close(
            info_nce(q16, k16, queue16, temperature=t),
            info_nce(q16.float(), k16.float(), queue16.float(), temperature=t),
        )


# --- properties ---------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(2, 8),
    dim=st.integers(1, 6),
    size=st.integers(1, 20),
    scale=st.floats(0.05, 50.0),
    beta=st.sampled_from([0.0, 1.0]),
    tau_plus=st.sampled_from([0.0, 0.2]),
    seed=st.integers(0, 10_000),
)
def test_invariances(batch, dim, size, scale, beta, tau_plus, seed):
    g = torch.Generator().manual_seed(seed)
    q, k = (
        torch.randn(batch, dim, generator=g, dtype=torch.float64),
        torch.randn(batch, dim, generator=g, dtype=torch.float64),
    )
    queue = torch.randn(size, dim, generator=g, dtype=torch.float64)
    perm = torch.randperm(batch, generator=g)
    kw = dict(temperature=0.3, beta=beta, tau_plus=tau_plus)
    rows = info_nce(q, k, queue, reduction="none", **kw)
    torch.testing.assert_close(info_nce(q[perm], k[perm], queue, reduction="none", **kw), rows[perm])
    torch.testing.assert_close(info_nce(q, k, queue[torch.randperm(size, generator=g)], reduction="none", **kw), rows)
    torch.testing.assert_close(info_nce(q * scale, k / scale, queue * scale, **kw), rows.mean())
    torch.testing.assert_close(info_nce(q, k, queue, reduction="sum", **kw), rows.sum())
    in_batch = info_nce(q, k, reduction="none", **kw)
    torch.testing.assert_close(info_nce(q[perm], k[perm], reduction="none", **kw), in_batch[perm])
    torch.testing.assert_close(nt_xent(q * scale, k, **kw), nt_xent(q, k, **kw))


def test_no_batch_by_queue_by_dim_tensor_is_built():
    """Shared negatives are never broadcast to [B, K, D] (nor fully materialised as logits)."""
    b, k, d = 64, 8192, 64
    q = torch.randn(b, d, requires_grad=True)
    pos, queue = torch.randn(b, d), torch.randn(k, d)
    with torch.profiler.profile(profile_memory=True, record_shapes=True) as prof:
        info_nce(q, pos, queue, beta=1.0, tau_plus=0.1).backward()
    largest = max((e.cpu_memory_usage for e in prof.key_averages()), default=0)
    assert 0 < largest < b * k * d * 4 // 16, f"largest allocation {largest} bytes"


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: info_nce(torch.randn(4, 8), torch.randn(4, 7)), "positive"),
        (
            lambda: info_nce(torch.randn(4, 8), torch.randn(4, 8), torch.randn(10, 7)),
            "negatives has feature dimension 7",
        ),
        (lambda: info_nce(torch.randn(4, 8), torch.randn(4, 8), torch.randn(3, 10, 8)), "B=3"),
        (lambda: info_nce(torch.randn(4, 8, 2), torch.randn(4, 8, 2)), "query must have 2 dimensions"),
        (lambda: info_nce(torch.randn(0, 8), torch.randn(0, 8), torch.randn(5, 8)), "query is empty"),
        (lambda: info_nce(torch.randn(4, 8), torch.randn(4, 8), temperature=0.0), "temperature must be > 0, got 0.0"),
        (lambda: info_nce(torch.randn(4, 8), torch.randn(4, 8), tau_plus=1.0), "tau_plus must lie in"),
        (lambda: info_nce(torch.randn(4, 8), torch.randn(4, 8), tau_plus=-0.1), "tau_plus"),
        (lambda: info_nce(torch.randn(4, 8), torch.randn(4, 8), beta=-1.0), "beta must be >= 0"),
        (lambda: info_nce(torch.ones(4, 8, dtype=torch.long), torch.randn(4, 8)), "floating-point"),
        (lambda: info_nce(torch.randn(4, 8), torch.randn(4, 8), torch.ones(5, 8, dtype=torch.int32)), "floating"),
        (lambda: info_nce(torch.randn(1, 8), torch.randn(1, 8)), "at least 2 rows"),
        (lambda: info_nce(torch.randn(4, 8), torch.randn(4, 8), reduction="avg"), "reduction"),
        (lambda: nt_xent(torch.randn(4, 8), torch.randn(5, 8)), "z1 and z2 must have the same shape"),
        (lambda: nt_xent(torch.randn(1, 8), torch.randn(1, 8)), "at least 2 pairs"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
