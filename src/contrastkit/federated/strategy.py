"""FedAvg that survives bad parties: failed replies are skipped, malformed updates rejected.

Flower's ``FedAvg`` already leaves out replies that carry an error (a ClientApp that raised)
and nodes that did not answer before the round's timeout. This subclass also checks every
update against the global model before averaging — same keys, shapes and dtypes, finite
values, a positive sample count — rejects the others with a logged reason (instead of letting
one bad reply stop the round), and records per round which parties failed or were rejected.
Aggregation is Flower's weighted average by ``num-examples`` = sample counts
(``docs/methods/moon.md``), over every ``state_dict`` tensor, BatchNorm buffers included, as the
official code averages them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from logging import WARNING
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.common import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

__all__ = ["CheckedFedAvg", "check_update"]


def check_update(global_arrays: ArrayRecord, content: Any, weight_key: str = "num-examples") -> str | None:
    """The reason an update cannot be averaged in, or None if it is sound."""
    arrays = content.array_records.get("arrays") if hasattr(content, "array_records") else None
    if arrays is None:
        return "no 'arrays' record in the reply"
    metrics = content.metric_records.get("metrics")
    if metrics is None or weight_key not in metrics:
        return f"no '{weight_key}' in the reply's metrics"
    weight = metrics[weight_key]
    if not isinstance(weight, (int, float)) or not weight > 0 or not math.isfinite(weight):
        return f"'{weight_key}' must be a positive number, got {weight!r}"
    expected, got = set(global_arrays.keys()), set(arrays.keys())
    if expected != got:
        missing, extra = sorted(expected - got), sorted(got - expected)
        return f"parameter names differ (missing {missing[:3]}, unexpected {extra[:3]})"
    for key in global_arrays.keys():
        ref, new = global_arrays[key], arrays[key]
        if tuple(ref.shape) != tuple(new.shape) or ref.dtype != new.dtype:
            return f"'{key}' is {new.dtype}{list(new.shape)}, expected {ref.dtype}{list(ref.shape)}"
        values = new.numpy()
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            return f"'{key}' holds NaN or infinite values"
    return None


class CheckedFedAvg(FedAvg):
    """``FedAvg`` with per-update checks and a per-round record of failures and rejections.

    ``round_report[r]`` holds ``{"ok": [...], "failed": [...], "rejected": [...]}`` with one
    ``"node <id> (partition <p>): <reason>"`` string per bad party.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.round_report: dict[int, dict[str, list[str]]] = {}
        self._global: ArrayRecord | None = None
        self._partition_of: dict[int, int] = {}

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._global = arrays
        return super().configure_train(server_round, arrays, config, grid)

    def _name(self, node: int) -> str:
        part = self._partition_of.get(node)
        return f"node {node}" + (f" (partition {part})" if part is not None else "")

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        report: dict[str, list[str]] = {"ok": [], "failed": [], "rejected": []}
        sound: list[Message] = []
        for msg in replies:
            node = msg.metadata.src_node_id
            if msg.has_error():
                why = (msg.error.reason or "no reason given").strip().splitlines()[-1][:200]
                report["failed"].append(f"{self._name(node)}: {why}")
                continue
            metrics = msg.content.metric_records.get("metrics")
            if metrics is not None and "partition-id" in metrics:
                self._partition_of[node] = int(metrics["partition-id"])  # type: ignore[arg-type]
            reason = check_update(self._global, msg.content, self.weighted_by_key) if self._global else None
            if reason:
                report["rejected"].append(f"{self._name(node)}: {reason}")
                log(WARNING, "round %d: rejected the update of %s: %s", server_round, self._name(node), reason)
                continue
            report["ok"].append(self._name(node))
            sound.append(msg)
        for line in report["failed"]:
            log(WARNING, "round %d: %s failed", server_round, line)
        self.round_report[server_round] = report
        if not sound:
            log(WARNING, "round %d: no sound update; the global model is kept", server_round)
            return None, None
        # Replies arrive in the order the parties finish; summing them in partition order makes
        # the float rounding of the weighted average, and so the whole run, repeatable.
        sound.sort(key=lambda m: (self._partition_of.get(m.metadata.src_node_id, -1), m.metadata.src_node_id))
        return super().aggregate_train(server_round, sound)
