"""Rotations, the weak-perspective camera of the paper (eq. 3-4), and mirroring.

Projection, in pixels of the crop with y down (DESIGN.md):

    x = s * Pi(R (P - P_root)) + t

R acts on root-relative points (root = keypoint 0, the wrist), Pi keeps the first
two camera coordinates (x right, y down, z away from the camera), s is pixels per
metre and t is the root keypoint's pixel. The same (s, t) read under a photo's pinhole
camera (focal f, principal point c, in the crop's pixels) put the root at depth f / s
(``pinhole_project``: x = c + (s Pi(P) + t - c) / (1 + s z / f), weak perspective as f
grows). Left hands are mirrored to right ones:
x' = W - 1 - x in pixels, x -> -x in 3D, and a mirrored mesh reverses its winding.

A crop shows an off-axis hand as seen along the ray to it: ``ray_rotation`` turns such a view into
the camera frame, and ``world_landmarks_in_camera`` / ``world_landmarks_in_crop_view`` do so for a
detector's 3D read from the crop alone (MediaPipe's world landmarks).

Also owns the crop those pixels belong to (``CROP_SIZE`` pixels showing ``CROP_SCALE`` l, l the
edge of the tightest square box around the hand's keypoints; a profile's ``[preprocess]``
crop_size and crop_scale), the camera that frames a hand in it (``frame_in_crop``), and the
NumPy rotations the hand-model builder and the data code use (float64; each keeps the exact
arithmetic its callers' stored results were made with).
"""
from __future__ import annotations

import numpy as np
import torch

from wildhands.hand import keypoints as kp

_EPS = 1e-8
CROP_SIZE = 320     # the paper's crop edge in pixels: the unit of the camera's s and t
CROP_SCALE = 2.2    # the crop's edge in l (STB's experiment: 1.5)
# ``pinhole_project``: no point nearer the camera than this fraction of the root's depth (a fit's
# intermediate step may swing a finger through the camera's plane)
MIN_DEPTH_RATIO = 0.1


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """(…, 3) axis-angle -> (…, 3, 3) rotation matrices (Rodrigues, smooth at zero)."""
    theta2 = (axis_angle * axis_angle).sum(-1, keepdim=True)
    theta = torch.sqrt(theta2 + _EPS * _EPS)
    small = theta2 < 1e-6
    # sin(t)/t and (1 - cos t)/t^2 with Taylor expansions near zero for stable gradients.
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / (theta2 + _EPS * _EPS))
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*axis_angle.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(k)
    return eye + a[..., None] * k + b[..., None] * (k @ k)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """(…, 3, 3) rotation matrices -> (…, 3) axis-angle with angle in [0, pi]."""
    m = matrix
    cos = ((m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2] - 1) / 2).clamp(-1.0, 1.0)
    angle = torch.acos(cos)
    axis = torch.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1)
    sin = torch.sin(angle)
    regular = axis / (2 * sin[..., None]).clamp_min(_EPS) * angle[..., None]
    # Near pi the antisymmetric part vanishes: take the axis from the symmetric part.
    sym = (m + m.transpose(-1, -2)) / 2 - cos[..., None, None] * torch.eye(3, dtype=m.dtype, device=m.device)
    col = sym.diagonal(dim1=-2, dim2=-1).argmax(-1)
    near_pi_axis = torch.gather(sym, -1, col[..., None, None].expand(*col.shape, 3, 1)).squeeze(-1)
    near_pi_axis = near_pi_axis / near_pi_axis.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    sign = torch.sign((near_pi_axis * axis).sum(-1, keepdim=True))
    near_pi_axis = near_pi_axis * torch.where(sign == 0, torch.ones_like(sign), sign)
    use_pi = (angle > np.pi - 1e-3)[..., None]
    small = (angle < 1e-6)[..., None]
    out = torch.where(use_pi, near_pi_axis * angle[..., None], regular)
    return torch.where(small, axis / 2, out)


def rot6d_to_matrix(rot6d: torch.Tensor) -> torch.Tensor:
    """(…, 6) two columns of a rotation (Zhou et al. 2019) -> (…, 3, 3) by Gram-Schmidt."""
    a1, a2 = rot6d[..., :3], rot6d[..., 3:]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(matrix: torch.Tensor) -> torch.Tensor:
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], dim=-1)


def weak_perspective_project(points: torch.Tensor, rotation: torch.Tensor, scale: torch.Tensor,
                             trans: torch.Tensor, root: torch.Tensor) -> torch.Tensor:
    """x = s * Pi(R (P - root)) + t.

    points (B, N, 3) metres; rotation (B, 3, 3); scale (B,) or (B, 1) pixels per metre;
    trans (B, 2) pixels (the root's pixel); root (B, 3) metres. Returns (B, N, 2) pixels.
    """
    cam = rotate_root_relative(points, rotation, root)
    return scale.reshape(-1, 1, 1) * cam[..., :2] + trans[:, None, :]


def pinhole_project(cam_points: torch.Tensor, scale: torch.Tensor, trans: torch.Tensor,
                    pinhole: torch.Tensor | None = None) -> torch.Tensor:
    """The weak-perspective camera (s, t) read as a pinhole camera: x = c + (s Pi(P) + t - c) / (1 + s z / f).

    ``cam_points`` (B, N, 3) root-relative camera-frame metres R (P - P_root); ``scale`` (B,) pixels
    per metre and ``trans`` (B, 2) the root's pixel, as ``weak_perspective_project``'s; ``pinhole``
    (B, 3): the focal length f and principal point c = (cx, cy) in the same pixels (a crop's: the
    photo's intrinsics mapped through its crop), or None for the weak-perspective camera itself.
    The root is at depth f / s, at (t - c) / s across: the camera frame's root translation. As
    f -> infinity this is the weak-perspective projection."""
    weak = scale.reshape(-1, 1, 1) * cam_points[..., :2] + trans[:, None, :]
    if pinhole is None:
        return weak
    focal, centre = pinhole[:, None, :1], pinhole[:, None, 1:]
    depth = (1 + scale.reshape(-1, 1, 1) * cam_points[..., 2:] / focal).clamp_min(MIN_DEPTH_RATIO)
    return centre + (weak - centre) / depth


def ray_rotation(points_px, pinhole) -> np.ndarray:
    """(B, 3, 3) the rotations turning the optical axis onto the ray through each pixel ``points_px``
    (B, 2) of the pinhole cameras ``pinhole`` (B, 3: focal length, principal point; a crop's, as
    ``pinhole_project`` takes them), about the axis perpendicular to both.

    A weak-perspective crop shows an off-axis hand as seen along the ray to it: a hand fitted in the
    crop's frame, R_view, is R_ray R_view in the camera frame. The ray through the hand's middle (its
    keypoints' centroid), not its root: close to the camera, the hand's own depth bends the view
    about its middle (benchmarks/bench_refinement_real_poses.py --depth prints the network alone so
    turned beside it as seen)."""
    points, camera = np.asarray(points_px, np.float64), np.asarray(pinhole, np.float64)
    ray = np.concatenate([(points - camera[:, 1:]) / camera[:, :1], np.ones((len(points), 1))], 1)
    ray /= np.linalg.norm(ray, axis=1, keepdims=True)
    axis = np.stack([-ray[:, 1], ray[:, 0], np.zeros(len(ray))], 1)            # z x ray
    sine = np.linalg.norm(axis, axis=1, keepdims=True)
    return rotation_matrices(axis / np.maximum(sine, 1e-12) * np.arctan2(sine, ray[:, 2:]))


def ray_view_to_camera(points, anchor_px, pinhole, inverse: bool = False) -> np.ndarray:
    """(B, N, 3) root-relative points of hands as seen along the ray to each, turned into the camera
    frame: R_ray P, R_ray the ``ray_rotation`` through each hand's pixel ``anchor_px`` (B, 2) of the
    pinhole cameras ``pinhole`` (B, 3). A detector that reads only the hand's crop reports its 3D so
    (MediaPipe's world landmarks: ``world_landmarks_in_camera``). ``inverse``: camera-frame
    points to that view, R_ray^T P."""
    turns = ray_rotation(anchor_px, pinhole)
    return np.einsum("bji,bnj->bni" if inverse else "bij,bnj->bni", turns, np.asarray(points, np.float64))


# MediaPipe reads a hand's 3D from its crop alone, so its world landmarks show the hand as seen along
# the ray to it, not in the camera's axes (an off-axis hand comes out turned by the ray's angle). On
# our hands rendered by a pinhole camera 0-25 degrees off its axis, the ray through the wrist explains
# them best (benchmarks/bench_world_frame.py).
WORLD_VIEW_KEYPOINT = kp.ROOT


def _anchors(keypoints_px, usable) -> tuple[np.ndarray, np.ndarray]:
    """(B, 2) each hand's ``WORLD_VIEW_KEYPOINT`` (its usable keypoints' mean where that is not usable)
    and (B, 2) its usable keypoints' mean."""
    points = np.asarray(keypoints_px, np.float64)
    usable = np.isfinite(points).all(-1) if usable is None else np.asarray(usable, bool) & np.isfinite(points).all(-1)
    if points.shape[1:] != (kp.NUM_KEYPOINTS, 2) or not usable.any(1).all():
        raise ValueError(f"keypoints_px: expected (B, {kp.NUM_KEYPOINTS}, 2) with a usable keypoint per hand, "
                         f"got shape {points.shape}")
    mean = np.nansum(np.where(usable[..., None], points, 0.0), 1) / usable.sum(1, keepdims=True)
    return np.where(usable[:, WORLD_VIEW_KEYPOINT, None], points[:, WORLD_VIEW_KEYPOINT], mean), mean


def world_landmarks_in_camera(world, keypoints_px, pinhole, usable=None) -> np.ndarray:
    """(B, 21, 3) detectors' world landmarks ``world`` (B, 21, 3, as MediaPipe gives them: the hand as
    seen along the ray to its ``WORLD_VIEW_KEYPOINT``) in the frame of the pinhole cameras ``pinhole``
    (B, 3: focal length, principal point) whose pixels the hands' keypoints ``keypoints_px`` (B, 21, 2)
    are in. ``usable`` (B, 21): keypoints to trust; a hand whose wrist is not is turned by the ray
    through its usable keypoints' mean."""
    return ray_view_to_camera(world, _anchors(keypoints_px, usable)[0], pinhole)


def world_landmarks_in_crop_view(world, keypoints_px, pinhole, usable=None) -> np.ndarray:
    """``world_landmarks_in_camera``, then seen along the ray through the hands' usable keypoints' mean:
    the frame a weak-perspective fit of a hand's crop works in (the crop shows the hand as seen along
    the ray to its middle; ``predict`` turns such a fit into the camera frame by that ray). Close to
    the camera the two rays part: 13 degrees for a hand 0.25 m away with its wrist 17 degrees off the
    axis."""
    anchor, mean = _anchors(keypoints_px, usable)
    return ray_view_to_camera(ray_view_to_camera(world, anchor, pinhole), mean, pinhole, inverse=True)


def rotate_root_relative(points: torch.Tensor, rotation: torch.Tensor, root: torch.Tensor) -> torch.Tensor:
    """R (P - root): points in the camera frame, root-relative, metres."""
    return torch.einsum("bij,bnj->bni", rotation, points - root[:, None, :])


def mirror_points_2d(points, width: int):
    """x' = W - 1 - x for pixel coordinates (…, 2) in an image of ``width`` pixels."""
    out = points.clone() if torch.is_tensor(points) else np.array(points, dtype=np.float64, copy=True)
    out[..., 0] = width - 1 - out[..., 0]
    return out


def mirror_points_3d(points):
    """Negate x of (…, 3) points: a right hand becomes a left one and back."""
    out = points.clone() if torch.is_tensor(points) else np.array(points, dtype=np.float64, copy=True)
    out[..., 0] = -out[..., 0]
    return out


def mirror_faces(faces):
    """Reverse the winding of (F, 3) triangles, as a mirrored mesh needs."""
    return faces[..., ::-1].copy() if isinstance(faces, np.ndarray) else faces.flip(-1)


def mirror_axis_angle(axis_angle):
    """The rotation M R M with M = diag(-1, 1, 1), in axis-angle: (a, b, c) -> (a, -b, -c)."""
    sign = [1.0, -1.0, -1.0]
    if torch.is_tensor(axis_angle):
        return axis_angle * axis_angle.new_tensor(sign)
    return np.asarray(axis_angle, dtype=np.float64) * np.array(sign)


def mirror_camera(scale, trans, width: int):
    """Weak-perspective camera of the mirrored image: same scale, t_x -> W - 1 - t_x."""
    return scale, mirror_points_2d(trans, width)


def tight_square(points) -> tuple[np.ndarray, float]:
    """Centre (2,) and edge of the tightest square box around (N, 2+) points (their first two
    coordinates): the box's edge is the larger side of their bounding box, l."""
    low, high = points[:, :2].min(0), points[:, :2].max(0)
    return (low + high) / 2, float((high - low).max())


def frame_in_crop(points_cam: np.ndarray, crop_size: int = CROP_SIZE, crop_scale: float = CROP_SCALE,
                  zoom: float = 1.0, centre_offset=0.0) -> tuple[float, np.ndarray]:
    """Camera (scale px/m, trans (2,) px, the root's pixel) that shows camera-frame points
    (N, 3), root at the origin, as a ``crop_scale`` l crop of ``crop_size`` pixels does: their
    tightest square box ``crop_size / crop_scale`` pixels wide (times ``zoom``) and centred
    (plus ``centre_offset`` pixels)."""
    box_centre, edge = tight_square(points_cam)
    scale = crop_size / crop_scale / max(edge, 1e-6) * zoom
    return scale, (crop_size - 1) / 2 + centre_offset - scale * box_centre


# ----------------------------------------------------------------------------- NumPy rotations

def rotate_vector(v, axis, degrees: float) -> np.ndarray:
    """Rodrigues rotation of the vector ``v`` by ``degrees`` about ``axis`` (normalised here)."""
    axis = np.asarray(axis, np.float64)
    a, t = axis / np.linalg.norm(axis, axis=-1, keepdims=True), np.radians(degrees)
    return v * np.cos(t) + np.cross(a, v) * np.sin(t) + a * (a @ v) * (1 - np.cos(t))


def rotation_matrices(axis_angle: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle to (..., 3, 3) rotation matrices: Rodrigues' formula in closed form
    (the open hand model's file is built with it)."""
    angle = np.linalg.norm(axis_angle, axis=-1, keepdims=True)
    axis = axis_angle / np.maximum(angle, 1e-12)
    x, y, z = np.moveaxis(axis, -1, 0)
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(axis.shape[:-1] + (3, 3))
    s, c = np.sin(angle)[..., None], np.cos(angle)[..., None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def rotation_vectors(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices to (..., 3) axis-angles (SciPy's, angles in [0, pi])."""
    from scipy.spatial.transform import Rotation

    shape = matrix.shape[:-2]
    return Rotation.from_matrix(matrix.reshape(-1, 3, 3)).as_rotvec().reshape(shape + (3,))


def rotvec_matrices(axis_angles) -> np.ndarray:
    """(N, 3) axis-angles -> (N, 3, 3) rotation matrices, by SciPy (through quaternions; the
    inverse of ``rotation_vectors``)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.asarray(axis_angles, np.float64).reshape(-1, 3)).as_matrix()


def rotation_about(axis, angle: float) -> np.ndarray:
    """(3, 3) rotation by ``angle`` radians about the unit ``axis``: ``axis_angle_to_matrix`` in
    float64 (the synthetic views are drawn with it)."""
    return axis_angle_to_matrix(torch.as_tensor(np.asarray(axis) * angle, dtype=torch.float64)).numpy()


def rotation_y(angle_rad: float) -> np.ndarray:
    """(3, 3) rotation by ``angle_rad`` about y, the image's vertical axis (z towards x)."""
    cos, sin = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[cos, 0.0, sin], [0.0, 1.0, 0.0], [-sin, 0.0, cos]])


def rotation_z(angle_rad: float) -> np.ndarray:
    """(3, 3) rotation by ``angle_rad`` about z, the camera axis (in the image: x towards y)."""
    cos, sin = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
