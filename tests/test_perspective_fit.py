"""The camera-space hand's perspective fit (fit.perspective): it recovers a hand seen by a known
pinhole camera, right or left, and its mesh is the hand model's."""
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from wildhands.config import load_profile
from wildhands.fit.perspective import PerspectiveSettings, fit_camera_space, posed_mesh
from wildhands.hand import keypoints as kp
from wildhands.hand.camera_space import Intrinsics
from wildhands.hand.hand_model import HandModel

CAMERA = Intrinsics(600.0, 610.0, 330.0, 235.0, 640, 480, "flag")


@pytest.fixture(scope="module")
def model():
    return HandModel()


def _settings(**changes) -> PerspectiveSettings:
    """The quick profile's ``[camera_fit]`` with ``changes``."""
    return replace(PerspectiveSettings.from_config(load_profile("quick")), **changes)


def _hand(model, seed, pose_scale=0.8):
    """A right hand's parameters and its camera-frame keypoints and vertices (float64, by the hand model)."""
    rng = np.random.default_rng(seed)
    betas = rng.normal(scale=0.8, size=10)
    pose = rng.normal(scale=pose_scale, size=model.num_pca_comps)
    rotation = Rotation.from_rotvec([0.4, 2.6, 0.3]) * Rotation.from_rotvec(rng.normal(scale=0.4, size=3))
    translation = np.array([0.06, -0.04, 0.32])
    with torch.no_grad():
        out = model(betas=torch.tensor(betas[None], dtype=torch.float32),
                    pose=torch.tensor(pose[None], dtype=torch.float32))
    keys = out.keypoints[0].double().numpy()
    vertices = out.vertices[0].double().numpy()
    turn = rotation.as_matrix()
    return {"betas": betas, "pose": pose, "rotation": rotation, "translation": translation,
            "keypoints": (keys - keys[kp.ROOT]) @ turn.T + translation,
            "vertices": (vertices - keys[kp.ROOT]) @ turn.T + translation}


@pytest.mark.parametrize("mirrored", [False, True])
def test_fit_recovers_rotation_translation_and_pose(model, mirrored):
    """Keypoints of a known hand under full perspective; the fit starts from a rotation 0.1 rad off,
    a translation 3 cm off and a perturbed pose, and finds the hand (10-D pose space, weak prior)."""
    truth = _hand(model, 3)
    flip = np.diag([-1.0, 1.0, 1.0]) if mirrored else np.eye(3)
    pixels = CAMERA.project(truth["keypoints"] @ flip)
    rng = np.random.default_rng(4)
    start = {"global_orient": (Rotation.from_rotvec(rng.normal(scale=0.06, size=3)) * truth["rotation"]).as_rotvec(),
             "pose": truth["pose"] + rng.normal(scale=0.2, size=truth["pose"].shape), "pose_space": "pca",
             "betas": truth["betas"]}
    start_translation = (truth["translation"] + [0.01, -0.01, 0.03]) @ flip
    settings = _settings(pose_space="pca", sigma_rotation=100.0, sigma_pose=100.0, iterations=100)
    (fitted,) = fit_camera_space(model, [start], pixels[None], start_translation[None], [mirrored], CAMERA, settings)
    found = fitted["camera_space_fit"]
    turn_error = (Rotation.from_rotvec(found["global_orient"]) * truth["rotation"].inv()).magnitude()
    assert turn_error < 2e-3
    assert np.abs(fitted["translation_m"] - truth["translation"] @ flip).max() < 2e-4
    assert np.abs(found["pose"] - truth["pose"]).max() < 2e-2
    assert np.abs(CAMERA.project(fitted["joints_3d_camera"]) - pixels).max() < 1e-3
    # the mesh is the hand model's, posed by the fitted parameters and mirrored for a left hand
    assert np.abs(fitted["vertices_camera"] - truth["vertices"] @ flip).max() < 1e-3
    assert np.allclose(fitted["joints_3d_camera"][kp.ROOT], fitted["translation_m"])


def test_posed_mesh_is_the_hand_models(model):
    truth = _hand(model, 7)
    finger_pose = truth["pose"] @ model.mano.hand_components.double().numpy() + model.mano.hand_mean.double().numpy()
    vertices, keys = posed_mesh(model, truth["betas"][None], finger_pose[None])
    with torch.no_grad():
        out = model(betas=torch.tensor(truth["betas"][None], dtype=torch.float32),
                    pose=torch.tensor(truth["pose"][None], dtype=torch.float32))
    assert np.abs(vertices[0].numpy() - out.vertices[0].double().numpy()).max() < 1e-5
    assert np.abs(keys[0].numpy() - out.keypoints[0].double().numpy()).max() < 1e-5


def test_prior_keeps_the_fit_near_the_start_where_the_keypoints_are_silent(model):
    """With the keypoints of the start itself seen under perspective, the fit stays at the start."""
    truth = _hand(model, 11)
    pixels = CAMERA.project(truth["keypoints"])
    start = {"global_orient": truth["rotation"].as_rotvec(), "pose": truth["pose"], "pose_space": "pca",
             "betas": truth["betas"]}
    (fitted,) = fit_camera_space(model, [start], pixels[None], truth["translation"][None], [False], CAMERA,
                                 _settings(pose_space="full"))
    found = fitted["camera_space_fit"]
    assert found["pose_space"] == "full" and found["pose"].shape == (45,)
    offsets = truth["pose"] @ model.mano.hand_components.double().numpy()
    assert np.abs(found["pose"] - offsets).max() < 1e-3
    assert np.abs(fitted["translation_m"] - truth["translation"]).max() < 1e-5



def test_a_warm_start_from_the_previous_frame_reaches_the_same_fit_in_fewer_iterations(model):
    """Two frames of a moving hand whose weak-perspective starts err alike (as a video track's do):
    frame 2 fitted from its own start, and from it corrected as frame 1's fit corrected frame 1's
    (``carried_correction``), lands on the same hand, sooner."""
    from types import SimpleNamespace

    from wildhands.fit.perspective import carried_correction

    truth = _hand(model, 21)
    rel = (truth["keypoints"] - truth["translation"]) @ truth["rotation"].as_matrix()   # model frame, root-relative
    error = Rotation.from_rotvec([0.05, -0.04, 0.03])
    settings = _settings(pose_space="full")
    frames = []
    for k in range(2):
        turn = Rotation.from_rotvec([0.0, 0.03 * k, 0.0]) * truth["rotation"]
        place = truth["translation"] + k * np.array([0.004, -0.003, 0.006])
        start = {"global_orient": (error * turn).as_rotvec(), "pose": truth["pose"] + 0.1, "pose_space": "pca",
                 "betas": truth["betas"]}
        pixels = CAMERA.project(rel @ turn.as_matrix().T + place)[None]
        frames.append((pixels, start, (place + [0.01, -0.01, 0.03])[None]))

    def fit(frame, carry=None):
        return fit_camera_space(model, [frame[1]], frame[0], frame[2], [False], CAMERA, settings, carry)[0]

    first = fit(frames[0])
    carry = carried_correction(model, SimpleNamespace(params=frames[0][1], extras={
        **first, "translation_pose_fixed_m": frames[0][2][0]}))
    cold, warm = fit(frames[1]), fit(frames[1], [carry])
    assert warm["camera_space_fit"]["warm_start"] and not cold["camera_space_fit"]["warm_start"]
    assert np.abs(warm["joints_3d_camera"] - cold["joints_3d_camera"]).max() < 1e-5
    assert np.abs(CAMERA.project(warm["joints_3d_camera"]) - frames[1][0][0]).max() < 0.05
    assert warm["camera_space_fit"]["iterations"] < cold["camera_space_fit"]["iterations"]
