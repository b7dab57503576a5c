"""Scoring predictions on labelled photos: per-hand errors, the gap to the detector, the summary."""
from types import SimpleNamespace

import numpy as np
import pytest

from wildhands.app.photo_eval import PALM_KEYPOINTS, gap_summary, score_hand, summarize


def _square_hand(offset=(0.0, 0.0), palm_offset=(0.0, 0.0)):
    points = np.stack(np.meshgrid(np.arange(3), np.arange(7)), -1).reshape(-1, 2)[:21] * 20.0 + 100 + offset
    points[list(PALM_KEYPOINTS)] += palm_offset
    return points


def test_a_hand_scores_its_errors_and_how_far_the_output_left_its_detector():
    labels = np.c_[_square_hand(), np.ones(21)]
    detection = SimpleNamespace(keypoints_2d=_square_hand(offset=(4.0, 0.0)), world_landmarks=None)
    result = SimpleNamespace(keypoints_2d=_square_hand(offset=(4.0, 0.0), palm_offset=(0.0, 3.0)))
    row = score_hand({"image": "a.jpg", "keypoints_2d": labels.tolist()}, SimpleNamespace(detection=detection), result)
    to_crop = 320 / (2.2 * 120)                       # the labels' box is 40 x 120 px
    assert row["detector_px"] == pytest.approx(4.0 * to_crop)
    gap = np.asarray(row["gap_px"])
    assert np.allclose(gap[list(PALM_KEYPOINTS)], 3.0 * to_crop) and np.allclose(np.delete(gap, PALM_KEYPOINTS), 0)
    summary = summarize([row, {"image": "b.jpg", "found": False}])
    assert summary["found"] == 1 and summary["hands"] == 2 and summary["output_not_worse"] == 0
    assert summary["gap_palm_median_px"] == pytest.approx(3.0 * to_crop) and summary["gap_fingers_median_px"] == 0


def test_gap_summary_takes_medians_over_hands():
    gaps = [np.full(21, 1.0), np.full(21, 2.0), np.full(21, 9.0)]
    assert gap_summary(gaps)["gap_median_px"] == pytest.approx(2.0) and gap_summary([]) == {}
