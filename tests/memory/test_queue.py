"""Queue against moco.md §11 and the state-dict round trip."""

from __future__ import annotations

import io

import pytest
import torch

from contrastkit.memory import Queue


def test_initial_entries_are_unit_vectors():
    queue = Queue(32, 8)
    assert queue.keys.shape == (32, 8)
    torch.testing.assert_close(queue.keys.norm(dim=1), torch.ones(32))
    assert int(queue.ptr) == 0 and int(queue.step) == 0
    assert torch.all(queue.enqueued_at == -1)


def test_fifo_order_pointer_and_wraparound():
    queue = Queue(8, 2)
    batches = [torch.full((3, 2), float(i)) for i in range(1, 5)]
    queue.enqueue(batches[0])
    torch.testing.assert_close(queue.keys[:3], batches[0])
    assert int(queue.ptr) == 3
    queue.enqueue(batches[1])
    queue.enqueue(batches[2])  # writes slots 6, 7, 0
    assert int(queue.ptr) == 1
    assert queue.keys[:, 0].tolist() == [3, 1, 1, 2, 2, 2, 3, 3]
    assert queue.enqueued_at.tolist() == [2, 0, 0, 1, 1, 1, 2, 2]
    assert queue.age().tolist() == [1, 3, 3, 2, 2, 2, 1, 1]


def test_ages_follow_videomoco_counter():
    """videomoco.md §2 / oracle 2: all 0 before the first enqueue; after n enqueues the newest
    slots are 1, slots written r enqueues earlier r + 1, never-written slots n."""
    queue = Queue(12, 2)
    assert queue.age().tolist() == [0] * 12
    for n in range(1, 4):
        queue.enqueue(torch.randn(3, 2))
        expected = [n - (i // 3) if i // 3 < n else n for i in range(12)]
        assert queue.age().tolist() == expected, (n, queue.age().tolist())


def test_divisible_batches_return_pointer_to_zero():
    queue = Queue(12, 3)
    for _ in range(12 // 4):
        queue.enqueue(torch.randn(4, 3))
    assert int(queue.ptr) == 0


def test_batch_larger_than_queue_keeps_the_last_keys_in_fifo_position():
    reference, queue = Queue(5, 1), Queue(5, 1)
    keys = torch.arange(12, dtype=torch.float32).unsqueeze(1)
    reference.enqueue(torch.zeros(2, 1))
    queue.enqueue(torch.zeros(2, 1))
    for row in keys:
        reference.enqueue(row.unsqueeze(0))
    queue.enqueue(keys)
    torch.testing.assert_close(queue.keys, reference.keys)
    assert int(queue.ptr) == int(reference.ptr)


def test_sample_ids_are_stored():
    queue = Queue(4, 2)
    queue.enqueue(torch.randn(3, 2), sample_ids=torch.tensor([7, 8, 9]))
    assert queue.sample_ids.tolist() == [7, 8, 9, -1]


def test_state_dict_round_trip_is_exact_and_resumes_identically():
    torch.manual_seed(0)
    queue = Queue(10, 4)
    for _ in range(3):
        queue.enqueue(torch.randn(3, 4), sample_ids=torch.randint(100, (3,)))
    buffer = io.BytesIO()
    torch.save(queue.state_dict(), buffer)
    buffer.seek(0)
    restored = Queue(10, 4)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    for name, value in queue.state_dict().items():
        assert torch.equal(value, restored.state_dict()[name]), name
    nxt = torch.randn(4, 4)
    queue.enqueue(nxt)
    restored.enqueue(nxt)
    for name, value in queue.state_dict().items():
        assert torch.equal(value, restored.state_dict()[name]), name
    assert set(queue.state_dict()) == {"keys", "ptr", "step", "enqueued_at", "sample_ids"}


def test_keys_carry_no_gradient():
    queue = Queue(4, 2)
    keys = torch.randn(2, 2, requires_grad=True)
    queue.enqueue(keys * 2)
    assert not queue.keys.requires_grad


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda q: q.enqueue(torch.randn(2, 3)), r"keys must have shape \[n, 2\], got \(2, 3\)"),
        (lambda q: q.enqueue(torch.randn(0, 2)), "empty"),
        (lambda q: q.enqueue(torch.randn(2, 2), sample_ids=torch.arange(3)), "sample_ids"),
    ],
)
def test_bad_enqueue(call, match):
    with pytest.raises(ValueError, match=match):
        call(Queue(4, 2))


def test_bad_construction():
    with pytest.raises(ValueError, match="size must be > 0"):
        Queue(0, 4)
