"""Segmentation metrics against values worked out by hand."""

from __future__ import annotations

import pytest

from contrastkit.evaluation.segmentation import edit_score, f1_counts, segmentation_scores, to_segments

TRUTH = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]  # segments (0: 0-4), (1: 4-8), (2: 8-10)
SHIFTED = [0, 0, 0, 1, 1, 1, 1, 1, 1, 2]  # same order, boundaries moved: IoUs 3/4, 4/6, 1/2
OVERCUT = [0, 0, 1, 0, 0, 1, 1, 1, 1, 1]  # segments (0: 0-2), (1: 2-3), (0: 3-5), (1: 5-10)


def test_segments_are_runs_of_equal_labels():
    assert to_segments(OVERCUT) == [(0, 0, 2), (1, 2, 3), (0, 3, 5), (1, 5, 10)]
    assert to_segments([]) == []


def test_shifted_boundaries_keep_edit_and_f1_up_to_the_smallest_iou():
    scores = segmentation_scores([SHIFTED], [TRUTH])
    assert scores == pytest.approx({"frame_acc": 80.0, "edit": 100.0, "f1@10": 100.0, "f1@25": 100.0, "f1@50": 100.0})
    assert f1_counts(SHIFTED, TRUTH, 0.6) == (2, 1, 1)  # the last segment's IoU 1/2 < 0.6


def test_over_segmentation_costs_edit_and_f1():
    # labels 0 1 0 1 against 0 1 2: one substitution and one deletion -> 1 - 2/4
    assert edit_score(OVERCUT, TRUTH) == pytest.approx(50.0)
    # (0: 0-2) matches truth 0 (IoU 1/2); (1: 2-3) overlaps no 1; (0: 3-5) finds truth 0 taken;
    # (1: 5-10) matches truth 1 (IoU 3/6); truth 2 unmatched: TP 2, FP 2, FN 1
    assert f1_counts(OVERCUT, TRUTH, 0.1) == (2, 2, 1)
    scores = segmentation_scores([OVERCUT], [TRUTH])
    f1 = 100 * 2 * 0.5 * (2 / 3) / (0.5 + 2 / 3)
    assert scores == pytest.approx({"frame_acc": 60.0, "edit": 50.0, "f1@10": f1, "f1@25": f1, "f1@50": f1})


def test_counts_are_summed_over_videos_before_f1():
    scores = segmentation_scores([SHIFTED, OVERCUT], [TRUTH, TRUTH])
    tp, fp, fn = 3 + 2, 0 + 2, 0 + 1
    f1 = 100 * 2 * tp / (2 * tp + fp + fn)
    assert scores["f1@10"] == pytest.approx(f1) and scores["edit"] == pytest.approx(75.0)
    assert scores["frame_acc"] == pytest.approx(70.0)
    with pytest.raises(ValueError, match="frames"):
        segmentation_scores([[0, 1]], [[0, 1, 1]])


def test_each_video_is_scored_against_its_own_truth():
    """Videos of different truths (and lengths): a perfect prediction of each scores 100
    everywhere, and the same predictions handed to the wrong videos do not."""
    truths = [[0, 0, 1, 1, 2, 2], [3, 3, 3, 1, 1, 1], [2, 2, 2, 2, 0, 0], [1, 0, 1, 0, 1, 0, 1, 0]]
    assert segmentation_scores(truths, truths) == pytest.approx(
        {"frame_acc": 100.0, "edit": 100.0, "f1@10": 100.0, "f1@25": 100.0, "f1@50": 100.0}
    )
    swapped = [truths[1], truths[0], truths[2], truths[3]]
    scores = segmentation_scores(swapped, truths)
    assert scores["frame_acc"] == pytest.approx(100 * (0 + 2 + 6 + 8) / 26)
    assert scores["edit"] < 100.0


def test_frame_accuracy_pools_the_frames_of_all_videos():
    """A long video right everywhere and a short one wrong everywhere: 10 of 12 frames are
    right (83.3%), not the mean of the two videos' accuracies (50%)."""
    long, short = [0] * 4 + [1] * 6, [2, 3]
    scores = segmentation_scores([long, [3, 2]], [long, short])
    assert scores["frame_acc"] == pytest.approx(100 * 10 / 12)
