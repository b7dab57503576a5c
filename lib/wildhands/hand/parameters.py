"""Hand and weak-perspective camera parameters: one typed batch, and the one owner of the vector layout.

The paper's vector v = (R axis-angle 3, t 2, s 1, beta B, theta P): ``VectorLayout`` says where each
part sits, for the paper's v, for the 2D fit's own vector (log s in place of s, so that s stays > 0)
and for the 3D fit's (no camera: R, beta, theta), and the same without the shape columns (a video
track's per-frame parameters, its one shape apart: ``without_betas``, ``with_betas``).
``HandParameters.to_vector`` and ``from_vector`` convert a typed batch to and from v.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from wildhands.hand.camera import axis_angle_to_matrix, matrix_to_axis_angle

ROTATION_DIMS = 3   # axis-angle of R
CAMERA_DIMS = 6     # axis-angle 3, t 2, s (or log s) 1


@dataclass(frozen=True)
class VectorLayout:
    """Columns of a parameter vector (..., P), torch or NumPy: (R axis-angle 3[, t 2, s 1], beta, theta).

    ``num_betas``: B; theta takes the remaining columns. ``camera``: with the weak-perspective camera
    t, s (the paper's v, the 2D fit's); without it (R, beta, theta: the 3D fit's). ``log_scale``: the
    scale column holds log s (the 2D fit's vector); ``split`` and ``join`` convert it.
    """
    num_betas: int
    camera: bool = True
    log_scale: bool = False

    rotation = slice(0, ROTATION_DIMS)
    trans = slice(ROTATION_DIMS, ROTATION_DIMS + 2)
    scale = ROTATION_DIMS + 2

    @property
    def shape_start(self) -> int:
        """The first beta column."""
        return CAMERA_DIMS if self.camera else ROTATION_DIMS

    @property
    def betas(self) -> slice:
        return slice(self.shape_start, self.shape_start + self.num_betas)

    @property
    def pose(self) -> slice:
        return slice(self.shape_start + self.num_betas, None)

    def size(self, num_pose: int) -> int:
        """P for ``num_pose`` pose parameters."""
        return self.shape_start + self.num_betas + num_pose

    def split(self, vector) -> tuple:
        """(rotation axis-angle, trans, scale s, betas, pose) columns of ``vector`` (..., P); without
        a camera (rotation, betas, pose)."""
        if vector.shape[-1] < self.shape_start + self.num_betas:
            raise ValueError(f"parameter vector: expected at least {self.shape_start + self.num_betas} columns "
                             f"({self.num_betas} betas), got shape {tuple(vector.shape)}")
        rotation, betas, pose = vector[..., self.rotation], vector[..., self.betas], vector[..., self.pose]
        if not self.camera:
            return rotation, betas, pose
        scale = vector[..., self.scale]
        if self.log_scale:
            scale = scale.exp() if torch.is_tensor(scale) else np.exp(scale)
        return rotation, vector[..., self.trans], scale, betas, pose

    def without_betas(self, vector):
        """(..., P) -> (..., P - B), torch or NumPy: every column but the shape's, in order (a track's
        per-frame parameters: ``VectorLayout(0, ...)``'s columns)."""
        parts = (vector[..., :self.shape_start], vector[..., self.pose])
        return torch.cat(parts, -1) if torch.is_tensor(vector) else np.concatenate(parts, -1)

    def with_betas(self, frame_vector, betas):
        """The inverse of ``without_betas``: (..., P - B) and betas (..., B), the same leading shape -> (..., P)."""
        parts = (frame_vector[..., :self.shape_start], betas, frame_vector[..., self.shape_start:])
        return torch.cat(parts, -1) if torch.is_tensor(frame_vector) else np.concatenate(parts, -1)

    def join(self, rotation: torch.Tensor, trans: torch.Tensor, scale: torch.Tensor, betas: torch.Tensor,
             pose: torch.Tensor) -> torch.Tensor:
        """(B, P) vectors from (B, 3) axis-angles, (B, 2) t, (B,) s (> 0), (B, num_betas) and (B, n) pose."""
        if not self.camera:
            raise ValueError("VectorLayout.join: a layout without the camera has no t and s")
        return torch.cat([rotation, trans, (scale.log() if self.log_scale else scale)[:, None], betas, pose], 1)


@dataclass
class HandParameters:
    """Hand and weak-perspective camera parameters for a batch (what the encoder predicts)."""
    rotation: torch.Tensor   # (B, 3, 3) camera rotation R, acting on root-relative points
    trans: torch.Tensor      # (B, 2) root keypoint pixel in the 320 crop
    scale: torch.Tensor      # (B,) pixels of the 320 crop per metre
    betas: torch.Tensor      # (B, num_betas)
    pose: torch.Tensor       # (B, num_pca_comps) pose PCA coefficients theta

    @property
    def global_orient(self) -> torch.Tensor:
        """(B, 3) axis-angle of ``rotation``."""
        return matrix_to_axis_angle(self.rotation)

    def to_vector(self, log_scale: bool = False) -> torch.Tensor:
        """The paper's v = (R axis-angle, t, s, beta, theta): (B, 6 + num_betas + num_pca_comps);
        ``log_scale``: log s in place of s (the 2D fit's vector)."""
        layout = VectorLayout(self.betas.shape[1], log_scale=log_scale)
        return layout.join(self.global_orient, self.trans, self.scale, self.betas, self.pose)

    @classmethod
    def from_vector(cls, vector: torch.Tensor, num_betas: int, log_scale: bool = False) -> "HandParameters":
        """The parameters of (B, 6 + num_betas + n) vectors v (``log_scale``: holding log s)."""
        if vector.ndim != 2:
            raise ValueError(f"parameter vector: expected shape (B, P), got {tuple(vector.shape)}")
        orient, trans, scale, betas, pose = VectorLayout(num_betas, log_scale=log_scale).split(vector)
        return cls(axis_angle_to_matrix(orient), trans, scale, betas, pose)

    def detach(self) -> "HandParameters":
        return HandParameters(*(getattr(self, name).detach() for name in PARAMETER_FIELDS))


PARAMETER_FIELDS = tuple(f.name for f in fields(HandParameters))
