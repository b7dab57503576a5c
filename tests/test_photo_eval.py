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


def test_the_hand_model_reaches_its_own_hands_and_not_a_broken_one():
    import torch

    from wildhands.app.photo_eval import model_reach_px
    from wildhands.hand.hand_model import HandModel
    from wildhands.hand.keypoint_model import KeypointModel
    from wildhands.paths import OPEN_HAND_PATH

    model = HandModel(OPEN_HAND_PATH)
    pose = torch.as_tensor(load_named_pose(model, "relaxed"))[None]
    joints = KeypointModel(model).keypoints(torch.zeros(1, model.num_betas, dtype=torch.float64), pose)[0].numpy()
    hand = joints[:, :2] * 1500 + 300                          # a weak-perspective view, px
    broken = hand.copy()
    broken[8] += [60.0, -60.0]                                   # an index tip no finger can reach
    mirrored = hand * [-1, 1] + [1000, 0]                        # the same hand seen as a left one
    reach = model_reach_px(model, np.stack([hand, broken, mirrored]), mirrored=[False, False, True])
    assert reach[0] < 0.5 and reach[2] < 0.5 and reach[1] > 1.5
    with pytest.raises(ValueError, match="keypoints_2d"):
        model_reach_px(model, hand)


def load_named_pose(model, name):
    from wildhands.hand.hand_model import load_mano_arrays

    return load_mano_arrays(model.path)["pose_prior"]["named_poses"][name]
