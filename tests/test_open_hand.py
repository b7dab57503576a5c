"""The open hand model: geometry, proportions, shape and pose spaces, and the smplx code path."""
import numpy as np
import pytest
import torch

from wildhands import keypoints as kp
from wildhands.hand_model import HandModel, hand_measurements, hand_model_hash, load_mano_arrays, rest_keypoints
from wildhands.open_hand import (FLEXION_RANGE, _FINGER_JOINTS, _angle_array, _pose_vectors, build_open_hand_model,
                                 check_closed, joint_angles, joint_axes, named_poses, rest_skeleton, signed_volume)
from wildhands.paths import OPEN_HAND_PATH


@pytest.fixture(scope="module")
def arrays():
    return load_mano_arrays(OPEN_HAND_PATH)


@pytest.fixture(scope="module")
def model():
    return HandModel(OPEN_HAND_PATH)


@pytest.fixture(scope="module")
def axes():
    return joint_axes(*rest_skeleton())


def test_is_the_default_and_loads_through_smplx(model):
    assert HandModel().path == OPEN_HAND_PATH and model.name == "open_hand"
    assert 700 <= model.num_vertices <= 2000


def test_closed_oriented_outward_mesh(arrays):
    faces = arrays["f"].astype(np.int64)
    check_closed(faces)
    assert signed_volume(arrays["v_template"], faces) > 0
    tri = arrays["v_template"][faces]
    areas = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1) / 2
    assert areas.min() > 0


def test_adult_proportions(model):
    m = hand_measurements(model)
    assert 170 <= m["hand_length_mm"] <= 200
    lengths = m["finger_lengths_mm"]
    assert lengths["middle"] > lengths["index"] > lengths["pinky"] and lengths["middle"] > lengths["ring"] > lengths["pinky"]


def test_kinematic_tree_and_regressor(arrays):
    assert list(arrays["kintree_table"][0, 1:]) == list(kp.MANO_PARENTS[1:])
    assert np.allclose(arrays["J_regressor"].sum(1), 1.0)
    assert np.allclose(arrays["J_regressor"] @ arrays["v_template"], arrays["J"], atol=1e-9)
    assert np.allclose(arrays["weights"].sum(1), 1.0)


def test_skinning_stays_within_each_finger(arrays):
    weights = arrays["weights"]
    for finger, ids in _FINGER_JOINTS.items():
        others = [j for f, js in _FINGER_JOINTS.items() if f != finger for j in js]
        owned = weights[:, list(ids)].sum(1) > 0.5
        assert weights[owned][:, others].max() < 1e-6


def test_shape_space_unit_variance_and_plausible_extremes(model):
    lengths = []
    for value in (-2.0, 2.0):
        betas = torch.zeros(10)
        betas[0] = value
        lengths.append(hand_measurements(model, betas)["hand_length_mm"])
    assert 150 <= min(lengths) and max(lengths) <= 225 and abs(lengths[1] - lengths[0]) > 10
    # Betas ~ N(0, 1) give a population whose hand length spread is a few percent.
    rng = np.random.default_rng(0)
    sample = [hand_measurements(model, rng.standard_normal(10))["hand_length_mm"] for _ in range(40)]
    assert 3 < np.std(sample) < 25


def test_random_poses_stay_in_joint_ranges(arrays, axes):
    coefficients = np.random.default_rng(0).uniform(-2, 2, (1000, 10))
    full = coefficients @ arrays["hands_components"][:10] + arrays["hands_mean"]
    flexion = joint_angles(full, axes)[..., 0]
    kinds = ["mcp", "pip", "dip"] * 4 + ["thumb_cmc", "thumb_mcp", "thumb_ip"]
    for j, kind in enumerate(kinds):
        low, high = FLEXION_RANGE[kind]
        assert flexion[:, j].min() >= low - 10 and flexion[:, j].max() <= high + 10, (j, kind)


def test_reference_poses_are_in_the_space_and_fingers_stay_apart(arrays, model, axes):
    components = arrays["hands_components"][:10]
    for name in ("fist", "pinch", "point", "spread"):
        target = _pose_vectors(_angle_array(named_poses()[name])[None], axes)[0]
        coefficients = np.linalg.lstsq(components.T, target - arrays["hands_mean"], rcond=None)[0]
        reconstruction = coefficients @ components + arrays["hands_mean"]
        assert np.abs(joint_angles(reconstruction, axes) - joint_angles(target, axes))[..., 0].max() < 25, name
        with torch.no_grad():
            verts = model(pose=torch.as_tensor(coefficients[None], dtype=torch.float32)).vertices[0].numpy()
        owner = arrays["weights"].argmax(1)
        tips = {f: verts[owner == ids[-1]] for f, ids in _FINGER_JOINTS.items()}
        for a, b in (("index", "middle"), ("middle", "ring"), ("ring", "pinky")):
            gap = np.linalg.norm(tips[a][:, None] - tips[b][None], axis=-1).min()
            assert gap > 0.0005, (name, a, b, gap)  # surfaces may touch, not cross


def test_fingertips_are_the_ends_of_their_fingers(model, arrays):
    keypoints = rest_keypoints(model).numpy()
    for finger in kp.FINGERS:
        base, *_, tip = kp.FINGER_KEYPOINTS[finger]
        direction = keypoints[tip] - keypoints[tip - 1]
        direction /= np.linalg.norm(direction)
        owner = arrays["weights"].argmax(1) == _FINGER_JOINTS[finger][-1]
        reach = (arrays["v_template"][owner] - keypoints[tip - 1]) @ direction
        assert (keypoints[tip] - keypoints[tip - 1]) @ direction >= reach.max() - 0.004, finger


def test_builder_is_deterministic_and_matches_the_shipped_file(arrays):
    assert hand_model_hash(build_open_hand_model()) == hand_model_hash(arrays)
