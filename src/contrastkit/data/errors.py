"""The one error every data loader raises for a dataset it cannot find or read."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """A dataset cannot be found or read; the message says where it was looked for."""
