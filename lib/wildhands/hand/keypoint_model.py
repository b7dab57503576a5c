"""The 21 keypoints of a hand model without its mesh, and their analytic Jacobians.

``KeypointModel``: the 16 joints are linear in beta (the joint regressor applied to the shape
blend shapes, precomputed), forward kinematics runs level by level down the kinematic tree, and
the 5 fingertip vertices are skinned exactly, corrective pose blend shapes included, so it equals
``HandModel.keypoints`` for any model file. Its Jacobian: a pose change turns a joint's frame by
omega = G_parent Jl(aa) d(aa) (Jl the left Jacobian of SO(3), ``so3_left_jacobian``), which moves
every point of the joint's subtree by omega x (x - p_joint); the joints are linear in beta for a
fixed pose. Internally the joints are stored level by level (the root, then each tree level), so
that a level is one batched product and every derivative a handful of whole-hand operations: a
fit's Jacobian is some 80 small torch operations, whatever the number of joints. The fits
(``fit.fit2d``, ``fit.fit3d``), the synthetic labels and the losses use it.
"""
from __future__ import annotations

import torch
from torch import nn

from wildhands.hand import keypoints as kp
from wildhands.hand.hand_model import HandModel

_EPS = 1e-8   # as hand.camera.axis_angle_to_matrix: the same rotations, to the last bit


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
        self.register_buffer("components", components)                                         # (n, 45)
        self.register_buffer("pose_mean", to(mano.hand_mean))                                   # (45,)
        parents = [int(p) for p in mano.parents.cpu()]
        parents[0] = -1
        self.parents = parents
        num_joints = len(parents)
        depth = [0] * num_joints
        for j in range(1, num_joints):
            depth[j] = depth[parents[j]] + 1
        self.levels = [[j for j in range(num_joints) if depth[j] == d] for d in range(1, max(depth) + 1)]
        # The internal order: the root, then the joints level by level. ``_level_spans``: each level's
        # rows (start, stop) in it and, below the first, where its joints' parents are in the level above
        # (None: in the same order, as MANO's five chains).
        order = [0] + [j for level in self.levels for j in level]
        rank = {j: i for i, j in enumerate(order)}
        self._level_spans, start = [], 1
        for i, level in enumerate(self.levels):
            above = self.levels[i - 1] if i else [0]
            where = [above.index(parents[j]) for j in level]
            same = where == list(range(len(above)))
            if i and not same:
                self.register_buffer(f"_parents_in_level_{i}", torch.as_tensor(where))
            self._level_spans.append((start, start + len(level), None if same or not i else f"_parents_in_level_{i}"))
            start += len(level)
        index = lambda values: torch.as_tensor(values, dtype=torch.long)  # noqa: E731
        # Finger-pose blocks (local rotations, left Jacobians, pose derivatives' columns) stay in the
        # joints' own order (joint j's block j - 1); positions and global rotations are internal.
        self.register_buffer("pose_order", index([j - 1 for j in order[1:]]))       # internal joint -> its block
        self.register_buffer("parent_rank", index([rank[parents[j]] for j in order[1:]]))
        self.register_buffer("block_rank", index([rank[j] for j in range(1, num_joints)]))          # block -> internal
        self.register_buffer("block_parent_rank", index([rank[parents[j]] for j in range(1, num_joints)]))
        # OpenPose keypoint k from (16 joints in the internal order + 5 tips); where each tip lands.
        self.register_buffer("openpose_index", index([rank[i] if i < num_joints else i for i in kp.MANO_TO_OPENPOSE]))
        self.register_buffer("openpose_tip_rows", index([kp.MANO_TO_OPENPOSE.index(num_joints + t)
                                                         for t in range(len(tips))]))
        ordered = index(order)
        joint_template = (regressor @ v_template)[ordered]                                       # (16, 3)
        joint_dirs = torch.einsum("jv,vcs->jcs", regressor, shapedirs)[ordered]                 # (16, 3, S)
        parent = self.parent_rank
        bone_template = joint_template[1:] - joint_template[parent]                              # (15, 3)
        bone_dirs = joint_dirs[1:] - joint_dirs[parent]                                          # (15, 3, S)
        tip_template, tip_dirs = v_template[tips], shapedirs[tips]                                # (5, 3), (5, 3, S)
        # Everything linear in beta, one matrix product: rest joints, bones, tips' rest positions.
        self.register_buffer("linear_template", torch.cat([joint_template.flatten(), bone_template.flatten(),
                                                           tip_template.flatten()]))             # (108,)
        self.register_buffer("linear_dirs", torch.cat([joint_dirs.flatten(0, 1), bone_dirs.flatten(0, 1),
                                                       tip_dirs.flatten(0, 1)]).T.contiguous())  # (S, 108)
        self._linear_split = (3 * num_joints, 3 * num_joints + 3 * (num_joints - 1))
        self.register_buffer("joint_dirs", joint_dirs)                                          # (16, 3, S)
        self.register_buffer("bone_dirs", bone_dirs)                                            # (15, 3, S)
        self.register_buffer("tip_dirs", tip_dirs)                                              # (5, 3, S)
        # Pose blend shapes at the tips, rows (joint block, 9 entries of its rotation).
        tip_posedirs = posedirs[:, tips].reshape(posedirs.shape[0], -1)
        self.register_buffer("tip_posedirs", tip_posedirs)                                      # (135, 15)
        self.has_tip_posedirs = bool(tip_posedirs.abs().max() > 0)
        tip_weights = to(mano.lbs_weights)[tips][:, ordered]                                      # (5, 16)
        self.register_buffer("tip_weights", tip_weights)
        # moving[j, k] = 1 when point k (internal order) turns with non-root joint j: k is j or below it.
        subtree = torch.eye(num_joints, dtype=dtype)
        for j in sorted(range(1, num_joints), key=lambda j: -depth[order[j]]):
            subtree[self.parent_rank[j - 1]] += subtree[j]
        moving = subtree.clamp_max(1)[self.block_rank]                                             # (15 blocks, 16)
        self.register_buffer("joint_moves", moving.T[:, :, None].contiguous())                   # (16, 15, 1)
        self.register_buffer("tip_moves", (moving[None] * tip_weights[:, None]).contiguous())    # (5, 15, 16)
        self.register_buffer("tip_move_sums", (tip_weights @ moving.T)[..., None])               # (5, 15, 1)
        skew = torch.zeros(3, 9, dtype=dtype)      # v @ skew = [v]x, row-major
        skew[0, 5], skew[0, 7], skew[1, 2], skew[1, 6], skew[2, 1], skew[2, 3] = -1, 1, 1, -1, -1, 1
        self.register_buffer("skew_basis", skew)
        self.register_buffer("eye", torch.eye(3, dtype=dtype))
        eye_skew = (torch.eye(3, dtype=dtype) @ skew).unflatten(-1, (3, 3))                      # [e_i]x
        self.register_buffer("eye_skew", eye_skew)

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
        return self._pose(betas, finger_pose, True, directions)

    def _pose(self, betas: torch.Tensor, finger_pose: torch.Tensor, jacobians: bool = False,
              directions: torch.Tensor | None = None):
        """Keypoints (B, 21, 3) and, with ``jacobians`` (else None, None), their derivatives d/d betas
        (B, 21, 3, S) and d/d pose along ``directions`` (B, 21, 3, n; None: the 45 axis-angles)."""
        batch = betas.shape[0]
        linear = torch.addmm(self.linear_template, betas, self.linear_dirs)                # (B, 108)
        a, b = self._linear_split
        rest, bones, tip_rest = (linear[:, :a].unflatten(1, (-1, 3)), linear[:, a:b].unflatten(1, (-1, 3)),
                                 linear[:, b:].unflatten(1, (-1, 3)))                       # (B, 16 | 15 | 5, 3)
        local, left = self._rotations(finger_pose.reshape(batch, -1, 3), jacobians)      # (B, 15, 3, 3) by block
        rot, pos, pos_dbeta = self._forward_kinematics(rest, bones, local.index_select(1, self.pose_order), jacobians)
        # Fingertip vertices: shape and pose blend shapes, then linear blend skinning.
        if self.has_tip_posedirs:
            tip_rest = tip_rest + ((local - self.eye).flatten(1) @ self.tip_posedirs).unflatten(1, (-1, 3))
        per_joint = (rot[:, None] * (tip_rest[:, :, None] - rest[:, None])[..., None, :]).sum(-1) + pos[:, None]
        tips = (self.tip_weights[..., None] * per_joint).sum(2)                            # (B, 5, 3)
        keypoints = torch.cat([pos, tips], 1).index_select(1, self.openpose_index)
        if not jacobians:
            return keypoints, None, None
        blend_rot = (self.tip_weights @ rot.flatten(2)).unflatten(2, (3, 3))               # (B, 5, 3, 3)
        tips_dbeta = blend_rot @ self.tip_dirs + (self.tip_weights @ (pos_dbeta - rot @ self.joint_dirs).flatten(2)
                                                  ).unflatten(2, (3, -1))                 # (B, 5, 3, S)
        dbeta = torch.cat([pos_dbeta, tips_dbeta], 1).index_select(1, self.openpose_index)
        dpose = self._pose_derivatives(local, left, rot, pos, per_joint, blend_rot)       # (B, 21, 3, 45)
        return keypoints, dbeta, dpose if directions is None else dpose @ directions.T

    def _rotations(self, axis_angles: torch.Tensor, with_left: bool):
        """Rotation matrices (…, 3, 3) of axis-angles (…, 3), as ``hand.camera.axis_angle_to_matrix``,
        and with ``with_left`` their left Jacobians, as ``so3_left_jacobian`` (else None)."""
        return _rotations(axis_angles, self.skew_basis, self.eye, with_left=with_left)

    def _forward_kinematics(self, rest: torch.Tensor, bones: torch.Tensor, local: torch.Tensor, with_dbeta: bool):
        """Global rotations G_j (B, 16, 3, 3) and posed joints p_j (B, 16, 3) from the rest joints, the bones
        and the local rotations, one tree level at a time (internal order); with ``with_dbeta``, also
        d p_j / d beta (B, 16, 3, S), else None."""
        batch = rest.shape[0]
        rots, poss = [self.eye.expand(batch, 1, 3, 3)], [rest[:, :1]]
        dbetas = [self.joint_dirs[:1].expand(batch, -1, -1, -1)] if with_dbeta else None
        for start, stop, parents in self._level_spans:
            rows = slice(start - 1, stop - 1)          # rows of the non-root joints' bones and rotations
            if start == 1:  # children of the root, whose global rotation is the identity
                rots.append(local[:, rows])
                poss.append(rest[:, :1] + bones[:, rows])
                if with_dbeta:
                    dbetas.append((self.joint_dirs[:1] + self.bone_dirs[rows]).expand(batch, -1, -1, -1))
                continue
            parent_rot, parent_pos = rots[-1], poss[-1]
            parent_dbeta = dbetas[-1] if with_dbeta else None
            if parents is not None:
                where = getattr(self, parents)
                parent_rot, parent_pos = parent_rot.index_select(1, where), parent_pos.index_select(1, where)
                parent_dbeta = parent_dbeta.index_select(1, where) if with_dbeta else None
            poss.append(parent_pos + (parent_rot * bones[:, rows, None, :]).sum(-1))
            rots.append(parent_rot @ local[:, rows])
            if with_dbeta:  # p_j is linear in the rest joints, hence in beta, for a fixed pose
                dbetas.append(parent_dbeta + parent_rot @ self.bone_dirs[rows])
        return torch.cat(rots, 1), torch.cat(poss, 1), torch.cat(dbetas, 1) if with_dbeta else None

    def _pose_derivatives(self, local, left, rot, pos, per_joint, blend_rot) -> torch.Tensor:
        """d/d finger pose of the keypoints (B, 21, 3, 45), OpenPose rows, columns (joint block, axis-angle
        component); ``local`` and ``left`` by block, the rest internal."""
        # Turning joint j's axis-angle along e_m turns its frame by omega = G_parent(j) Jl(aa_j) e_m,
        # and every point x of its subtree by omega x (x - p_j): x - p_j is the point's lever. A tip
        # is a weighted sum of per-joint points, so its lever is that sum over the joint's subtree.
        batch, num_tips = pos.shape[0], per_joint.shape[1]
        turned = rot.index_select(1, self.block_parent_rank) @ left                        # (B, 15, 3, 3)
        pivots = pos.index_select(1, self.block_rank)[:, None]                             # (B, 1, 15, 3)
        joint_levers = self.joint_moves * (pos[:, :, None] - pivots)                       # (B, 16, 15, 3)
        tip_levers = self.tip_moves @ per_joint - self.tip_move_sums * pivots              # (B, 5, 15, 3)
        levers = torch.cat([joint_levers, tip_levers], 1).index_select(1, self.openpose_index)  # (B, 21, 15, 3)
        turns = torch.linalg.cross(turned.transpose(-1, -2)[:, None], levers[:, :, :, None], dim=-1)  # [b,q,j,m,i]
        dpose = turns.permute(0, 1, 4, 2, 3).reshape(batch, levers.shape[1], 3, -1)       # (B, 21, 3, 45)
        if self.has_tip_posedirs:
            # d R_j = [u]x R_j, u = Jl(aa_j) e_m: contract the blend shapes with [e_i]x R_j once per
            # hand, then with u for every column.
            blend_dirs = self.tip_posedirs.reshape(local.shape[1], 9, num_tips, 3)        # (15, 9, 5, 3)
            basis_turns = (self.eye_skew @ local[:, :, None]).flatten(-2)                  # (B, 15, 3, 9)
            per_turn = torch.einsum("jfte,bjif->bjite", blend_dirs, basis_turns)            # (B, 15, 3, 5, 3)
            d_rest = torch.einsum("bjim,bjite->bjmte", left, per_turn)                      # (B, 15, 3, 5, 3)
            tips = torch.einsum("btie,bjmte->btijm", blend_rot, d_rest).flatten(-2)          # (B, 5, 3, 45)
            dpose = dpose.index_add(1, self.openpose_tip_rows, tips)
        return dpose


_BASES: dict = {}


def _skew_basis(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(3, 9) map v -> [v]x (row-major) and the identity, in ``like``'s dtype and device (cached)."""
    key = (like.dtype, like.device)
    if key not in _BASES:
        skew = torch.zeros(3, 9, dtype=like.dtype)
        skew[0, 5], skew[0, 7], skew[1, 2], skew[1, 6], skew[2, 1], skew[2, 3] = -1, 1, 1, -1, -1, 1
        _BASES[key] = (skew.to(like.device), torch.eye(3, dtype=like.dtype, device=like.device))
    return _BASES[key]


def _rotations(axis_angle: torch.Tensor, skew_basis: torch.Tensor, eye: torch.Tensor, with_rotation: bool = True,
               with_left: bool = True):
    """Rotation matrices (…, 3, 3) of axis-angles (…, 3) (Rodrigues, as ``hand.camera.axis_angle_to_matrix``)
    and their left Jacobians (as ``so3_left_jacobian``), each None unless asked for; the skew matrix,
    its square and the angle shared, each with the same arithmetic as its own function."""
    theta2 = (axis_angle * axis_angle).sum(-1, keepdim=True)[..., None]               # (…, 1, 1)
    k = (axis_angle @ skew_basis).unflatten(-1, (3, 3))
    kk = k @ k
    small = theta2 < 1e-6
    any_small = bool(small.any())
    rot = left = None
    if with_rotation:
        # sin(t)/t and (1 - cos t)/t^2 with Taylor expansions near zero for stable gradients.
        theta = torch.sqrt(theta2 + _EPS * _EPS)
        a = torch.sin(theta) / theta
        b = (1 - torch.cos(theta)) / (theta2 + _EPS * _EPS)
        if any_small:
            a, b = torch.where(small, 1 - theta2 / 6, a), torch.where(small, 0.5 - theta2 / 24, b)
        rot = eye + a * k + b * kk
    if with_left:
        # (1 - cos t) / t^2 and (t - sin t) / t^3, with Taylor expansions near zero.
        theta = theta2.clamp_min(1e-30).sqrt()
        b = (1 - torch.cos(theta)) / theta2.clamp_min(1e-30)
        c = (theta - torch.sin(theta)) / (theta2 * theta).clamp_min(1e-30)
        if any_small:
            b, c = torch.where(small, 0.5 - theta2 / 24, b), torch.where(small, 1 / 6 - theta2 / 120, c)
        left = eye + b * k + c * kk
    return rot, left


def so3_left_jacobian(axis_angle: torch.Tensor) -> torch.Tensor:
    """(…, 3) -> (…, 3, 3) left Jacobian Jl of SO(3): d R(a) = [Jl(a) da]x R(a)."""
    return _rotations(axis_angle, *_skew_basis(axis_angle), with_rotation=False)[1]
