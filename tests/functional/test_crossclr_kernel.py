"""CrossCLR's fused paper-mode path (``_crossclr_kernel``) equals the readable reference path."""

from __future__ import annotations

import math

import pytest
import torch

from contrastkit.functional._crossclr_kernel import PaperCrossCLR, eligible
from contrastkit.functional.crossclr import crossclr


def _pairs(seed, b, dtype, clustered=False):
    g = torch.Generator().manual_seed(seed)
    v, t = torch.randn(b, 16, generator=g, dtype=dtype), torch.randn(b, 16, generator=g, dtype=dtype)
    if clustered:  # near-duplicate pairs: large logits off the diagonal, as in hub clusters
        v[b // 2 :] = v[0] + 0.05 * v[b // 2 :]
        t[b // 2 :] = t[0] + 0.05 * t[b // 2 :]
    x, y = torch.rand(b, 9, generator=g, dtype=dtype), torch.rand(b, 7, generator=g, dtype=dtype)
    x[: b // 3] *= 3  # a third of the samples influential at gamma 0.7
    return v, t, x, y


def _loss_and_grads(v, t, x, y, fused, **kwargs):
    v, t = v.clone().requires_grad_(True), t.clone().requires_grad_(True)
    loss = crossclr(v, t, x, y, fused=fused, **kwargs)
    upstream = torch.linspace(0.5, 1.5, loss.numel(), dtype=loss.dtype).reshape(loss.shape)  # rows weighted unequally
    (loss * upstream).sum().backward()
    return loss.detach(), v.grad, t.grad


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("intra_weight", [0.8, 0.0])
@pytest.mark.parametrize("prune_threshold", [0.7, math.inf, 0.0])
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("clustered", [False, True])
def test_fused_equals_the_reference_in_value_and_gradient(
    dtype, tol, intra_weight, prune_threshold, reduction, clustered
):
    v, t, x, y = _pairs(3, 23, dtype, clustered)
    kwargs = {"intra_weight": intra_weight, "prune_threshold": prune_threshold, "reduction": reduction}
    reference = _loss_and_grads(v, t, x, y, False, **kwargs)
    fused = _loss_and_grads(v, t, x, y, True, **kwargs)
    for got, want in zip(fused, reference):
        assert torch.allclose(got, want, rtol=tol, atol=tol), float((got - want).abs().max())


def test_the_kernel_passes_gradcheck():
    v, t, _, _ = _pairs(4, 9, torch.float64)
    scale = 0.3**-0.5
    v = (torch.nn.functional.normalize(v, dim=1) * scale).requires_grad_(True)
    t = (torch.nn.functional.normalize(t, dim=1) * scale).requires_grad_(True)
    keep_v = torch.tensor([True, False, True, True, False, True, True, True, False])
    keep_t = torch.tensor([False, True, True, True, True, True, False, True, True])
    assert torch.autograd.gradcheck(lambda a, b: PaperCrossCLR.apply(a, b, keep_v, keep_t, 1 / 0.3, 0.8), (v, t))


def test_auto_picks_the_fused_path_only_where_it_applies():
    assert eligible(0.03, torch.float32) and not eligible(0.02, torch.float32) and eligible(0.02, torch.float64)
    v, t, x, y = _pairs(5, 16, torch.float32)
    # tau = 0.01 is outside float32's range for one shift: auto falls back to the reference path
    assert torch.equal(crossclr(v, t, x, y, temperature=0.01), crossclr(v, t, x, y, temperature=0.01, fused=False))
    with pytest.raises(ValueError, match="fused=True needs mode='paper'"):
        crossclr(v, t, x, y, temperature=0.01, fused=True)
    with pytest.raises(ValueError, match="fused=True needs mode='paper'"):
        crossclr(v, t, x, y, mode="official", fused=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fused_low_precision_inputs_match_float32(dtype):
    v, t, x, y = _pairs(6, 64, torch.float32)
    low = _loss_and_grads(v.to(dtype), t.to(dtype), x, y, True)
    high = _loss_and_grads(v.to(dtype).float(), t.to(dtype).float(), x, y, False)
    assert low[0].dtype == torch.float32 and torch.isfinite(low[1]).all()
    assert torch.allclose(low[0], high[0], rtol=1e-5)
