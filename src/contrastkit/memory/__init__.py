"""Persistent memories of negatives: MoCo's queue (pointer and enqueue times included)."""

from contrastkit.memory.queue import Queue

__all__ = ["Queue"]
