"""The 21 keypoints of a hand model without its mesh, and their analytic Jacobians.

``KeypointModel``: the 16 joints are linear in beta (the joint regressor applied to the shape
blend shapes, precomputed), forward kinematics runs level by level down the kinematic tree, and
the 5 fingertip vertices are skinned exactly, corrective pose blend shapes included, so it equals
``HandModel.keypoints`` for any model file. Its Jacobian: a pose change turns a joint's frame by
omega = G_parent Jl(aa) d(aa) (Jl the left Jacobian of SO(3), ``so3_left_jacobian``), which moves
every point of the joint's subtree by omega x (x - p_joint); the joints are linear in beta for a
fixed pose. The fits (``fit.fit2d``, ``fit.fit3d``), the synthetic labels and the losses use it.
"""
from __future__ import annotations

import torch
from torch import nn

from wildhands.hand import keypoints as kp
from wildhands.hand.camera import axis_angle_to_matrix
from wildhands.hand.hand_model import HandModel


class KeypointModel(nn.Module):
    """The 21 keypoints of a ``HandModel`` without its mesh: betas, pose -> (B, 21, 3) metres.

    Same frame and conventions as ``HandModel(betas, pose).keypoints`` with global_orient = 0
    (the model frame; the camera rotation is applied by the projection).
    """

    def __init__(self, hand_model: HandModel, dtype: torch.dtype = torch.float64):
        super().__init__()
        mano = hand_model.mano
        tips = hand_model.tip_index.cpu()
        to = lambda t: t.detach().to("cpu", dtype)  # noqa: E731
        v_template, shapedirs, regressor = to(mano.v_template), to(mano.shapedirs), to(mano.J_regressor)
        num_vertices = v_template.shape[0]
        posedirs = to(mano.posedirs).reshape(-1, num_vertices, 3)           # (135, V, 3)
        components = getattr(mano, "hand_components", None)                # absent when PCA is off (45)
        components = torch.eye(45, dtype=dtype) if components is None else to(components)
        self.num_betas = shapedirs.shape[-1]
        self.num_pca_comps = components.shape[0]
        self.register_buffer("joint_template", regressor @ v_template)                          # (16, 3)
        self.register_buffer("joint_dirs", torch.einsum("jv,vcs->jcs", regressor, shapedirs))   # (16, 3, S)
        self.register_buffer("tip_template", v_template[tips])                                  # (5, 3)
        self.register_buffer("tip_dirs", shapedirs[tips])                                       # (5, 3, S)
        self.register_buffer("tip_posedirs", posedirs[:, tips].reshape(posedirs.shape[0], -1))  # (135, 15)
        self.register_buffer("tip_weights", to(mano.lbs_weights)[tips])                         # (5, 16)
        self.has_tip_posedirs = bool(self.tip_posedirs.abs().max() > 0)
        self.register_buffer("components", components)                                         # (n, 45)
        self.register_buffer("pose_mean", to(mano.hand_mean))                                   # (45,)
        self.register_buffer("openpose_index", torch.as_tensor(kp.MANO_TO_OPENPOSE))
        parents = [int(p) for p in mano.parents.cpu()]
        parents[0] = -1
        self.parents = parents
        # Joints grouped by depth in the tree: forward kinematics runs one level at a time.
        depth = [0] * len(parents)
        for j in range(1, len(parents)):
            depth[j] = depth[parents[j]] + 1
        self.levels = [[j for j in range(len(parents)) if depth[j] == d] for d in range(1, max(depth) + 1)]
        # subtree[j, k] = 1 when joint k is j or one of its descendants (moves with joint j).
        subtree = torch.eye(len(parents), dtype=dtype)
        for j in sorted(range(1, len(parents)), key=lambda j: -depth[j]):
            subtree[parents[j]] += subtree[j]
        self.register_buffer("subtree", subtree.clamp_max(1))

    def pca_to_axis_angle(self, pose: torch.Tensor) -> torch.Tensor:
        """(B, n) PCA coefficients -> (B, 45) absolute finger axis-angles (mean pose added)."""
        return pose @ self.components + self.pose_mean

    def forward(self, betas: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """betas (B, S), pose (B, n) PCA coefficients -> keypoints (B, 21, 3) in the OpenPose order."""
        return self.keypoints(betas, self.pca_to_axis_angle(pose))

    def keypoints(self, betas: torch.Tensor, finger_pose: torch.Tensor) -> torch.Tensor:
        """betas (B, S), absolute finger axis-angles (B, 45) -> keypoints (B, 21, 3)."""
        return self._pose(betas, finger_pose)[0]

    def keypoints_and_jacobians(self, betas: torch.Tensor, finger_pose: torch.Tensor,
                                directions: torch.Tensor | None = None):
        """Keypoints (B, 21, 3) and their derivatives d/d betas (B, 21, 3, S) and d/d pose (B, 21, 3, n).

        The pose derivatives are along the rows of ``directions`` (n, 45) in finger-pose space:
        the identity (default) for the axis-angles themselves, ``components`` for PCA coefficients.
        """
        if directions is None:
            directions = torch.eye(finger_pose.shape[-1], dtype=finger_pose.dtype, device=finger_pose.device)
        return self._pose(betas, finger_pose, directions)

    def _pose(self, betas: torch.Tensor, finger_pose: torch.Tensor, directions: torch.Tensor | None = None):
        """Keypoints (B, 21, 3) and, along ``directions`` (else None, None), their derivatives d/d betas
        (B, 21, 3, S) and d/d pose (B, 21, 3, n)."""
        batch = betas.shape[0]
        rest = self.joint_template + torch.einsum("jcs,bs->bjc", self.joint_dirs, betas)     # (B, 16, 3)
        axis_angles = finger_pose.reshape(batch, -1, 3)
        local = axis_angle_to_matrix(axis_angles)                                          # (B, 15, 3, 3)
        eye = torch.eye(3, dtype=betas.dtype, device=betas.device)
        rot, pos, pos_dbeta = self._forward_kinematics(rest, local, eye, directions is not None)
        # Fingertip vertices: shape and pose blend shapes, then linear blend skinning.
        pose_feature = (local - eye).reshape(batch, -1)
        tip_rest = (self.tip_template + torch.einsum("tcs,bs->btc", self.tip_dirs, betas)
                    + (pose_feature @ self.tip_posedirs).reshape(batch, -1, 3))             # (B, 5, 3)
        per_joint = torch.einsum("bkic,btkc->btki", rot, tip_rest[:, :, None] - rest[:, None]) + pos[:, None]
        tips = torch.einsum("tk,btki->bti", self.tip_weights, per_joint)                    # (B, 5, 3)
        keypoints = torch.cat([pos, tips], 1).index_select(1, self.openpose_index)
        if directions is None:
            return keypoints, None, None
        pos_dbeta, tips_dbeta, blend_rot = self._shape_derivatives(rot, pos_dbeta)
        pos_dpose, tips_dpose = self._pose_derivatives(directions, axis_angles, local, rot, pos, per_joint, blend_rot)
        dbeta = torch.cat([pos_dbeta, tips_dbeta], 1).index_select(1, self.openpose_index)
        dpose = torch.cat([pos_dpose, tips_dpose], 1).index_select(1, self.openpose_index)
        return keypoints, dbeta, dpose

    def _forward_kinematics(self, rest: torch.Tensor, local: torch.Tensor, eye: torch.Tensor, with_dbeta: bool):
        """Global rotations G_j (B, 16, 3, 3) and posed joints p_j (B, 16, 3) from the rest joints and the
        local rotations, one tree level at a time; with ``with_dbeta``, the list of d p_j / d beta (B, 3, S)."""
        batch, num_joints = rest.shape[0], len(self.parents)
        rot = [eye.expand(batch, 3, 3)] + [None] * (num_joints - 1)   # global rotations G_j
        pos = [rest[:, 0]] + [None] * (num_joints - 1)               # posed joint positions p_j
        pos_dbeta = [self.joint_dirs[0].expand(batch, -1, -1)] + [None] * (num_joints - 1)
        for level in self.levels:
            par = [self.parents[j] for j in level]
            parent_rot = torch.stack([rot[p] for p in par], 1)
            bones = rest[:, level] - rest[:, par]
            new_pos = torch.stack([pos[p] for p in par], 1) + torch.einsum("bjik,bjk->bji", parent_rot, bones)
            new_rot = parent_rot @ local[:, [j - 1 for j in level]]
            if with_dbeta:  # p_j is linear in the rest joints, hence in beta, for a fixed pose
                bone_dirs = self.joint_dirs[level] - self.joint_dirs[par]
                new_dbeta = torch.stack([pos_dbeta[p] for p in par], 1) + torch.einsum(
                    "bjik,jks->bjis", parent_rot, bone_dirs)
            for i, j in enumerate(level):
                rot[j], pos[j] = new_rot[:, i], new_pos[:, i]
                if with_dbeta:
                    pos_dbeta[j] = new_dbeta[:, i]
        return torch.stack(rot, 1), torch.stack(pos, 1), pos_dbeta   # (B, 16, 3, 3), (B, 16, 3)

    def _shape_derivatives(self, rot: torch.Tensor, pos_dbeta: list):
        """d/d beta of the joints (B, 16, 3, S) and tips (B, 5, 3, S), and the tips' blended rotations."""
        # Joints through the linear forward kinematics; tips likewise.
        pos_dbeta = torch.stack(pos_dbeta, 1)                                              # (B, 16, 3, S)
        blend_rot = torch.einsum("tk,bkij->btij", self.tip_weights, rot)                   # (B, 5, 3, 3)
        tips_dbeta = (torch.einsum("btij,tjs->btis", blend_rot, self.tip_dirs)
                      + torch.einsum("tk,bkis->btis", self.tip_weights,
                                     pos_dbeta - torch.einsum("bkij,kjs->bkis", rot, self.joint_dirs)))
        return pos_dbeta, tips_dbeta, blend_rot

    def _pose_derivatives(self, directions, axis_angles, local, rot, pos, per_joint, blend_rot):
        """d/d pose along ``directions`` of the joints (B, 16, 3, n) and tips (B, 5, 3, n)."""
        # Along pose direction c (a row of ``directions``), joint j's frame G_j turns by
        # omega_cj = G_parent(j) Jl(aa_j) directions[c, j], and so does joint j's subtree,
        # about p_j: d x = omega_cj x (x - p_j). Joints: sum over the ancestors j of k.
        num_dirs = directions.shape[0]
        left = so3_left_jacobian(axis_angles)                                              # (B, 15, 3, 3)
        local_turn = torch.einsum("bjkm,cjm->bcjk", left, directions.reshape(num_dirs, -1, 3))  # (B, n, 15, 3)
        omega = torch.einsum("bjik,bcjk->bcji", rot[:, self.parents[1:]], local_turn)      # (B, n, 15, 3)
        moving = self.subtree[1:]                                                          # (15, 16) [j, k]
        pivots = pos[:, 1:]                                                                # (B, 15, 3)
        # a x p = -[p]x a: cross products with per-hand points as small matrix products.
        omega_pivot = -torch.einsum("bjik,bcjk->bcji", _skew(pivots), omega)              # omega_cj x p_j
        pos_dpose = (-torch.einsum("bkil,bckl->bcki", _skew(pos), torch.einsum("jk,bcji->bcki", moving, omega))
                     - torch.einsum("jk,bcji->bcki", moving, omega_pivot))                  # (B, n, 16, 3)
        # Tips: the subtree-weighted skinning terms turn likewise, and the pose blend shapes change.
        sub_weights = self.tip_weights @ moving.T                                          # (5, 15)
        sub_points = torch.einsum("jk,tk,btki->btji", moving, self.tip_weights, per_joint)  # (B, 5, 15, 3)
        tips_dpose = (_cross_sum(omega, sub_points)
                      - torch.einsum("tj,bcji->bcti", sub_weights, omega_pivot))            # (B, n, 5, 3)
        if self.has_tip_posedirs:
            # d R_j = [u]x R_j is linear in the local turn u: contract the blend shapes with
            # [e_i]x R_j once per hand, then with u for every direction.
            blend_dirs = self.tip_posedirs.reshape(-1, 9, len(sub_weights), 3)             # (15, 9, 5, 3)
            eye_skew = _skew(torch.eye(3, dtype=local.dtype, device=local.device))
            basis_turns = (eye_skew @ local[:, :, None]).flatten(-2)                      # (B, 15, 3, 9)
            per_turn = torch.einsum("jfte,bjif->bjite", blend_dirs, basis_turns)            # (B, 15, 3, 5, 3)
            d_rest = torch.einsum("bcji,bjite->bcte", local_turn, per_turn)
            tips_dpose = tips_dpose + torch.einsum("btie,bcte->bcti", blend_rot, d_rest)
        return pos_dpose.permute(0, 2, 3, 1), tips_dpose.permute(0, 2, 3, 1)

def _cross_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum_j a[:, c, j] x b[:, t, j] for a (B, n, J, 3), b (B, T, J, 3) -> (B, n, T, 3), as one matmul."""
    outer = torch.einsum("bcjx,btjy->bctxy", a, b)
    return torch.stack([outer[..., 1, 2] - outer[..., 2, 1], outer[..., 2, 0] - outer[..., 0, 2],
                        outer[..., 0, 1] - outer[..., 1, 0]], -1)


def _skew(v: torch.Tensor) -> torch.Tensor:
    """(…, 3) -> (…, 3, 3) cross-product matrices [v]x."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*v.shape, 3)


def so3_left_jacobian(axis_angle: torch.Tensor) -> torch.Tensor:
    """(…, 3) -> (…, 3, 3) left Jacobian Jl of SO(3): d R(a) = [Jl(a) da]x R(a)."""
    theta2 = axis_angle.square().sum(-1, keepdim=True)[..., None]
    theta = theta2.clamp_min(1e-30).sqrt()
    small = theta2 < 1e-6
    # (1 - cos t) / t^2 and (t - sin t) / t^3, with Taylor expansions near zero.
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-30))
    c = torch.where(small, 1 / 6 - theta2 / 120, (theta - torch.sin(theta)) / (theta2 * theta).clamp_min(1e-30))
    k = _skew(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + b * k + c * (k @ k)
