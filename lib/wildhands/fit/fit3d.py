"""The 3D-to-3D fit: the hand model's rotation, shape and pose from root-relative 3D keypoints.

    E(R, beta, pose) = sum_k |R (J_k(beta, pose) - J_root) - y_k|^2 / sigma^2
                       + alpha_beta |beta|^2 + w_theta |prior(pose)|^2 [+ w_range |range(pose)|^2]

with targets y (B, 21, 3) in metres, root-relative (keypoint 0 at the origin) in any frame
(e.g. a camera's); ``sigma`` (metres) is the expected keypoint error, so the priors and the
data term are both in units of standard deviations. It measures how well a hand model
expresses real hands (``benchmarks/bench_real_poses.py``) and fits captured poses for learning
a pose space from them.

The minimiser is ``fit.lm.levenberg_marquardt`` with the analytic Jacobians of
``hand.keypoint_model.KeypointModel``; pose spaces as ``fit.fit2d.Fit2D``'s: "pca" (the model's PCA
coefficients, what the network predicts; prior |theta|^2) or "full" (45 finger axis-angles
relative to the model's mean pose; the whitened prior |q C^+|^2 and the joint-range penalty).

Rotation: each start's rotation R0 comes in closed form (Kabsch) from the mean hand's keypoints
to the targets, about the root; the fit then optimises a left increment w, R = exp(w) R0,
so it never meets the axis-angle singularity at pi. The start with the lowest energy wins.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from wildhands.fit.fit2d import POSE_SPACES
from wildhands.fit.lm import levenberg_marquardt
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import axis_angle_to_matrix, matrix_to_axis_angle
from wildhands.hand.hand_model import HandModel, load_mano_arrays
from wildhands.hand.keypoint_model import KeypointModel, so3_left_jacobian
from wildhands.hand.parameters import VectorLayout

PALM_KEYPOINTS = (0, 1, 5, 9, 13, 17)   # wrist, thumb CMC and the four MCPs: the rigid part of the hand
# Keypoint sets the starting rotations are aligned on, in the order starts are taken.
START_ALIGNMENTS = (tuple(range(kp.NUM_KEYPOINTS)), PALM_KEYPOINTS)
MAX_STARTS = len(START_ALIGNMENTS)


def kabsch_rotation(source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 3, 3) proper rotations R minimising sum_k w_k |R s_k - t_k|^2 (no translation: about the origin).

    ``source``, ``target`` (B, K, 3); ``weights`` (B, K) or (K,), default ones.
    """
    if weights is None:
        weights = torch.ones(source.shape[:2], dtype=source.dtype, device=source.device)
    weights = weights.expand(source.shape[:2])
    cross = torch.einsum("bk,bki,bkj->bij", weights, target, source)         # sum w t s^T
    u, _, vh = torch.linalg.svd(cross)
    flip = torch.ones(source.shape[0], 3, dtype=source.dtype, device=source.device)
    flip[:, 2] = torch.sign(torch.linalg.det(u @ vh))
    flip[:, 2] = torch.where(flip[:, 2] == 0, 1.0, flip[:, 2])
    return u @ torch.diag_embed(flip) @ vh


@dataclass
class Fit3DResult:
    """Fitted parameters per hand; keypoints and errors in metres."""
    rotation: torch.Tensor        # (B, 3, 3) R, acting on root-relative model keypoints
    global_orient: torch.Tensor   # (B, 3) R as axis-angle
    betas: torch.Tensor           # (B, S)
    pose: torch.Tensor            # (B, n) PCA coefficients, or (B, 45) axis-angle offsets from the mean ("full")
    finger_pose: torch.Tensor     # (B, 45) absolute finger axis-angles (the mean pose added)
    pose_space: str
    keypoints_3d: torch.Tensor    # (B, 21, 3) R (J - J_root): the fitted hand in the targets' frame
    joint_error: torch.Tensor     # (B, 21) |fit - target| per keypoint (the root's is 0 by construction)
    cost: torch.Tensor            # (B,) final energy
    iterations: torch.Tensor      # (B,) Levenberg-Marquardt iterations of the winning start
    start: torch.Tensor           # (B,) index of the winning start
    settings: dict = field(default_factory=dict)

    @property
    def mean_error(self) -> torch.Tensor:
        """(B,) mean distance over the 20 keypoints other than the root, metres."""
        return self.joint_error[:, 1:].mean(1)


class Fit3D:
    """The 3D fit for a hand model: build once, call ``fit`` on batches of root-relative keypoints.

    ``pose_space``: "pca" or "full"; ``joint_sigma``: expected keypoint error in metres;
    ``alpha_beta``, ``w_theta``: prior weights on |beta|^2 and the pose prior (unit-variance
    coefficients); ``w_range`` and ``pose_limits`` (45, 2) radians: the joint-range penalty of
    the "full" space (default limits: the model's mean pose +- 3 standard deviations).
    """

    def __init__(self, hand_model: HandModel, pose_space: str = "pca", joint_sigma: float = 0.002,
                 alpha_beta: float = 1.0, w_theta: float = 1.0, w_range: float = 100.0, pose_limits=None,
                 dtype: torch.dtype = torch.float64, device="cpu"):
        if pose_space not in POSE_SPACES:
            raise ValueError(f"pose_space: expected one of {', '.join(POSE_SPACES)}, got {pose_space!r}")
        if not joint_sigma > 0 or alpha_beta < 0 or w_theta < 0 or w_range < 0:
            raise ValueError(f"expected joint_sigma > 0 and prior weights >= 0, got joint_sigma={joint_sigma}, "
                             f"alpha_beta={alpha_beta}, w_theta={w_theta}, w_range={w_range}")
        self.device, self.dtype = torch.device(device), dtype
        self.model = KeypointModel(hand_model, dtype).to(self.device)
        self.pose_space = pose_space
        self.joint_sigma, self.alpha_beta = float(joint_sigma), float(alpha_beta)
        self.w_theta, self.w_range = float(w_theta), float(w_range)
        self.num_betas = self.model.num_betas
        self.num_pose = self.model.num_pca_comps if pose_space == "pca" else 45
        self.layout = VectorLayout(self.num_betas, camera=False)   # (w 3, beta, pose): no camera
        with torch.no_grad():
            zeros = torch.zeros(1, self.num_betas, dtype=dtype, device=self.device)
            rest = self.model(zeros, zeros.new_zeros(1, self.model.num_pca_comps))[0]
        self.mean_hand = rest - rest[kp.ROOT]                                             # (21, 3), theta = 0
        if pose_space == "full":
            components = torch.as_tensor(load_mano_arrays(hand_model.path)["hands_components"], dtype=dtype,
                                         device=self.device)
            self.whiten = torch.linalg.pinv(components)                                   # q -> coefficients
            if pose_limits is None:
                std = components.square().sum(0).sqrt()
                pose_limits = torch.stack([self.model.pose_mean - 3 * std, self.model.pose_mean + 3 * std], 1)
            self.pose_limits = torch.as_tensor(pose_limits, dtype=dtype, device=self.device)
            if self.pose_limits.shape != (45, 2):
                raise ValueError(f"pose_limits: expected shape (45, 2), got {tuple(self.pose_limits.shape)}")

    @property
    def num_params(self) -> int:
        return self.layout.size(self.num_pose)

    def settings(self) -> dict:
        return {"pose_space": self.pose_space, "joint_sigma_m": self.joint_sigma, "alpha_beta": self.alpha_beta,
                "w_theta": self.w_theta, **({"w_range": self.w_range} if self.pose_space == "full" else {})}

    def _unpack(self, x: torch.Tensor):
        """(rotation increment w, betas, pose) of packed parameters (B, P)."""
        return self.layout.split(x)

    def finger_pose(self, pose: torch.Tensor) -> torch.Tensor:
        """(B, 45) absolute finger axis-angles from the fitted pose parameters."""
        return self.model.pca_to_axis_angle(pose) if self.pose_space == "pca" else pose + self.model.pose_mean

    def keypoints_3d(self, x: torch.Tensor, base_rotation: torch.Tensor) -> torch.Tensor:
        """R (J - J_root), R = exp(w) R0, for packed parameters x (B, P): (B, 21, 3)."""
        turn, betas, pose = self._unpack(x)
        joints = self.model.keypoints(betas, self.finger_pose(pose))
        rotation = axis_angle_to_matrix(turn) @ base_rotation
        return torch.einsum("bij,bkj->bki", rotation, joints - joints[:, kp.ROOT:kp.ROOT + 1])

    def _prior_residuals(self, betas: torch.Tensor, pose: torch.Tensor) -> list[torch.Tensor]:
        parts = [math.sqrt(self.alpha_beta) * betas]
        if self.pose_space == "pca":
            return parts + [math.sqrt(self.w_theta) * pose]
        absolute = pose + self.model.pose_mean
        low, high = self.pose_limits[:, 0], self.pose_limits[:, 1]
        return parts + [math.sqrt(self.w_theta) * pose @ self.whiten,
                        math.sqrt(self.w_range) * (torch.relu(low - absolute) + torch.relu(absolute - high))]

    def residuals(self, x: torch.Tensor, targets: torch.Tensor, base_rotation: torch.Tensor) -> torch.Tensor:
        """Residuals whose squared norm is the energy: (B, 63 + priors)."""
        _, betas, pose = self._unpack(x)
        data = (self.keypoints_3d(x, base_rotation) - targets).flatten(1) / self.joint_sigma
        return torch.cat([data] + self._prior_residuals(betas, pose), 1)

    def residuals_and_jacobian(self, x: torch.Tensor, targets: torch.Tensor,
                               base_rotation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``residuals`` and their analytic Jacobian (B, M, P)."""
        turn, betas, pose = self._unpack(x)
        batch, nb, num_keypoints = x.shape[0], self.num_betas, kp.NUM_KEYPOINTS
        finger_pose = self.finger_pose(pose)
        directions = self.model.components if self.pose_space == "pca" else None
        joints, dbeta, dpose = self.model.keypoints_and_jacobians(betas, finger_pose, directions)
        root = slice(kp.ROOT, kp.ROOT + 1)
        rel, dbeta, dpose = joints - joints[:, root], dbeta - dbeta[:, root], dpose - dpose[:, root]
        rotation = axis_angle_to_matrix(turn) @ base_rotation
        fitted = torch.einsum("bij,bkj->bki", rotation, rel)                               # (B, 21, 3)
        # d(exp(w) R0 X) / d w_m = (Jl(w) e_m) x (R X).
        axes = so3_left_jacobian(turn).transpose(1, 2)                                     # (B, 3 m, 3)
        d_turn = torch.linalg.cross(axes[:, None].expand(-1, num_keypoints, -1, -1),
                                    fitted[:, :, None].expand(-1, -1, 3, -1)).transpose(-1, -2)   # (B, 21, 3, 3)
        inv_sigma = 1.0 / self.joint_sigma
        num_data = 3 * num_keypoints
        priors = self._prior_residuals(betas, pose)
        num_prior = sum(p.shape[1] for p in priors)
        jac = x.new_zeros(batch, num_data + num_prior, self.num_params)
        jac_data = jac[:, :num_data].view(batch, num_keypoints, 3, self.num_params)
        beta_cols, pose_cols = self.layout.betas, self.layout.pose
        jac_data[..., self.layout.rotation] = inv_sigma * d_turn
        jac_data[..., beta_cols] = inv_sigma * torch.einsum("bij,bkjs->bkis", rotation, dbeta)
        jac_data[..., pose_cols] = inv_sigma * torch.einsum("bij,bkjs->bkis", rotation, dpose)
        eye = lambda n: torch.eye(n, dtype=x.dtype, device=x.device)  # noqa: E731
        row = num_data
        jac[:, row:row + nb, beta_cols] = math.sqrt(self.alpha_beta) * eye(nb)
        row += nb
        if self.pose_space == "pca":
            jac[:, row:row + self.num_pose, pose_cols] = math.sqrt(self.w_theta) * eye(self.num_pose)
        else:
            jac[:, row:row + 45, pose_cols] = math.sqrt(self.w_theta) * self.whiten.T
            low, high = self.pose_limits[:, 0], self.pose_limits[:, 1]
            slope = (finger_pose > high).to(x.dtype) - (finger_pose < low).to(x.dtype)
            jac[:, row + 45:row + 90, pose_cols] = math.sqrt(self.w_range) * torch.diag_embed(slope)
        data = (fitted - targets).flatten(1) * inv_sigma
        return torch.cat([data] + priors, 1), jac

    def start_rotations(self, targets: torch.Tensor, num_starts: int) -> torch.Tensor:
        """(B, K, 3, 3) starting rotations: the mean hand aligned (Kabsch) on each of the first
        ``num_starts`` keypoint sets of ``START_ALIGNMENTS``."""
        if not 1 <= num_starts <= MAX_STARTS:
            raise ValueError(f"num_starts: expected 1 to {MAX_STARTS}, got {num_starts}")
        source = self.mean_hand[None].expand(targets.shape[0], -1, -1)
        out = []
        for chosen in START_ALIGNMENTS[:num_starts]:
            weights = torch.zeros(kp.NUM_KEYPOINTS, dtype=self.dtype, device=self.device)
            weights[list(chosen)] = 1.0
            out.append(kabsch_rotation(source, targets, weights))
        return torch.stack(out, 1)

    def _check(self, targets) -> torch.Tensor:
        y = targets if torch.is_tensor(targets) else torch.as_tensor(np.asarray(targets))
        if y.ndim != 3 or y.shape[1:] != (kp.NUM_KEYPOINTS, 3):
            raise ValueError(f"keypoints_3d: expected shape (B, {kp.NUM_KEYPOINTS}, 3) in metres, got {tuple(y.shape)}")
        y = y.to(self.device, self.dtype)
        if not torch.isfinite(y).all():
            bad = (~torch.isfinite(y).all(-1).all(-1)).nonzero().squeeze(1)[:5].tolist()
            raise ValueError(f"keypoints_3d: NaN or infinite coordinates in hands {bad}")
        return y - y[:, kp.ROOT:kp.ROOT + 1]

    def fit(self, keypoints_3d, num_starts: int = MAX_STARTS, iterations: int = 30, tolerance: float = 1e-6,
            chunk_size: int = 2048, progress: bool = False) -> Fit3DResult:
        """Fit every hand of a batch of (B, 21, 3) keypoints in metres (made root-relative here).

        ``num_starts``: starting rotations per hand (``START_ALIGNMENTS``), the best energy taken;
        ``tolerance``: relative energy decrease at which a start stops; ``chunk_size`` bounds the
        (hand, start) problems solved together.
        """
        targets = self._check(keypoints_3d)
        batch = targets.shape[0]
        base = self.start_rotations(targets, num_starts).reshape(batch * num_starts, 3, 3)
        flat_targets = targets.repeat_interleave(num_starts, 0)
        x0 = targets.new_zeros(batch * num_starts, self.num_params)
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=math.ceil(batch * num_starts / chunk_size), desc=f"3D fit ({self.pose_space})")
        xs, costs, its = [], [], []
        with torch.no_grad():
            for lo in range(0, batch * num_starts, chunk_size):
                part = slice(lo, lo + chunk_size)
                state = levenberg_marquardt(self.residuals, x0[part], (flat_targets[part], base[part]),
                                            jacobian_fn=self.residuals_and_jacobian, iterations=iterations,
                                            ftol=tolerance)
                xs.append(state.x), costs.append(state.cost), its.append(state.iterations)
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()
            x = torch.cat(xs).reshape(batch, num_starts, -1)
            cost = torch.cat(costs).reshape(batch, num_starts)
            iters = torch.cat(its).reshape(batch, num_starts)
            best = torch.nan_to_num(cost, nan=math.inf).argmin(1)
            rows = torch.arange(batch, device=self.device)
            x, cost, iters = x[rows, best], cost[rows, best], iters[rows, best]
            base = base.reshape(batch, num_starts, 3, 3)[rows, best]
            fitted = self.keypoints_3d(x, base)
        turn, betas, pose = self._unpack(x)
        rotation = axis_angle_to_matrix(turn) @ base
        return Fit3DResult(
            rotation=rotation, global_orient=matrix_to_axis_angle(rotation), betas=betas, pose=pose,
            finger_pose=self.finger_pose(pose), pose_space=self.pose_space, keypoints_3d=fitted,
            joint_error=(fitted - targets).norm(dim=-1), cost=cost, iterations=iters, start=best,
            settings={**self.settings(), "num_starts": int(num_starts), "iterations": int(iterations),
                      "tolerance": float(tolerance)})
