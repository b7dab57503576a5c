"""Real captured poses: the loader (mirroring, subject split, missing file) on a tiny fixture, and the 3D fit."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wildhands.data.datasets import DatasetNotFound
from wildhands.data.datasets.real_poses import PATH_ENV, SPLIT_SUBJECTS, default_real_poses_path, load_real_poses
from wildhands.fit.fit3d import Fit3D, kabsch_rotation
from wildhands.fit.lm import _jacobian
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import axis_angle_to_matrix
from wildhands.hand.hand_model import HandModel

SUBJECTS = [f"2020{n:04d}-subject-{n:02d}" for n in range(1, 11)]
FRAMES_PER_SUBJECT = 3


def handedness(joints: np.ndarray) -> np.ndarray:
    """+1 for right hands, -1 for left: the thumb MCP lies on the palm side of the plane through
    the wrist and the index and little MCPs, whose normal (index - wrist) x (little - wrist)
    points out of the palm of a right hand (true for every DexYCB frame once mirrored)."""
    normal = np.cross(joints[..., 5, :] - joints[..., 0, :], joints[..., 17, :] - joints[..., 0, :])
    thumb = joints[..., 2, :] - (joints[..., 0, :] + joints[..., 5, :]) / 2
    return np.sign(np.einsum("...i,...i->...", normal, thumb))


@pytest.fixture(scope="module")
def hand_model():
    """The open hand model (a right hand), as the quick profile loads it."""
    return HandModel(num_pca_comps=10, dtype=torch.float64)


@pytest.fixture(scope="module")
def right_hands(hand_model):
    """(30, 21, 3) model-made right hands in camera-like frames, metres, wrist anywhere."""
    g = torch.Generator().manual_seed(3)
    count = len(SUBJECTS) * FRAMES_PER_SUBJECT
    betas = torch.randn(count, hand_model.num_betas, generator=g).clamp(-2, 2)
    pose = 4 * torch.rand(count, hand_model.num_pca_comps, generator=g) - 2
    orient = torch.randn(count, 3, generator=g)
    with torch.no_grad():
        joints = hand_model(betas=betas, pose=pose, global_orient=orient).keypoints.double().numpy()
    return joints + np.array([0.0, 0.0, 0.6]) + 0.05 * torch.randn(count, 1, 3, generator=g).double().numpy()


@pytest.fixture
def poses_file(tmp_path, right_hands):
    """A DexYCB-like file: the right hands mirrored into left hands, 3 frames per subject."""
    path = tmp_path / "left_hands.npz"
    subjects = np.repeat(SUBJECTS, FRAMES_PER_SUBJECT)
    np.savez(path, joints_3d=(right_hands * [-1.0, 1.0, 1.0]).astype(np.float32), subject=subjects,
             sequence=np.array([s[:8] + "_1" for s in subjects]),
             frame=np.tile(np.arange(FRAMES_PER_SUBJECT), len(SUBJECTS)).astype(np.int32),
             mano_betas=np.zeros((len(subjects), 10), np.float32))
    return path


def test_loader_mirrors_left_hands_to_right_root_relative(poses_file, right_hands):
    poses = load_real_poses("all", poses_file)
    assert len(poses) == len(right_hands)
    assert (handedness(right_hands) > 0).all()                      # the model's hands are right hands
    raw = np.load(poses_file)["joints_3d"]
    assert (handedness(raw) < 0).all()                              # the file's, left
    assert (handedness(poses.joints) > 0).all()                     # the loader's, right again
    np.testing.assert_allclose(poses.joints + poses.root[:, None], right_hands, atol=1e-6)
    np.testing.assert_array_equal(poses.joints[:, kp.ROOT], 0.0)
    assert poses.joints.dtype == np.float64 and poses.subject.dtype.kind == "i"


def test_loader_splits_by_subject(poses_file):
    train, test = load_real_poses("train", poses_file), load_real_poses("test", poses_file)
    assert sorted(set(train.subject)) == list(SPLIT_SUBJECTS["train"]) == list(range(1, 9))
    assert sorted(set(test.subject)) == list(SPLIT_SUBJECTS["test"]) == [9, 10]
    assert len(train) + len(test) == len(load_real_poses("all", poses_file))
    assert not set(zip(train.sequence, train.frame, train.subject)) & set(zip(test.sequence, test.frame, test.subject))
    assert len(train.subsample(5)) == 5 and len(train.every(2)) == (len(train) + 1) // 2
    with pytest.raises(ValueError, match="split"):
        load_real_poses("val", poses_file)


def test_missing_file_names_the_path_and_the_variable(tmp_path, monkeypatch, poses_file):
    missing = tmp_path / "nowhere" / "dexycb_left_hands.npz"
    with pytest.raises(FileNotFoundError) as err:
        load_real_poses("test", missing)
    assert isinstance(err.value, DatasetNotFound)
    assert str(missing) in str(err.value) and PATH_ENV in str(err.value)
    monkeypatch.setenv(PATH_ENV, str(poses_file))
    assert default_real_poses_path() == poses_file
    assert set(load_real_poses("test").subject) == {9, 10}


def test_kabsch_recovers_a_rotation():
    g = torch.Generator().manual_seed(0)
    source = torch.randn(4, 21, 3, generator=g, dtype=torch.float64)
    rotation = axis_angle_to_matrix(3 * torch.randn(4, 3, generator=g, dtype=torch.float64))
    target = torch.einsum("bij,bkj->bki", rotation, source)
    torch.testing.assert_close(kabsch_rotation(source, target), rotation)


@pytest.mark.parametrize("space", ["pca", "full"])
def test_fit3d_jacobian_equals_autodiff(hand_model, space):
    fit = Fit3D(hand_model, pose_space=space)
    g = torch.Generator().manual_seed(1)
    x = 0.3 * torch.randn(3, fit.num_params, generator=g, dtype=torch.float64)
    targets = 0.05 * torch.randn(3, 21, 3, generator=g, dtype=torch.float64)
    base = axis_angle_to_matrix(torch.randn(3, 3, generator=g, dtype=torch.float64))
    residuals, jacobian = fit.residuals_and_jacobian(x, targets, base)
    expected_residuals, expected = _jacobian(lambda v: fit.residuals(v, targets, base), x)
    torch.testing.assert_close(residuals, expected_residuals)
    torch.testing.assert_close(jacobian, expected, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("space", ["pca", "full"])
def test_fit3d_recovers_a_model_made_hand(hand_model, space):
    fit = Fit3D(hand_model, pose_space=space, alpha_beta=1e-6, w_theta=1e-6, w_range=0.0)
    g = torch.Generator().manual_seed(2)
    betas = torch.randn(8, fit.num_betas, generator=g, dtype=torch.float64).clamp(-2, 2)
    pose = 4 * torch.rand(8, fit.model.num_pca_comps, generator=g, dtype=torch.float64) - 2
    rotation = axis_angle_to_matrix(2 * torch.randn(8, 3, generator=g, dtype=torch.float64))
    with torch.no_grad():
        joints = fit.model(betas, pose)
    targets = torch.einsum("bij,bkj->bki", rotation, joints - joints[:, :1]) + 0.3   # root moved: made relative
    result = fit.fit(targets)
    assert result.joint_error.max() < 1e-3                              # metres: within 1 mm everywhere
    angle = torch.arccos(((result.rotation.transpose(1, 2) @ rotation).diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2)
    assert angle.max() < np.radians(1.0)


def test_fit3d_rejects_bad_keypoints(hand_model):
    fit = Fit3D(hand_model)
    with pytest.raises(ValueError, match=r"\(B, 21, 3\)"):
        fit.fit(np.zeros((2, 20, 3)))
    bad = np.zeros((2, 21, 3))
    bad[1, 4] = np.nan
    with pytest.raises(ValueError, match=r"hands \[1\]"):
        fit.fit(bad)


@pytest.mark.skipif(not default_real_poses_path().is_file(), reason="needs ../shared/real_poses (DexYCB)")
def test_real_file_is_right_handed_once_mirrored_and_split():
    test = load_real_poses("test")
    assert set(test.subject) == {9, 10} and len(test) > 1000
    assert (handedness(test.joints) > 0).mean() > 0.99


def test_mixed_pose_corpus_keeps_every_real_pose_and_the_share():
    from wildhands.hand.open_hand import mixed_pose_corpus

    rng = np.random.default_rng(0)
    real, synthetic = rng.normal(size=(70, 45)), rng.normal(size=(50, 45)) + 10
    mixture = mixed_pose_corpus(synthetic, real, 0.3)
    assert len(mixture) == 100 and (mixture[:, 0] > 5).sum() == 30
    assert {tuple(r) for r in real} <= {tuple(m) for m in mixture}
    np.testing.assert_array_equal(mixture, mixed_pose_corpus(synthetic, real, 0.3))   # deterministic
    assert len(mixed_pose_corpus(synthetic, real, 0.0)) == 70
    with pytest.raises(ValueError, match="synthetic_share"):
        mixed_pose_corpus(synthetic, real, 1.0)


def test_evaluation_fits_model_made_hands_closely_and_draws(hand_model, poses_file, tmp_path):
    from wildhands.app.real_pose_report import evaluate_real_poses, residual_table

    metrics = evaluate_real_poses(hand_model, splits=("test",), spaces=("pca", "full"), path=poses_file, worst=1,
                                  figures_dir=tmp_path, log=lambda line: None)
    test = metrics["splits"]["test"]
    assert test["pca"]["hands"] == FRAMES_PER_SUBJECT * len(SPLIT_SUBJECTS["test"])
    assert test["full"]["median_mm"] < 1.5                       # the model's own hands, under the priors
    assert metrics["mean_pose"]["flat"]["extent_mm"] > metrics["mean_pose"]["model_theta0"]["extent_mm"]
    assert all((tmp_path / f"real_poses_worst_{s}.png").is_file() for s in ("pca", "full"))
    assert (tmp_path / "real_poses_mean_pose.png").is_file()
    assert len(residual_table(metrics).splitlines()) == 3


def test_sampled_real_hands_come_only_from_training_subjects(hand_model, poses_file):
    from wildhands.config import apply_overrides, load_profile
    from wildhands.data.real_pose_sampling import real_pose_labels
    from wildhands.data.synthetic import SampledHands

    labels = real_pose_labels(hand_model, poses_file, cache=False)
    train, test = load_real_poses("train", poses_file), load_real_poses("test", poses_file)
    assert len(labels) == len(train) and set(labels.subject) <= set(SPLIT_SUBJECTS["train"])
    np.testing.assert_allclose(np.einsum("nij,nkj->nki", labels.rotation, labels.joints_model), train.joints,
                               atol=1e-9)                                  # R (R^T y) = y: the captured view
    assert np.median(labels.fit_error_m) < 0.005                          # the model's own hands, 10-D space

    config = apply_overrides(load_profile("quick"), {"synthetic.real_pose_fraction": 1.0,
                                                     "synthetic.real_view_fraction": 1.0})
    samples = SampledHands(hand_model, config, 200, real_poses_path=poses_file).__getitems__(list(range(200)))
    assert all(s["source"] == "real_poses" for s in samples)
    drawn = np.stack([s["keypoints_3d"] for s in samples]).astype(np.float64)      # captured views: the joints
    to_train = np.abs(drawn[:, None] - train.joints[None]).max((-1, -2)).min(1)
    to_test = np.abs(drawn[:, None] - test.joints[None]).max((-1, -2)).min(1)
    assert (to_train < 1e-6).all() and (to_test > 1e-3).all()
    assert len({int(np.abs(d - train.joints).max((-1, -2)).argmin()) for d in drawn}) > len(train) // 2

    uniform = apply_overrides(config, {"synthetic.real_view_fraction": 0.0})
    turned = SampledHands(hand_model, uniform, 50, real_poses_path=poses_file).__getitems__(list(range(50)))
    def distances(joints):                                               # what no rotation changes
        return np.linalg.norm(joints[..., :, None, :] - joints[..., None, :, :], axis=-1)
    for s in turned:
        gaps = np.abs(distances(s["keypoints_3d"].astype(np.float64))[None] - distances(train.joints)).max((-1, -2))
        assert gaps.min() < 1e-6 and np.abs(distances(s["keypoints_3d"].astype(np.float64))[None]
                                            - distances(test.joints)).max((-1, -2)).min() > 1e-3


def test_sampled_hands_read_no_real_poses_at_zero_and_reject_bad_fractions(hand_model):
    from wildhands.config import apply_overrides, load_profile
    from wildhands.data.synthetic import SampledHands

    config = load_profile("quick")
    plain = SampledHands(hand_model, config, 8).__getitems__(list(range(8)))
    zero = SampledHands(hand_model, apply_overrides(config, {"synthetic.real_pose_fraction": 0.0}), 8)
    assert zero.real_poses is None
    for a, b in zip(plain, zero.__getitems__(list(range(8)))):
        np.testing.assert_array_equal(a["keypoints_2d"], b["keypoints_2d"])
    with pytest.raises(ValueError, match="real_pose_fraction"):
        SampledHands(hand_model, apply_overrides(config, {"synthetic.real_pose_fraction": 1.5}), 8)


@pytest.mark.skipif(not default_real_poses_path().is_file(), reason="needs ../shared/real_poses (DexYCB)")
def test_open_hand_skeleton_is_the_real_hands_median():
    from wildhands.data.real_pose_space import real_proportions
    from wildhands.hand import open_hand as oh

    measured = real_proportions(load_real_poses("train").joints)
    for name, stored in (("palm_joints", oh.PALM_JOINTS_MM), ("bone_lengths", oh.BONE_LENGTHS_MM)):
        for digit, values in measured[name].items():
            assert np.allclose(values, stored[digit], atol=0.06), (name, digit, values)


def test_real_pose_lifting_scores_a_checkpoint_on_a_handmade_file(poses_file):
    from wildhands.eval.real_pose_lifting import (ALIGNMENTS, LANDMARKS, REFINEMENTS, evaluate_real_poses,
                                                  markdown_table, rotation_errors_deg)
    from wildhands.net.checkpoints import load_model
    from wildhands.net.inference import current_inference_config
    from wildhands.paths import PROJECT_ROOT

    model, config = load_model(PROJECT_ROOT / "params" / "checkpoints" / "wildhands_2d_open_hand.pt")
    result = evaluate_real_poses(model, current_inference_config(config), count=None, path=poses_file)
    assert result["split"] == "test" and result["count"] == FRAMES_PER_SUBJECT * len(SPLIT_SUBJECTS["test"])
    assert set(result["keypoints"]) == {"exact", "detector"}
    keys = {*ALIGNMENTS, "rotation_deg_median", "rotation_deg_mean", "2d_px"}
    for rows in result["keypoints"].values():
        assert list(rows) == ["network", *REFINEMENTS]
        for name, row in rows.items():
            assert keys <= set(row) and all(np.isfinite(row[k]) for k in keys), (name, row)
            assert row["procrustes"] <= row["root"] + 1e-9 and row["2d_px"] < 40
    assert np.isfinite([result[LANDMARKS][k] for k in keys - {"2d_px"}]).all()
    assert result["keypoints"]["exact"]["10-D, no 3D term"]["2d_px"] < 2.0      # the model's own hands, fitted
    assert len(markdown_table(result).splitlines()) == 2 + 1 + 2 * (1 + len(REFINEMENTS))

    rotation = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, np.radians(30.0)]], dtype=torch.float64))[0].numpy()
    joints = load_real_poses("test", poses_file).joints[:2]
    np.testing.assert_allclose(rotation_errors_deg(joints @ rotation.T, joints), 30.0, atol=1e-6)


def test_gesture_poses_are_open_hand_gestures_in_views_like_dexycbs(toy_mano_path):
    from wildhands.eval.real_pose_lifting import gesture_pose_views
    from wildhands.hand.open_hand import synthetic_pose_corpus
    from wildhands.paths import OPEN_HAND_PATH

    model = HandModel(OPEN_HAND_PATH)
    samples, worlds = gesture_pose_views(model, count=6, seed=0, depth_m=(0.3, 0.8))
    again, _ = gesture_pose_views(model, count=6, seed=0, depth_m=(0.3, 0.8))
    assert len(samples) == 6 and worlds.shape == (6, kp.NUM_KEYPOINTS, 3)
    for sample, same in zip(samples, again):
        np.testing.assert_array_equal(sample["keypoints_2d"], same["keypoints_2d"])
        assert sample["keypoints_3d"].shape == (kp.NUM_KEYPOINTS, 3) and sample["pinhole"].shape == (3,)
        lengths = np.linalg.norm(np.diff(sample["keypoints_3d"][[9, 10, 11, 12]], axis=0), axis=1)
        assert (lengths > 0.01).all() and (lengths < 0.06).all()        # a hand's middle finger, metres
    # the corpus holds open hands: some gesture has its fingers nearly straight (tips far from the wrist)
    corpus, _, named = synthetic_pose_corpus(0)
    assert "flat" in named and len(corpus) >= 6
    reach = [np.linalg.norm(s["keypoints_3d"][12] - s["keypoints_3d"][0]) for s in samples]
    assert max(reach) > 0.12
    with pytest.raises(ValueError, match="not the open hand model"):
        gesture_pose_views(HandModel(toy_mano_path), count=2)

    # the network is given articulated detector-like keypoints as drawn, and scored against the truth
    from wildhands.eval.real_pose_lifting import evaluate
    from wildhands.net.checkpoints import load_model
    from wildhands.net.inference import current_inference_config
    from wildhands.paths import PROJECT_ROOT

    network, config = load_model(PROJECT_ROOT / "params" / "checkpoints" / "wildhands_2d_open_hand.pt")
    rows = {k: evaluate(network, current_inference_config(config), samples, worlds, k, refinements=None)
            for k in ("exact", "articulated")}
    assert rows["exact"]["network"]["input_2d_px"] == 0 and rows["articulated"]["network"]["input_2d_px"] > 1
    assert np.isfinite(rows["articulated"]["network"]["procrustes"])


def test_photographed_views_simulate_world_landmarks_seen_along_the_ray(poses_file):
    from wildhands.data.augment import WorldLandmarkNoise
    from wildhands.eval.real_pose_lifting import landmarks_in_camera, real_pose_views

    exact = WorldLandmarkNoise(rotation_sigma=0, palm_sigma=0, bone_sigma=0, length_sigma=0, scale_sigma=0)
    samples, worlds = real_pose_views("test", 12, 0, exact, path=poses_file, depth_m=(0.3, 0.8))
    truth = np.stack([s["keypoints_3d"] - s["keypoints_3d"][kp.ROOT] for s in samples])
    # as MediaPipe gives them, off-axis hands come out turned by the ray's angle; turned back by the
    # ray through the wrist, they are the hands in the camera's frame
    angles = np.degrees(np.arccos(np.clip((worlds * truth).sum(-1) / (np.linalg.norm(worlds, axis=-1)
                                                                      * np.linalg.norm(truth, axis=-1) + 1e-12),
                                          -1, 1)))[:, 1:].max(1)
    assert angles.max() > 10
    np.testing.assert_allclose(landmarks_in_camera(samples, worlds), truth, atol=1e-5)
    flat, flat_worlds = real_pose_views("test", 4, 0, exact, path=poses_file)     # weak perspective: no ray
    np.testing.assert_allclose(flat_worlds, [s["keypoints_3d"] - s["keypoints_3d"][kp.ROOT] for s in flat], atol=1e-6)
