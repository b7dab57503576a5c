"""Hand and weak-perspective camera parameters: one typed batch, and the paper's vector layout.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from wildhands.hand.camera import matrix_to_axis_angle


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

    def vector(self) -> torch.Tensor:
        """The paper's v = (R axis-angle, t, s, beta, theta): (B, 6 + num_betas + num_pca_comps)."""
        return torch.cat([self.global_orient, self.trans, self.scale[:, None], self.betas, self.pose], dim=1)

    def detach(self) -> "HandParameters":
        return HandParameters(*(getattr(self, name).detach() for name in PARAMETER_FIELDS))


PARAMETER_FIELDS = tuple(f.name for f in fields(HandParameters))
