"""Two gloo processes on CPU give the loss and gradients of one process on the global batch."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from contrastkit.functional import all_gather_with_grad
from contrastkit.losses import InfoNCELoss, NTXentLoss
from tests.gloo import run_on_ranks

pytestmark = pytest.mark.distributed

SIZES = {"equal": [4, 4], "unequal": [5, 3]}


def _global_batch(seed: int = 0, total: int = 8, dim: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Linear]:
    g = torch.Generator().manual_seed(seed)
    x1, x2 = torch.randn(total, dim, generator=g), torch.randn(total, dim, generator=g)
    model = torch.nn.Linear(dim, 5)
    with torch.no_grad():
        model.weight.copy_(torch.randn(5, dim, generator=g))
        model.bias.copy_(torch.randn(5, generator=g))
    return x1, x2, model


def _make_loss(name: str, reduction: str) -> torch.nn.Module:
    if name == "nt_xent":
        return NTXentLoss(0.5, beta=1.0, tau_plus=0.1, reduction=reduction)
    return InfoNCELoss(0.2, beta=0.5, tau_plus=0.1, reduction=reduction)


def _rank_step(rank: int, world: int, name: str, reduction: str, sizes: list[int]) -> dict:
    x1, x2, model = _global_batch()
    start = sum(sizes[:rank])
    rows = slice(start, start + sizes[rank])
    loss = _make_loss(name, reduction)(model(x1[rows]), model(x2[rows]))
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    for grad in grads:  # what DDP does: average parameter gradients over ranks
        dist.all_reduce(grad)
        grad /= world
    total = loss.detach().clone()
    dist.all_reduce(total)
    return {"loss_sum": total, "grads": grads}


@pytest.mark.parametrize("name", ["nt_xent", "info_nce"])
@pytest.mark.parametrize("layout", ["equal", "unequal"])
def test_two_ranks_equal_one_process_on_the_global_batch(name, layout):
    sizes = SIZES[layout]
    reduction = "mean" if layout == "equal" else "sum"  # a mean over unequal shards is not the global mean
    results = run_on_ranks(_rank_step, 2, name, reduction, sizes)

    x1, x2, model = _global_batch()
    loss = _make_loss(name, reduction)(model(x1), model(x2))
    loss.backward()
    world = len(sizes)
    expected_loss_sum = loss.detach() * (world if reduction == "mean" else 1)
    expected_grads = [p.grad * (1 if reduction == "mean" else 1 / world) for p in model.parameters()]
    for res in results:
        torch.testing.assert_close(res["loss_sum"], expected_loss_sum)
        for got, want in zip(res["grads"], expected_grads):
            torch.testing.assert_close(got, want)


def _gather_rows(rank: int, world: int) -> dict:
    x = torch.full((rank + 1, 2), float(rank), requires_grad=True)
    gathered = all_gather_with_grad(x)
    (gathered * torch.arange(gathered.shape[0]).unsqueeze(1)).sum().backward()
    return {"gathered": gathered.detach(), "grad": x.grad}


def test_all_gather_with_grad_handles_unequal_rows_and_sums_gradients():
    r0, r1 = run_on_ranks(_gather_rows, 2)
    assert r0["gathered"].tolist() == [[0, 0], [1, 1], [1, 1]]
    # the gradient of every rank's sum w.r.t. this rank's rows: 2 ranks x row index
    torch.testing.assert_close(r0["grad"], torch.tensor([[0.0, 0.0]]))
    torch.testing.assert_close(r1["grad"], torch.tensor([[2.0, 2.0], [4.0, 4.0]]))


def _queue_steps(rank: int, world: int) -> dict:
    torch.manual_seed(0)
    loss_fn = InfoNCELoss(0.2, queue_size=10, dim=3)
    for step in range(4):
        keys = torch.full((2, 3), float(10 * step + rank))
        loss_fn(torch.randn(2, 3), keys)
    return {"queue": loss_fn.queue.state_dict()}


def test_queue_enqueues_every_rank_in_rank_order():
    r0, r1 = run_on_ranks(_queue_steps, 2)
    for name, value in r0["queue"].items():
        assert torch.equal(value, r1["queue"][name]), name
    torch.manual_seed(0)
    single = InfoNCELoss(0.2, queue_size=10, dim=3)
    for step in range(4):
        keys = torch.cat([torch.full((2, 3), float(10 * step + r)) for r in range(2)])
        single(torch.randn(4, 3), keys)
    for name, value in single.queue.state_dict().items():
        torch.testing.assert_close(r0["queue"][name], value)
