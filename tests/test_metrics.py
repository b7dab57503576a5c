import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from wildhands.eval import metrics
from wildhands.hand import keypoints as kp


def _hands(n=4, seed=0):
    """Random (n, 21, 3) keypoints in metres, spread like a hand."""
    return np.random.default_rng(seed).normal(scale=0.04, size=(n, 21, 3))


def test_constant_offset_pck_steps_at_the_offset():
    gt = _hands()
    pred = gt + np.array([0.010, 0.0, 0.0]) + 0.2  # 10 mm off once the 0.2 m root shift is undone
    pred[:, kp.ROOT] = gt[:, kp.ROOT] + 0.2      # root on target: its own error is 0
    errors = 1000 * metrics.keypoint_errors(metrics.align_root(pred, gt), gt, np.ones((4, 21), bool))
    non_root = np.delete(errors, kp.ROOT, axis=1)
    np.testing.assert_allclose(non_root, 10.0, atol=1e-9)
    curve = metrics.pck_curve(non_root, [0, 9.99, 10.01, 30])
    np.testing.assert_allclose(curve, [0, 0, 1, 1])


def test_auc_by_hand():
    errors = np.full((3, 21), 30.0)               # every keypoint 30 mm off
    # PCK is 0 on [20, 30) and 1 on [30, 50]: area 20 of 30.
    assert metrics.pck_auc(errors, 20, 50) == pytest.approx(2 / 3)
    errors[:, :7] = 10.0                           # a third of the keypoints always correct
    assert metrics.pck_auc(errors, 20, 50) == pytest.approx(1 / 3 + 2 / 3 * 2 / 3)
    assert metrics.pck_auc(np.full((2, 21), 60.0), 20, 50) == 0.0
    # The exact integral is the limit of the trapezoid rule on a fine grid.
    errs = np.random.default_rng(1).uniform(0, 60, size=(50, 21))
    grid = np.linspace(20, 50, 30001)
    assert metrics.pck_auc(errs, 20, 50) == pytest.approx(
        metrics.curve_auc(grid, metrics.pck_curve(errs, grid), 20, 50), abs=1e-3)


def test_curve_auc_of_tabulated_curves():
    thresholds = np.arange(0, 51)
    assert metrics.curve_auc(thresholds, np.ones(51), 20, 50) == pytest.approx(1.0)
    assert metrics.curve_auc(thresholds, thresholds / 50, 20, 50) == pytest.approx(0.7)
    # A curve tabulated from 25 only is integrated over the part it covers.
    assert metrics.curve_auc([25, 50], [0.5, 1.0], 20, 50) == pytest.approx(0.75)


def test_invalid_keypoints_are_ignored():
    gt = _hands(2)
    pred = gt.copy()
    pred[0, 5] += [0.5, 0, 0]                      # a wild prediction at an unannotated keypoint
    gt[1, 7] = np.nan                              # an unannotated ground truth stored as NaN
    valid = np.ones((2, 21), bool)
    valid[0, 5] = valid[1, 7] = False
    out = metrics.evaluate_3d(pred, gt, valid)
    for alignment in ("root", "root_scale", "procrustes"):
        assert out[alignment]["mean_mm"] == pytest.approx(0.0, abs=1e-6)
        assert out[alignment]["num_keypoints_scored"] == 40
    assert out["root"]["per_keypoint"]["index_mcp"]["count"] == 1
    # Without a mask, non-finite ground truth marks the unannotated keypoints.
    assert metrics.evaluate_3d(gt, gt)["root"]["num_keypoints_scored"] == 41


def test_keypoint_average_versus_pooled():
    errors = np.full((4, 21), np.nan)
    errors[:, 0] = 10.0                            # wrist annotated in 4 samples
    errors[0, 1] = 30.0                            # thumb CMC in one
    assert metrics.mean_error(errors, "keypoints") == pytest.approx(20.0)
    assert metrics.mean_error(errors, "pooled") == pytest.approx(14.0)
    np.testing.assert_allclose(metrics.pck_curve(errors, [20], "keypoints"), [0.5])
    np.testing.assert_allclose(metrics.pck_curve(errors, [20], "pooled"), [0.8])


def test_procrustes_recovers_a_similarity_copy():
    gt = _hands(3)
    rot = Rotation.from_rotvec([[0.3, -1.2, 2.0], [3.0, 0.1, 0.0], [0.0, 0.0, 0.5]]).as_matrix()
    pred = 1.7 * np.einsum("nij,nkj->nki", rot, gt) + np.array([0.1, -0.3, 0.9])
    aligned = metrics.align_procrustes(pred, gt)
    np.testing.assert_allclose(aligned, gt, atol=1e-12)
    assert metrics.evaluate_3d(pred, gt, alignments=("procrustes",))["procrustes"]["mean_mm"] < 1e-6
    # Root alignment alone leaves the rotation and scale as error.
    assert metrics.evaluate_3d(pred, gt, alignments=("root",))["root"]["mean_mm"] > 10


def test_procrustes_excludes_reflections():
    gt = _hands(1)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    _, rotation, _ = metrics.similarity_transform(mirrored, gt)
    assert np.linalg.det(rotation[0]) == pytest.approx(1.0)
    _, rotation, _ = metrics.similarity_transform(mirrored, gt, allow_reflection=True)
    assert np.linalg.det(rotation[0]) == pytest.approx(-1.0)


def test_root_scale_uses_middle_mcp_pip_bone():
    gt = _hands(2)
    pred = 0.5 * (gt - gt[:, :1]) + gt[:, :1] + 0.05
    aligned = metrics.align_root_scale(pred, gt)
    np.testing.assert_allclose(aligned, gt, atol=1e-12)
    assert metrics.SCALE_BONE == (kp.KEYPOINT_NAMES.index("middle_mcp"), kp.KEYPOINT_NAMES.index("middle_pip"))


def test_palm_root_for_stb():
    gt = _hands(2)
    pred = gt + 0.01
    pred[:, 9] = gt[:, 9]                          # only keypoint 9 is right: use it as the root
    out = metrics.evaluate_3d(pred, gt, alignments=("root",), root=9)["root"]
    assert out["root"] == 9 and out["per_keypoint"]["middle_mcp"]["mean_mm"] == 0.0
    assert out["mean_mm"] == pytest.approx(20 / 21 * 1000 * 0.01 * np.sqrt(3))


def test_fingertip_protocol_scores_tips_after_centroid_alignment():
    gt = _hands(2)
    pred = gt + 0.3                                # a pure translation: zero error after alignment
    pred[:, 0] += 1.0                              # the wrist is not scored
    valid = np.zeros((2, 21), bool)
    valid[:, list(kp.FINGERTIPS)] = True
    valid[1, 8] = False                            # an unannotated tip is left out of the centroid too
    pred[1, 8] += 1.0
    out = metrics.evaluate_3d(pred, gt, valid, alignments=("fingertips",))["fingertips"]
    assert out["mean_mm"] == pytest.approx(0.0, abs=1e-9)
    assert out["num_keypoints_scored"] == 9
    assert out["per_keypoint"]["wrist"]["count"] == 0
    pred[0, 4] += [0.005, 0, 0]                    # one tip 5 mm off moves the centroid by 1 mm
    out = metrics.evaluate_3d(pred, gt, valid, alignments=("fingertips",))["fingertips"]
    assert out["per_keypoint"]["thumb_tip"]["mean_mm"] == pytest.approx((4 + 0) / 2)
    with pytest.raises(ValueError, match="no annotated fingertip"):
        metrics.evaluate_3d(pred, gt, np.zeros((2, 21), bool), alignments=("fingertips",))


def test_2d_summary_is_json_ready():
    gt = np.random.default_rng(2).integers(0, 320, size=(5, 21, 2)).astype(float)
    pred = gt + np.array([3.0, 4.0])               # exactly 5 px everywhere: correct from 5 px on
    out = metrics.evaluate_2d(pred, gt)
    json.dumps(out)
    assert out["mean_px"] == pytest.approx(5.0)
    assert out["thresholds_px"][:6] == [0, 1, 2, 3, 4, 5]
    assert out["pck"][4] == 0.0 and out["pck"][5] == 1.0
    assert out["auc"] == pytest.approx(25 / 30)
    assert len(out["per_sample_mean"]) == 5
    json.dumps(metrics.evaluate_3d(_hands(), _hands(seed=1)))


@pytest.mark.parametrize("pred,gt,valid,match", [
    (np.zeros((2, 21, 3)), np.zeros((2, 20, 3)), None, "gt: expected shape"),
    (np.zeros((2, 21, 3)), np.zeros((3, 21, 3)), None, "shapes differ"),
    (np.zeros((2, 21, 3)), np.zeros((2, 21, 3)), np.ones((2, 20)), "valid: expected shape"),
    (np.full((2, 21, 3), np.nan), np.zeros((2, 21, 3)), None, "pred: NaN"),
])
def test_bad_inputs_name_the_argument(pred, gt, valid, match):
    with pytest.raises(ValueError, match=match):
        metrics.evaluate_3d(pred, gt, valid)


def test_root_alignment_needs_annotated_root():
    gt = _hands(2)
    valid = np.ones((2, 21), bool)
    valid[1, 0] = False
    with pytest.raises(ValueError, match="samples \\[1\\]"):
        metrics.evaluate_3d(gt, gt, valid, alignments=("root",))


def test_eval_settings_from_profile():
    from wildhands.config import MissingSetting, load_profile

    settings = metrics.EvalSettings.from_config(load_profile("quick"))
    three_d, two_d = settings.arguments_3d(), settings.arguments_2d()
    assert three_d["thresholds_mm"][0] == 0 and three_d["thresholds_mm"][-1] == 50
    assert three_d["auc_range_mm"] == (20.0, 50.0)
    assert two_d["thresholds_px"][-1] == 30 and two_d["auc_range_px"] == (0.0, 30.0)
    config = load_profile("quick")
    del config["eval"]["pck_step_2d_px"]
    with pytest.raises(MissingSetting, match=r"\[eval\] pck_step_2d_px"):
        metrics.EvalSettings.from_config(config)


def test_evaluate_predictions_in_one_call():
    from wildhands.config import load_profile

    gt3, gt2 = _hands(3), np.random.default_rng(4).uniform(0, 320, size=(3, 21, 2))
    out = metrics.evaluate_predictions(gt3 + 0.002, gt3, gt2 + 1.0, gt2,
                                       settings=metrics.EvalSettings.from_config(load_profile("quick")))
    assert set(out) == {"3d", "2d"} and set(out["3d"]) == {"root", "root_scale", "procrustes"}
    assert out["3d"]["root"]["mean_mm"] == pytest.approx(0.0, abs=1e-9)
    assert out["2d"]["mean_px"] == pytest.approx(np.sqrt(2))
    json.dumps(out)
    assert set(metrics.evaluate_predictions(pred_2d=gt2, gt_2d=gt2)) == {"2d"}
    with pytest.raises(ValueError, match="together"):
        metrics.evaluate_predictions(pred_3d=gt3)
