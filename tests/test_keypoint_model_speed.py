"""The keypoint model's level-by-level layout (hand.keypoint_model): the same keypoints as the hand
model and Jacobians equal to autodiff, for MANO's tree and for one whose levels are not in chain
order, with pose blend shapes and blended skinning weights at the tips."""
import pickle

import numpy as np
import pytest
import torch
from conftest import toy_mano_arrays

from wildhands.hand.hand_model import HandModel
from wildhands.hand.keypoint_model import KeypointModel, so3_left_jacobian

# Joints 1-5 hang from the root, 6-10 from 1-5 in reverse, 11-15 from 6-10 rotated by two: levels
# whose parents are not in their own order (MANO's five chains are).
SHUFFLED_PARENTS = [-1, 0, 0, 0, 0, 0, 5, 4, 3, 2, 1, 8, 9, 10, 6, 7]


def _model(tmp_path, parents=None, posedirs_scale=1e-3) -> HandModel:
    arrays = toy_mano_arrays()
    rng = np.random.default_rng(7)
    arrays["posedirs"] = rng.normal(scale=posedirs_scale, size=arrays["posedirs"].shape)
    tips = arrays["fingertip_vertex_ids"]
    weights = rng.random((len(tips), 16)) ** 4      # tips skinned to several joints
    arrays["weights"][tips] = weights / weights.sum(1, keepdims=True)
    if parents is not None:
        arrays["kintree_table"][0, 1:] = parents[1:]
    path = tmp_path / "TOY_RIGHT.pkl"
    with open(path, "wb") as f:
        pickle.dump(arrays, f, protocol=2)
    return HandModel(path, dtype=torch.float64)


def _inputs(model, batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    betas = torch.randn(batch, model.num_betas, generator=g, dtype=torch.float64)
    finger_pose = 0.5 * torch.randn(batch, 45, generator=g, dtype=torch.float64)
    finger_pose[0, 3:6] = 0.0                       # a joint at rest: the small-angle branches
    finger_pose[-1, 9:12] = 1e-5
    return betas, finger_pose


@pytest.mark.parametrize("parents", [None, SHUFFLED_PARENTS], ids=["mano", "shuffled"])
@pytest.mark.parametrize("batch", [1, 3])
def test_keypoints_equal_the_hand_model(tmp_path, parents, batch):
    model = _model(tmp_path, parents)
    reduced = KeypointModel(model)
    if parents is not None:
        assert any(getattr(reduced, name, None) is not None for name in dir(reduced) if "parents_in_level" in name)
    betas, finger_pose = _inputs(model, batch)
    full = HandModel(model.path, num_pca_comps=45, dtype=torch.float64)
    expected = full(betas=betas, pose=finger_pose - reduced.pose_mean).keypoints
    torch.testing.assert_close(reduced.keypoints(betas, finger_pose), expected, rtol=0, atol=1e-9)   # smplx nudges angles by 1e-8
    pca = 0.5 * torch.randn(batch, model.num_pca_comps, dtype=torch.float64)
    torch.testing.assert_close(reduced(betas, pca), model(betas=betas, pose=pca).keypoints, rtol=0, atol=1e-9)


@pytest.mark.parametrize("parents", [None, SHUFFLED_PARENTS], ids=["mano", "shuffled"])
@pytest.mark.parametrize("posedirs_scale", [0.0, 1e-2])
def test_jacobians_equal_autodiff(tmp_path, parents, posedirs_scale):
    model = _model(tmp_path, parents, posedirs_scale)
    reduced = KeypointModel(model)
    assert reduced.has_tip_posedirs == (posedirs_scale > 0)
    betas, finger_pose = _inputs(model, 2, seed=1)
    jac_beta, jac_pose = torch.func.jacfwd(reduced.keypoints, argnums=(0, 1))(betas, finger_pose)
    # (B, 21, 3, B, S) -> the per-hand blocks (B, 21, 3, S).
    rows = torch.arange(2)
    jac_beta, jac_pose = jac_beta[rows, ..., rows, :], jac_pose[rows, ..., rows, :]
    g = torch.Generator().manual_seed(2)
    random = torch.randn(4, 45, generator=g, dtype=torch.float64)
    for directions, expected in ((None, jac_pose), (reduced.components, jac_pose @ reduced.components.T),
                                 (random, jac_pose @ random.T)):
        points, dbeta, dpose = reduced.keypoints_and_jacobians(betas, finger_pose, directions)
        torch.testing.assert_close(points, reduced.keypoints(betas, finger_pose), rtol=0, atol=0)
        torch.testing.assert_close(dbeta, jac_beta, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(dpose, expected, rtol=1e-9, atol=1e-12)


def test_so3_left_jacobian_turns_rotations():
    """d R(a) = [Jl(a) da]x R(a), also at and near zero (the Taylor branches)."""
    from wildhands.hand.camera import axis_angle_to_matrix

    g = torch.Generator().manual_seed(3)
    angles = torch.cat([torch.randn(4, 3, generator=g, dtype=torch.float64),
                        torch.zeros(1, 3, dtype=torch.float64), torch.full((1, 3), 1e-5, dtype=torch.float64)])
    for a in angles:
        numeric = torch.func.jacfwd(axis_angle_to_matrix)(a)                              # (3, 3, 3 da)
        left = so3_left_jacobian(a)
        rot = axis_angle_to_matrix(a)
        for m in range(3):
            u = left[:, m]
            skew = torch.tensor([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]], dtype=torch.float64)
            torch.testing.assert_close(numeric[..., m], skew @ rot, rtol=1e-7, atol=1e-9)
    assert so3_left_jacobian(angles.reshape(2, 3, 3)).shape == (2, 3, 3, 3)
