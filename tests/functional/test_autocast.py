"""The objectives under autocast (issue 21 item 3): bf16 activations against float32 queues give
a finite float32 loss and gradients, equal to the float32 computation on the same bf16 values."""

from __future__ import annotations

import torch

from contrastkit.functional import info_nce, mochi_info_nce, nt_xent


def _inputs():
    g = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(16, 8)
    x, y = torch.randn(6, 16, generator=g), torch.randn(6, 16, generator=g)
    queue = torch.nn.functional.normalize(torch.randn(64, 8, generator=g), dim=1)
    return layer, x, y, queue


def test_queue_losses_under_cpu_bf16_autocast_match_float32_on_the_same_values():
    layer, x, y, queue = _inputs()
    for loss_fn in (
        lambda q, k: info_nce(q, k, queue, temperature=0.2),
        lambda q, k: info_nce(q, k, queue, temperature=0.2, beta=1.0, tau_plus=0.1),
        lambda q, k: nt_xent(q, k, temperature=0.2),
        lambda q, k: mochi_info_nce(
            q, k, queue, num_hard=16, num_pair_mix=4, num_query_mix=2, generator=torch.Generator().manual_seed(1)
        ),
    ):
        layer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            q, k = layer(x), layer(y).detach()
            assert q.dtype == torch.bfloat16
            loss = loss_fn(q, k)
        loss.backward()
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
        grad = layer.weight.grad.clone()
        assert torch.isfinite(grad).all()
        reference = loss_fn(q.detach().float(), k.float())  # the same bf16 values, no autocast
        torch.testing.assert_close(loss.detach(), reference, rtol=1e-5, atol=1e-5)
