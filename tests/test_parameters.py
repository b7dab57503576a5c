"""The parameter vector v = (R axis-angle 3, t 2, s 1, beta, theta) has one owner: ``VectorLayout`` and
``HandParameters.to_vector`` / ``from_vector`` round-trip it, for the paper's v and the 2D fit's log s."""
import numpy as np
import pytest
import torch

from wildhands.fit.fit2d import Fit2D
from wildhands.hand.camera import axis_angle_to_matrix
from wildhands.hand.hand_model import HandModel
from wildhands.hand.parameters import CAMERA_DIMS, HandParameters, VectorLayout


def _parameters(count=5, num_betas=10, num_pose=10, seed=0) -> HandParameters:
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(count, 3, generator=g, dtype=torch.float64), dim=1)
    angle = 3.0 * torch.rand(count, 1, generator=g, dtype=torch.float64)          # below pi: a unique axis-angle
    return HandParameters(rotation=axis_angle_to_matrix(axis * angle),
                          trans=160 + 20 * torch.randn(count, 2, generator=g, dtype=torch.float64),
                          scale=700 + 200 * torch.rand(count, generator=g, dtype=torch.float64),
                          betas=torch.randn(count, num_betas, generator=g, dtype=torch.float64),
                          pose=torch.randn(count, num_pose, generator=g, dtype=torch.float64))


def _assert_same(a: HandParameters, b: HandParameters):
    for name in ("rotation", "trans", "scale", "betas", "pose"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("log_scale", [False, True])
@pytest.mark.parametrize("num_betas,num_pose", [(10, 10), (10, 45), (4, 6)])
def test_parameters_round_trip_through_the_vector(log_scale, num_betas, num_pose):
    params = _parameters(num_betas=num_betas, num_pose=num_pose)
    vector = params.to_vector(log_scale=log_scale)
    assert vector.shape == (5, CAMERA_DIMS + num_betas + num_pose)
    back = HandParameters.from_vector(vector, num_betas, log_scale=log_scale)
    _assert_same(back, params)
    torch.testing.assert_close(back.to_vector(log_scale=log_scale), vector, rtol=1e-12, atol=1e-10)


def test_the_layout_puts_each_part_where_the_paper_does():
    params = _parameters()
    vector = params.to_vector()
    layout = VectorLayout(10)
    torch.testing.assert_close(vector[:, :3], params.global_orient)
    torch.testing.assert_close(vector[:, 3:5], params.trans)
    torch.testing.assert_close(vector[:, 5], params.scale)
    torch.testing.assert_close(vector[:, 6:16], params.betas)
    torch.testing.assert_close(vector[:, 16:], params.pose)
    assert (layout.rotation, layout.trans, layout.scale) == (slice(0, 3), slice(3, 5), 5)
    assert (layout.betas, layout.pose, layout.size(10)) == (slice(6, 16), slice(16, None), 26)
    # The 2D fit's own vector holds log s; the split gives s back, for NumPy arrays too.
    logged = params.to_vector(log_scale=True)
    torch.testing.assert_close(logged[:, 5], params.scale.log())
    _, _, scale, _, _ = VectorLayout(10, log_scale=True).split(logged.numpy())
    np.testing.assert_allclose(scale, params.scale.numpy(), rtol=1e-12)
    # The 3D fit's vector has no camera: (R 3, beta, theta).
    bare = VectorLayout(10, camera=False)
    assert (bare.betas, bare.pose, bare.size(45)) == (slice(3, 13), slice(13, None), 58)
    assert len(bare.split(torch.zeros(2, 58))) == 3


def test_the_2d_fit_packs_with_the_same_layout():
    fit = Fit2D(HandModel())
    params = _parameters(num_betas=fit.num_betas, num_pose=fit.num_pose)
    torch.testing.assert_close(fit.pack(params), params.to_vector(log_scale=True))
    assert fit.num_params == params.to_vector().shape[1]


def test_bad_vectors_are_clear_errors():
    with pytest.raises(ValueError, match="parameter vector: expected shape"):
        HandParameters.from_vector(torch.zeros(26), 10)
    with pytest.raises(ValueError, match="parameter vector: expected at least 16 columns"):
        HandParameters.from_vector(torch.zeros(2, 12), 10)
    with pytest.raises(ValueError, match="no t and s"):
        VectorLayout(10, camera=False).join(*(torch.zeros(1, n) for n in (3, 2, 1, 10, 10)))
