"""mix_hard_negatives against the oracles of mochi.md §8."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from contrastkit.functional import info_nce, mix_hard_negatives, mochi_info_nce
from contrastkit.functional._mochi_kernel import hardest_negatives


def _mix(q, queue, n, s, s2, seed=0, **kw):
    return mix_hard_negatives(
        q, queue, num_hard=n, num_pair_mix=s, num_query_mix=s2, generator=torch.Generator().manual_seed(seed), **kw
    )


def test_shapes_unit_norm_and_no_gradient():
    q = torch.randn(5, 8, requires_grad=True)
    queue = torch.randn(40, 8) * 3
    mixed = _mix(q, queue, 10, 6, 4)
    assert mixed.shape == (5, 10, 8)
    torch.testing.assert_close(mixed.norm(dim=-1), torch.ones(5, 10))
    assert not mixed.requires_grad and mixed.grad_fn is None


def test_no_synthetic_negatives_gives_the_moco_loss():
    q, k, queue = torch.randn(6, 8), torch.randn(6, 8), torch.randn(30, 8)
    mixed = _mix(q, queue, 5, 0, 0)
    assert mixed.shape == (6, 0, 8)
    torch.testing.assert_close(info_nce(q, k, (queue, mixed)), info_nce(q, k, queue))


def _span_residual(vec: torch.Tensor, basis: torch.Tensor) -> float:
    coef = torch.linalg.lstsq(basis.t().double(), vec.double().unsqueeze(1)).solution
    return float((basis.t().double() @ coef - vec.double().unsqueeze(1)).norm())


def test_provenance_and_hardness():
    """Type 1 lies in the span of two of its row's top-N entries, type 2 in span(q, n_j), and
    type 2 is at least as hard as the negative it came from."""
    torch.manual_seed(1)
    b, k, d, n = 3, 12, 16, 4
    q = F.normalize(torch.randn(b, d), dim=1)
    queue = F.normalize(torch.randn(k, d), dim=1)
    mixed = _mix(q, queue, n, 5, 5)
    top = (q @ queue.t()).topk(n, dim=1).indices
    for row in range(b):
        cands = queue[top[row]]
        for h in mixed[row, :5]:
            best = min(_span_residual(h, cands[[i, j]]) for i in range(n) for j in range(n))
            assert best < 1e-5
        for h in mixed[row, 5:]:
            fits = [j for j in range(n) if _span_residual(h, torch.stack([q[row], cands[j]])) < 1e-5]
            assert fits, "type-2 vector is not a mix of q and one of its top-N"
            assert max(float(q[row] @ h) - float(q[row] @ cands[j]) for j in fits) >= -1e-6


def test_type1_bound():
    torch.manual_seed(2)
    q = F.normalize(torch.randn(1, 6), dim=1)
    queue = F.normalize(torch.randn(50, 6), dim=1)
    queue = torch.where((queue @ q.t()) >= 0, queue, -queue)  # all entries have q.n >= 0
    mixed = _mix(q, queue, 8, 64, 0)
    hardest = (q @ queue.t()).topk(8).values
    assert float((mixed[0] @ q[0]).min()) >= float(hardest.min()) - 1e-6


def test_each_row_mixes_only_its_own_hardest_set():
    """Catches the flatten-and-index bug of mochi.md §6.1: disjoint top-N sets per query."""
    d, n = 8, 3
    basis = torch.eye(d)
    q = basis[:2]  # query 0 = e0, query 1 = e1
    group0 = F.normalize(basis[0] + 0.1 * basis[2:5], dim=1)  # close to e0
    group1 = F.normalize(basis[1] + 0.1 * basis[5:8], dim=1)  # close to e1
    queue = torch.cat([group0, group1])
    mixed = _mix(q, queue, n, 20, 20)
    assert torch.all(mixed[0] @ basis[1] < 0.3) and torch.all(mixed[0, :20, 5:] == 0)
    assert torch.all(mixed[1] @ basis[0] < 0.3) and torch.all(mixed[1, :20, 2:5] == 0)


def test_mask_excludes_entries():
    q = torch.randn(2, 4)
    queue = torch.randn(6, 4)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[:, 3] = False
    mixed = _mix(q, queue, 1, 4, 0, mask=mask)
    torch.testing.assert_close(mixed, F.normalize(queue[3], dim=0).expand(2, 4, 4))


def test_gradient_of_the_loss_does_not_flow_through_mixes():
    q = torch.randn(4, 8, requires_grad=True)
    k, queue = torch.randn(4, 8), torch.randn(32, 8)
    mixed = _mix(q, queue, 8, 4, 4)
    (grad,) = torch.autograd.grad(info_nce(q, k, (queue, mixed)), q)
    (grad_const,) = torch.autograd.grad(info_nce(q, k, (queue, mixed.clone())), q)
    torch.testing.assert_close(grad, grad_const)


def test_seeded_generator_is_reproducible():
    q, queue = torch.randn(4, 8), torch.randn(32, 8)
    torch.testing.assert_close(_mix(q, queue, 8, 4, 4, seed=3), _mix(q, queue, 8, 4, 4, seed=3))
    assert not torch.equal(_mix(q, queue, 8, 4, 4, seed=3), _mix(q, queue, 8, 4, 4, seed=4))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(num_hard=33, num_pair_mix=1, num_query_mix=1), r"num_hard must lie in \[1, K=32\], got 33"),
        (dict(num_hard=0, num_pair_mix=1, num_query_mix=1), "num_hard"),
        (dict(num_hard=4, num_pair_mix=-1, num_query_mix=1), "num_pair_mix"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mix_hard_negatives(torch.randn(4, 8), torch.randn(32, 8), **kwargs)


def test_dimension_mismatch():
    with pytest.raises(ValueError, match="feature dimension 7"):
        mix_hard_negatives(torch.randn(4, 8), torch.randn(32, 7), num_hard=2, num_pair_mix=1, num_query_mix=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("beta, tau_plus", [(0.0, 0.0), (1.0, 0.1), (0.5, 0.0)])
@pytest.mark.parametrize("size, num_hard", [(50, 10), (5000, 64)], ids=["topk", "threshold-select"])
def test_fused_mochi_equals_mixing_then_info_nce(dtype, beta, tau_plus, size, num_hard):
    """The fused loss never builds the mixes, yet matches the composition draw for draw."""
    torch.manual_seed(0)
    q = torch.randn(6, 8, dtype=dtype, requires_grad=True)
    k = torch.randn(6, 8, dtype=dtype, requires_grad=True)
    queue = torch.randn(size, 8, dtype=dtype) * 2
    mask = torch.rand(6, size) < 0.2
    kwargs = dict(num_hard=num_hard, num_pair_mix=5, num_query_mix=4, mask=mask)
    fused = mochi_info_nce(
        q, k, queue, temperature=0.2, beta=beta, tau_plus=tau_plus, generator=torch.Generator().manual_seed(3), **kwargs
    )
    mixed = mix_hard_negatives(q, queue, generator=torch.Generator().manual_seed(3), **kwargs)
    composed = info_nce(q, k, (queue, mixed), temperature=0.2, beta=beta, tau_plus=tau_plus)
    torch.testing.assert_close(fused, composed)
    for a, b in zip(torch.autograd.grad(fused, [q, k]), torch.autograd.grad(composed, [q, k])):
        torch.testing.assert_close(a, b)


def test_fused_mochi_falls_back_for_per_row_losses():
    q, k, queue = torch.randn(4, 8), torch.randn(4, 8), torch.randn(64, 8)
    kwargs = dict(num_hard=16, num_pair_mix=3, num_query_mix=2)
    rows = mochi_info_nce(q, k, queue, reduction="none", generator=torch.Generator().manual_seed(1), **kwargs)
    mean = mochi_info_nce(q, k, queue, generator=torch.Generator().manual_seed(1), **kwargs)
    assert rows.shape == (4,)
    torch.testing.assert_close(rows.mean(), mean)


@pytest.mark.parametrize("masked", [False, True])
def test_threshold_selection_is_topk(masked):
    """The sampled-threshold selection returns exactly topk's set, including rows where too few
    entries pass the threshold (they fall back to topk)."""
    torch.manual_seed(0)
    sims = torch.randn(9, 8192)
    sims[0] = torch.linspace(-1, 1, 8192).flip(0)  # sorted row: the strided sample still spans it
    sims[1, ::8] += 5.0  # every sampled column is high: the threshold lets too few others pass
    mask = torch.rand(9, 8192) < 0.3 if masked else None
    ours = hardest_negatives(sims, 512, mask)
    ref = (sims if mask is None else sims.masked_fill(mask, float("-inf"))).topk(512, dim=1).indices
    assert ours.shape == (9, 512)
    for row, (a, b) in enumerate(zip(ours.tolist(), ref.tolist())):
        assert set(a) == set(b), row


def test_query_mix_weight_is_uniform_on_zero_to_half():
    """mochi.md §2: h' = normalize(c q + (1 - c) n), c ~ U(0, 0.5). With q and its only hard
    negative orthonormal, c / (1 - c) = (h'.q) / (h'.n) recovers each draw's c."""
    q = torch.tensor([[1.0, 0.0, 0.0]])
    queue = torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
    mixed = mix_hard_negatives(
        q, queue, num_hard=1, num_pair_mix=0, num_query_mix=400, generator=torch.Generator().manual_seed(0)
    )[0]
    ratio = mixed[:, 0] / mixed[:, 1]
    c = ratio / (1 + ratio)
    assert float(c.min()) > 0 and float(c.max()) < 0.5
    assert float(c.max()) > 0.45 and abs(float(c.mean()) - 0.25) < 0.03
