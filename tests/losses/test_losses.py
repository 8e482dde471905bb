"""Loss modules compose functional + memory without adding math."""

from __future__ import annotations

import pytest
import torch

from contrastkit.functional import info_nce, nt_xent
from contrastkit.losses import InfoNCELoss, MoCHiLoss, NTXentLoss


def test_queue_loss_uses_the_queue_before_enqueueing_the_keys():
    loss_fn = InfoNCELoss(temperature=0.2, queue_size=16, dim=8)
    before = loss_fn.queue.keys.clone()
    q, k = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8)
    loss = loss_fn(q, k)
    torch.testing.assert_close(loss, info_nce(q, k, before, temperature=0.2))
    torch.testing.assert_close(loss_fn.queue.keys[:4], torch.nn.functional.normalize(k, dim=1))
    torch.testing.assert_close(loss_fn.queue.keys[4:], before[4:])
    loss.backward()
    assert q.grad is not None and not loss_fn.queue.keys.requires_grad


def test_queue_loss_with_reduction_none_survives_the_enqueue():
    loss_fn = InfoNCELoss(queue_size=16, dim=8, reduction="none")
    q = torch.randn(4, 8, requires_grad=True)
    loss_fn(q, torch.randn(4, 8)).sum().backward()
    assert q.grad is not None


def test_without_queue_it_is_in_batch_info_nce():
    q, k = torch.randn(6, 8), torch.randn(6, 8)
    torch.testing.assert_close(InfoNCELoss(beta=1.0, tau_plus=0.1)(q, k), info_nce(q, k, beta=1.0, tau_plus=0.1))


def test_nt_xent_module_matches_function():
    z1, z2 = torch.randn(6, 8), torch.randn(6, 8)
    torch.testing.assert_close(NTXentLoss(0.3, beta=0.5)(z1, z2), nt_xent(z1, z2, temperature=0.3, beta=0.5))


def test_mochi_without_mixes_equals_moco():
    torch.manual_seed(0)
    moco = InfoNCELoss(temperature=0.2, queue_size=32, dim=8)
    mochi = MoCHiLoss(4, 0, 0, temperature=0.2, queue_size=32, dim=8)
    mochi.queue.load_state_dict(moco.queue.state_dict())
    for _ in range(3):
        q, k = torch.randn(4, 8), torch.randn(4, 8)
        torch.testing.assert_close(mochi(q, k), moco(q, k))
    torch.testing.assert_close(mochi.queue.keys, moco.queue.keys)


def test_mochi_adds_harder_negatives_and_never_enqueues_them():
    mochi = MoCHiLoss(8, 4, 4, temperature=0.2, queue_size=32, dim=8)
    before = mochi.queue.keys.clone()
    q, k = torch.randn(4, 8), torch.randn(4, 8)
    plain = info_nce(q, k, before, temperature=0.2)
    assert mochi(q, k) > plain
    torch.testing.assert_close(mochi.queue.keys[4:], before[4:])
    torch.testing.assert_close(mochi.queue.keys[:4], torch.nn.functional.normalize(k, dim=1))


def test_mochi_masks_keys_of_the_same_sample():
    mochi = MoCHiLoss(1, 2, 0, temperature=0.2, queue_size=4, dim=2, generator=torch.Generator().manual_seed(0))
    q = torch.tensor([[1.0, 0.0]])
    mochi.queue.keys.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]))
    mochi.queue.sample_ids.copy_(torch.tensor([5, 6, 7, 8]))
    # the hardest entry [1, 0] belongs to sample 5 = the query's own image: skipped
    loss_masked = mochi(q, q.clone(), sample_ids=torch.tensor([5]), enqueue=False)
    mochi.mask_own_keys = False
    loss_unmasked = mochi(q, q.clone(), sample_ids=torch.tensor([5]), enqueue=False)
    assert loss_masked < loss_unmasked


def test_constructor_validation():
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(temperature=-1)
    with pytest.raises(ValueError, match="dim is required"):
        InfoNCELoss(queue_size=8)
    with pytest.raises(ValueError, match="needs a queue"):
        MoCHiLoss(4, 1, 1)
    with pytest.raises(ValueError, match="num_hard"):
        MoCHiLoss(64, 1, 1, queue_size=8, dim=4)


def test_mochi_loss_mixes_the_hardest_entries_not_random_ones():
    """Two queue entries sit at cosine 0.9 from the query, 62 are orthogonal to it. Type-1 mixes
    of the top-2 stay at cosine >= 0.9, so the loss is at least the one with every mix at 0.9;
    mixes of random entries (mostly orthogonal) would fall far below that bound."""
    t, s = 0.2, 32
    q = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    hard = torch.tensor([[0.9, 0.4359, 0.0, 0.0], [0.9, -0.4359, 0.0, 0.0]])
    easy = torch.nn.functional.normalize(torch.randn(62, 3), dim=1)
    queue = torch.cat([hard, torch.cat([torch.zeros(62, 1), easy], dim=1)])
    mochi = MoCHiLoss(2, s, 0, temperature=t, queue_size=64, dim=4, generator=torch.Generator().manual_seed(0))
    mochi.queue.keys.copy_(queue)
    k = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    loss = mochi(q, k, enqueue=False)
    logits = torch.cat([torch.zeros(1), (queue @ q[0]) / t, torch.full((s,), 0.9 / t)])
    bound = torch.logsumexp(logits, 0)
    assert float(loss) >= float(bound) - 1e-4


def test_queue_decay_scales_the_queues_similarities_by_t_to_the_age():
    """videomoco.md §2 and oracles 1-3: t = 1 (or all ages 0) is MoCo; the factor is t^age on
    q.Q (newest keys age 1); with all-positive similarities a smaller t lowers the loss, with
    all-negative ones it raises it."""
    torch.manual_seed(0)
    q, k = torch.randn(4, 8), torch.randn(4, 8)
    plain = InfoNCELoss(temperature=0.07, queue_size=32, dim=8)
    decayed = InfoNCELoss(temperature=0.07, queue_size=32, dim=8, queue_decay=0.9)
    decayed.queue.load_state_dict(plain.queue.state_dict())
    torch.testing.assert_close(decayed(q, k, enqueue=False), plain(q, k, enqueue=False))  # all ages 0
    for keys in (torch.randn(4, 8), torch.randn(4, 8)):
        plain.queue.enqueue(keys)
        decayed.queue.enqueue(keys)
    expected = info_nce(q, k, plain.queue.keys, negative_factors=0.9 ** plain.queue.age().float(), temperature=0.07)
    torch.testing.assert_close(decayed(q, k, enqueue=False), expected)
    assert not torch.allclose(decayed(q, k, enqueue=False), plain(q, k, enqueue=False))
    one = torch.nn.functional.normalize(torch.ones(1, 8), dim=1)
    for sign, direction in ((1.0, "lower"), (-1.0, "higher")):
        losses = []
        for t in (1.0, 0.9, 0.5):
            loss_fn = InfoNCELoss(temperature=0.5, queue_size=8, dim=8, queue_decay=t)
            loss_fn.queue.enqueue(sign * (one + 0.1 * torch.rand(8, 8)))  # all similarities of one sign
            losses.append(float(loss_fn(one, torch.eye(8)[:1] - torch.eye(8)[1:2], enqueue=False)))
        ordered = losses[0] > losses[1] > losses[2] if direction == "lower" else losses[0] < losses[1] < losses[2]
        assert ordered, (sign, losses)
    with pytest.raises(ValueError, match="queue_decay"):
        InfoNCELoss(queue_size=8, dim=4, queue_decay=0.0)
