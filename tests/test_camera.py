import numpy as np
import pytest
import torch

from wildhands.hand import camera


def test_rodrigues_round_trip_and_known_rotation():
    g = torch.Generator().manual_seed(0)
    aa = torch.randn(64, 3, generator=g, dtype=torch.float64)
    aa = aa / aa.norm(dim=-1, keepdim=True) * torch.rand(64, 1, generator=g, dtype=torch.float64) * 3.1
    R = camera.axis_angle_to_matrix(aa)
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(64, 3, 3), atol=1e-10)
    assert torch.allclose(camera.matrix_to_axis_angle(R), aa, atol=1e-6)
    quarter = camera.axis_angle_to_matrix(torch.tensor([0.0, 0.0, np.pi / 2], dtype=torch.float64))
    assert torch.allclose(quarter @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
                          torch.tensor([0.0, 1, 0], dtype=torch.float64), atol=1e-12)


def test_rotation_near_pi_and_zero():
    for angle in (np.pi - 1e-5, 1e-9, 0.0):
        aa = torch.tensor([[0.0, angle, 0.0]], dtype=torch.float64)
        back = camera.matrix_to_axis_angle(camera.axis_angle_to_matrix(aa))
        assert torch.allclose(back, aa, atol=1e-4)
    aa = torch.zeros(1, 3, requires_grad=True)
    camera.axis_angle_to_matrix(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()


def test_rot6d_round_trip():
    R = camera.axis_angle_to_matrix(torch.randn(8, 3, dtype=torch.float64))
    assert torch.allclose(camera.rot6d_to_matrix(camera.matrix_to_rot6d(R)), R, atol=1e-10)


def test_weak_perspective_root_lands_on_t_and_y_is_down():
    points = torch.tensor([[[0.0, 0.0, 0.0], [0.01, 0.02, 0.5]]])
    R = torch.eye(3)[None]
    out = camera.weak_perspective_project(points + 0.3, R, torch.tensor([1000.0]), torch.tensor([[160.0, 150.0]]),
                                          root=points[:, 0] + 0.3)
    assert torch.allclose(out[0, 0], torch.tensor([160.0, 150.0]))
    assert torch.allclose(out[0, 1], torch.tensor([170.0, 170.0]))  # +y in camera = further down the image


def test_mirroring_is_an_involution_and_consistent():
    W = 320
    pts = np.array([[0.0, 5.0], [319.0, 7.0], [100.5, 3.0]])
    assert np.allclose(camera.mirror_points_2d(pts, W)[:, 0], [319.0, 0.0, 218.5])
    assert np.allclose(camera.mirror_points_2d(camera.mirror_points_2d(pts, W), W), pts)
    faces = np.array([[0, 1, 2]])
    assert camera.mirror_faces(faces).tolist() == [[2, 1, 0]]
    # Mirroring a rotated point equals rotating the mirrored point by the mirrored rotation.
    aa = torch.tensor([[0.3, -0.7, 1.1]], dtype=torch.float64)
    p = torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64)
    lhs = camera.mirror_points_3d(p @ camera.axis_angle_to_matrix(aa)[0].T)
    rhs = camera.mirror_points_3d(p) @ camera.axis_angle_to_matrix(camera.mirror_axis_angle(aa))[0].T
    assert torch.allclose(lhs, rhs, atol=1e-12)


def test_numpy_rotations_agree_with_each_other_and_the_torch_one():
    rng = np.random.default_rng(0)
    aa = rng.normal(size=(32, 3))
    aa *= rng.uniform(0.01, 3.0, (32, 1)) / np.linalg.norm(aa, axis=1, keepdims=True)
    matrices = camera.rotation_matrices(aa)
    assert np.allclose(matrices, camera.axis_angle_to_matrix(torch.as_tensor(aa)).numpy(), atol=1e-12)
    assert np.allclose(camera.rotvec_matrices(aa), matrices, atol=1e-12)
    assert np.allclose(camera.rotation_vectors(matrices), aa, atol=1e-9)
    assert camera.rotation_matrices(aa.reshape(4, 8, 3)).shape == (4, 8, 3, 3)
    axis, v = aa[0] / np.linalg.norm(aa[0]), np.array([0.3, -0.2, 0.7])
    assert np.allclose(camera.rotate_vector(v, 5 * axis, 40.0), camera.rotation_matrices(np.radians(40.0) * axis) @ v)
    assert np.allclose(camera.rotation_about(axis, 0.7), camera.rotation_matrices(0.7 * axis), atol=1e-12)
    assert np.allclose(camera.rotation_z(0.7), camera.rotation_matrices(np.array([0.0, 0.0, 0.7])), atol=1e-12)
    assert np.allclose(camera.rotation_y(0.7), camera.rotation_matrices(np.array([0.0, 0.7, 0.0])), atol=1e-12)


def test_frame_in_crop_shows_the_points_as_the_paper_crop_does():
    rng = np.random.default_rng(1)
    points = np.c_[rng.uniform(-0.05, 0.05, (21, 2)), rng.uniform(-0.02, 0.02, 21)]
    points[0] = 0.0
    centre, edge = camera.tight_square(points)
    assert edge == pytest.approx(np.ptp(points[:, :2], axis=0).max())
    scale, trans = camera.frame_in_crop(points)
    pixels = scale * points[:, :2] + trans
    assert np.ptp(pixels, axis=0).max() == pytest.approx(camera.CROP_SIZE / camera.CROP_SCALE)
    assert (pixels.min(0) + pixels.max(0)) / 2 == pytest.approx([(camera.CROP_SIZE - 1) / 2] * 2)
    zoomed, shifted = camera.frame_in_crop(points, 64, 1.5, zoom=2.0, centre_offset=np.array([3.0, -1.0]))
    assert zoomed == pytest.approx(2.0 * 64 / 1.5 / edge)
    assert shifted == pytest.approx(31.5 + np.array([3.0, -1.0]) - zoomed * centre)


def test_ray_rotation_turns_the_axis_onto_the_ray_and_the_crop_view_into_the_camera_frame():
    pinhole = np.array([[500.0, 160.0, 120.0], [500.0, 160.0, 120.0]])
    turn = camera.ray_rotation([[160.0, 120.0], [460.0, 20.0]], pinhole)
    assert np.allclose(turn[0], np.eye(3))                                         # on the axis: none
    ray = np.array([300.0 / 500.0, -100.0 / 500.0, 1.0])
    assert np.allclose(turn[1] @ [0, 0, 1], ray / np.linalg.norm(ray))
    assert np.allclose(turn[1] @ turn[1].T, np.eye(3)) and np.isclose(np.linalg.det(turn[1]), 1.0)
    # A small object far along that ray: its perspective image is the weak-perspective image of the
    # object turned back by the ray (stretched by the image plane's tilt), not of the object itself.
    rng = np.random.default_rng(0)
    points = rng.normal(scale=0.01, size=(30, 3))
    depth = 5.0
    centre = ray / ray[2] * depth
    image = 500.0 * (centre + points)[:, :2] / (centre + points)[:, 2:]
    image -= image.mean(0)

    def misfit(weak):   # after the best affine map of the weak image onto the perspective one
        weak = np.c_[weak - weak.mean(0), np.ones(len(weak))]
        return np.linalg.norm(weak @ np.linalg.lstsq(weak, image, rcond=None)[0] - image, axis=1).mean()

    assert misfit((points @ turn[1])[:, :2]) < 0.01 * misfit(points[:, :2])
