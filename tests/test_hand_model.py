import pickle
import sys

import numpy as np
import pytest
import smplx
import torch
from conftest import toy_mano_arrays, write_chumpy_style_pickle
from smplx.utils import Struct

from wildhands.hand import keypoints as kp
from wildhands.hand.hand_model import HandModel, HandModelFileError, load_mano_arrays


def test_chumpy_style_file_loads_without_chumpy(tmp_path):
    path = tmp_path / "MANO_RIGHT.pkl"
    arrays = toy_mano_arrays()
    write_chumpy_style_pickle(path, arrays)
    assert "chumpy" not in sys.modules
    loaded = load_mano_arrays(path)
    assert "chumpy" not in sys.modules
    assert isinstance(loaded["shapedirs"], np.ndarray)
    np.testing.assert_allclose(loaded["shapedirs"], arrays["shapedirs"])
    assert isinstance(loaded["J_regressor"], np.ndarray)  # sparse -> dense
    np.testing.assert_allclose(loaded["J_regressor"], arrays["J_regressor"])
    with pytest.raises(ValueError, match="fingertips"):  # no stored tips: smplx's MANO ids, too big here
        HandModel(path)
    tips = arrays["fingertip_vertex_ids"].tolist()
    assert HandModel(path, fingertips=tips).fingertip_ids.tolist() == tips


@pytest.mark.parametrize("key,bad", [("shapedirs", None), ("posedirs", np.zeros((5, 3, 135))),
                                     ("hands_components", np.zeros((10, 45)))])
def test_bad_file_names_key_and_shape(tmp_path, key, bad):
    arrays = toy_mano_arrays()
    if bad is None:
        del arrays[key]
    else:
        arrays[key] = bad
    path = tmp_path / "broken.pkl"
    path.write_bytes(pickle.dumps(arrays, protocol=2))
    with pytest.raises(HandModelFileError) as err:
        load_mano_arrays(path)
    assert str(path) in str(err.value) and key in str(err.value)
    assert "missing" in str(err.value) or "expected shape" in str(err.value)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(HandModelFileError, match="does not exist"):
        load_mano_arrays(tmp_path / "nope.pkl")
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"not a pickle")
    with pytest.raises(HandModelFileError, match="junk.pkl"):
        load_mano_arrays(junk)


def _smplx_direct(path, arrays, betas, pose, orient, dtype):
    mano = smplx.MANO(str(path), data_struct=Struct(**arrays), use_pca=True, num_pca_comps=pose.shape[1],
                      flat_hand_mean=False, num_betas=betas.shape[1], dtype=dtype, batch_size=betas.shape[0])
    return mano(betas=betas, hand_pose=pose, global_orient=orient)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_matches_smplx_and_keypoint_order(toy_mano_path, dtype):
    arrays = load_mano_arrays(toy_mano_path)
    model = HandModel(toy_mano_path, num_pca_comps=12, dtype=dtype)
    g = torch.Generator().manual_seed(0)
    betas = torch.randn(3, 10, generator=g, dtype=dtype)
    pose = torch.randn(3, 12, generator=g, dtype=dtype)
    orient = torch.randn(3, 3, generator=g, dtype=dtype)
    out = model(betas, pose, orient)
    ref = _smplx_direct(toy_mano_path, arrays, betas, pose, orient, dtype)
    assert out.vertices.dtype == dtype
    assert torch.equal(out.vertices, ref.vertices)
    assert torch.equal(out.joints, ref.joints[:, :16])
    # OpenPose order: wrist, thumb CMC is MANO joint 13, index tip is the stored index tip vertex.
    assert torch.equal(out.keypoints[:, 0], out.joints[:, 0])
    assert torch.equal(out.keypoints[:, 1], out.joints[:, 13])
    assert torch.equal(out.keypoints[:, 8], out.vertices[:, arrays["fingertip_vertex_ids"][1]])
    assert out.keypoints.shape == (3, 21, 3) and out.palm.shape == (3, 3)


def test_no_trainable_parameters_and_gradients_flow(toy_mano_path):
    model = HandModel(toy_mano_path)
    assert list(model.parameters()) == []
    betas = torch.zeros(2, 10, requires_grad=True)
    pose = torch.zeros(2, 10, requires_grad=True)
    orient = torch.full((2, 3), 0.1, requires_grad=True)
    model(betas, pose, orient).keypoints.square().sum().backward()
    for t in (betas, pose, orient):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_fingertip_choices(toy_mano_path):
    assert HandModel(toy_mano_path, fingertips=[60, 61, 62, 63, 64]).fingertip_ids.tolist() == [60, 61, 62, 63, 64]
    with pytest.raises(ValueError, match="fingertips"):
        HandModel(toy_mano_path, fingertips="nails")


def test_bad_parameter_shapes_are_named(toy_mano_path):
    model = HandModel(toy_mano_path)
    with pytest.raises(ValueError, match="pose"):
        model(pose=torch.zeros(2, 7))
    with pytest.raises(ValueError, match="num_pca_comps"):
        HandModel(toy_mano_path, num_pca_comps=3)


def test_full_axis_angle_at_45(toy_mano_path):
    model = HandModel(toy_mano_path, num_pca_comps=45)
    out = model(pose=torch.zeros(1, 45))
    assert out.keypoints.shape == (1, 21, 3)


def test_hash_is_stable_and_distinguishes_models(toy_mano_path, tmp_path):
    other = tmp_path / "OTHER.pkl"
    other.write_bytes(pickle.dumps(toy_mano_arrays(seed=1), protocol=2))
    a, b = HandModel(toy_mano_path), HandModel(toy_mano_path)
    assert a.hash == b.hash and a.hash != HandModel(other).hash


def test_mapping_covers_every_keypoint_once():
    assert sorted(kp.MANO_TO_OPENPOSE) == list(range(21))
    assert [kp.KEYPOINT_NAMES[i] for i in kp.FINGERTIPS] == [f"{f}_tip" for f in kp.FINGERS]
