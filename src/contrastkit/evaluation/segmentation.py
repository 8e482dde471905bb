"""Action-segmentation metrics on per-frame label sequences (the standard segmental definitions
of Lea et al. 2017 as computed by MS-TCN's evaluation script; ``docs/methods/longshort.md``).

- frame accuracy: share of frames whose predicted label is right;
- Edit score: ``100 (1 - lev(P, T) / max(|P|, |T|))`` on the sequences of segment labels (runs
  of equal labels collapsed), ``lev`` the Levenshtein distance;
- F1@k: a predicted segment is a true positive when its IoU with a same-label ground-truth
  segment not matched before reaches ``k`` (the best-overlapping one is tried), otherwise a
  false positive; unmatched ground-truth segments are false negatives. Counts are summed over
  videos, then ``F1 = 2 P R / (P + R)`` in percent.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

__all__ = ["SegmentCounts", "edit_score", "f1_counts", "segmentation_scores", "to_segments"]

OVERLAPS = (0.10, 0.25, 0.50)


def _as_list(labels: Sequence[int] | Tensor) -> list[int]:
    return [int(v) for v in (labels.tolist() if isinstance(labels, Tensor) else labels)]


def to_segments(labels: Sequence[int] | Tensor) -> list[tuple[int, int, int]]:
    """Runs of equal labels as ``(label, start, stop)`` (stop exclusive).

    Examples:
        >>> to_segments([0, 0, 1, 1, 1, 0])
        [(0, 0, 2), (1, 2, 5), (0, 5, 6)]
    """
    values = _as_list(labels)
    out: list[tuple[int, int, int]] = []
    start = 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[start]:
            out.append((values[start], start, i))
            start = i
    return out


def _levenshtein(a: list[int], b: list[int]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


def edit_score(predicted: Sequence[int] | Tensor, truth: Sequence[int] | Tensor) -> float:
    """Segmental Edit score in percent (100 = the same sequence of segments)."""
    p = [s[0] for s in to_segments(predicted)]
    t = [s[0] for s in to_segments(truth)]
    if not p and not t:
        return 100.0
    return 100.0 * (1 - _levenshtein(p, t) / max(len(p), len(t)))


SegmentCounts = tuple[int, int, int]
"""``(true positives, false positives, false negatives)``."""


def f1_counts(predicted: Sequence[int] | Tensor, truth: Sequence[int] | Tensor, overlap: float) -> SegmentCounts:
    """TP, FP, FN of one video's predicted segments at IoU threshold ``overlap``."""
    p_segments, t_segments = to_segments(predicted), to_segments(truth)
    matched = [False] * len(t_segments)
    tp = fp = 0
    for label, start, stop in p_segments:
        best, best_iou = -1, 0.0
        for j, (t_label, t_start, t_stop) in enumerate(t_segments):
            if t_label != label:
                continue
            inter = max(0, min(stop, t_stop) - max(start, t_start))
            union = max(stop, t_stop) - min(start, t_start)
            iou = inter / union
            if iou > best_iou:
                best, best_iou = j, iou
        if best >= 0 and best_iou >= overlap and not matched[best]:
            tp += 1
            matched[best] = True
        else:
            fp += 1
    return tp, fp, len(t_segments) - sum(matched)


def _f1(tp: int, fp: int, fn: int) -> float:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return 100.0 * 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def segmentation_scores(
    predicted: Sequence[Sequence[int] | Tensor],
    truth: Sequence[Sequence[int] | Tensor],
    overlaps: Sequence[float] = OVERLAPS,
) -> dict[str, float]:
    """Frame accuracy, mean Edit and F1@k (counts summed over videos) of per-video label sequences.

    Returns:
        ``{"frame_acc", "edit", "f1@10", "f1@25", "f1@50"}`` in percent.
    """
    if len(predicted) != len(truth) or not truth:
        raise ValueError(f"need one prediction per video and at least one video, got {len(predicted)} / {len(truth)}")
    correct = total = 0
    edits = []
    counts = {k: [0, 0, 0] for k in overlaps}
    for p, t in zip(predicted, truth):
        p_list, t_list = _as_list(p), _as_list(t)
        if len(p_list) != len(t_list):
            raise ValueError(f"a prediction has {len(p_list)} frames, its ground truth {len(t_list)}")
        correct += sum(a == b for a, b in zip(p_list, t_list))
        total += len(t_list)
        edits.append(edit_score(p_list, t_list))
        for k in overlaps:
            for i, v in enumerate(f1_counts(p_list, t_list, k)):
                counts[k][i] += v
    scores = {"frame_acc": 100.0 * correct / total, "edit": sum(edits) / len(edits)}
    scores.update({f"f1@{round(100 * k)}": _f1(*counts[k]) for k in overlaps})
    return scores
