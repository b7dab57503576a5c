"""Rotations, the weak-perspective camera of the paper (eq. 3-4), and mirroring.

Projection, in pixels of the crop with y down (DESIGN.md):

    x = s * Pi(R (P - P_root)) + t

R acts on root-relative points (root = keypoint 0, the wrist), Pi keeps the first
two camera coordinates (x right, y down, z away from the camera), s is pixels per
metre and t is the root keypoint's pixel. Left hands are mirrored to right ones:
x' = W - 1 - x in pixels, x -> -x in 3D, and a mirrored mesh reverses its winding.
"""
from __future__ import annotations

import numpy as np
import torch

_EPS = 1e-8


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
