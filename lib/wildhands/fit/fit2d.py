"""The 2D-fit baseline (paper eq. 10): hand and camera parameters from 2D keypoints alone.

    E(R, t, s, beta, theta) = sum_i p_i ||s Pi(R (J_i - J_root)) + t - x_i||^2
                              + alpha_beta |beta|^2 + w_theta |theta|^2

with the camera of ``camera.weak_perspective_project`` (pixels of the 320 crop, y down,
root = keypoint 0), keypoints x_i and confidences p_i (B, 21). The paper minimises it with
Powell's dogleg in chumpy, one hand at a time; here Levenberg-Marquardt fits many hands at
once in torch: analytic Jacobians of a keypoints-only hand model (forward-mode autodiff as
a check and fallback), (B, P, P) normal equations solved by batched Cholesky, Marquardt's
diagonal damping and per-hand trust updates; converged hands leave the batch.

``KeypointModel`` is that keypoints-only model: the 16 joints are linear in beta (the joint
regressor applied to the shape blend shapes, precomputed), forward kinematics runs level by
level down the kinematic tree, and the 5 fingertip vertices are skinned exactly, corrective
pose blend shapes included, so it equals ``HandModel.keypoints`` for any model file. Its
Jacobian: a pose change turns a joint's frame by omega = G_parent Jl(aa) d(aa) (Jl the left
Jacobian of SO(3)), which moves every point of the joint's subtree by omega x (x - p_joint);
the joints are linear in beta for a fixed pose.

Starts: each hand is fitted from several global rotations at once (palm, back and both
sides of the mean hand facing the camera, then oblique and end-on views); the in-plane
rotation, scale and translation of every start come in closed form from a weighted 2D
Procrustes fit of the mean hand's projection to the keypoints. The start with the lowest
final energy wins. Given an ``init`` (e.g. a network prediction), the fit refines it instead.

Pose spaces: ``"pca"`` (the default, as eq. 10) optimises the hand model's PCA coefficients
theta with the prior w_theta |theta|^2. ``"full"`` optimises all 45 finger axis-angle degrees
of freedom q (relative to the model's mean pose) with a Mahalanobis prior w_theta |q C^+|^2,
C the model's 45 x 45 pose components (for the first PCA coefficients this is |theta|^2:
the pose space's own metric), plus a joint-range penalty w_range |max(0, lo - q_abs, q_abs - hi)|^2
on the absolute axis-angle components (default limits, ``default_pose_limits``: the box the
model's file stores, else mean +- 3 standard deviations of the pose space; pass ``pose_limits``
otherwise). In both
spaces the shape coefficients beyond ``SHAPE_LIMIT`` standard deviations pay w_range |max(0, |beta| - 3)|^2.

Projection: the weak-perspective camera above (the paper's), or, given a photo's pinhole camera in
the keypoints' pixels (``Fit2D.fit`` ``pinhole``), ``camera.pinhole_project`` with the same
parameters: the root at depth f / s, so that near hands are fitted with their perspective.

Settings: ``FitSettings.from_config`` reads a profile's ``[fit2d]`` once, into the energy
(``EnergySettings``: ``Fit2D.from_settings``) and the search (``FitOptions``: ``Fit2D.fit``).
The packed parameters are ``hand.parameters.VectorLayout(num_betas, log_scale=True)``'s.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from wildhands.config import settings_from_table, table
from wildhands.fit.lm import levenberg_marquardt
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import MIN_DEPTH_RATIO, axis_angle_to_matrix, matrix_to_axis_angle, pinhole_project
from wildhands.hand.hand_model import HandModel, load_mano_arrays
from wildhands.hand.keypoint_model import KeypointModel, so3_left_jacobian
from wildhands.hand.parameters import ROTATION_DIMS, HandParameters, VectorLayout

POSE_SPACES = ("pca", "full")
# Shape coefficients beyond this many standard deviations are penalised as joint angles out of range are
# (w_range): 2D keypoints cannot tell a hand's size from its distance, and fitted to labels the shape
# drifted to 10 sd (a 59 mm hand; RHD in benchmarks/bench_camera_space.py) for a pixel of fit.
SHAPE_LIMIT = 3.0
ANCHOR_KEYS = ("rotation", "betas", "pose")


# ----------------------------------------------------------------------------- keypoints-only model


def whitening(components: torch.Tensor, std_floor: float = 0.0) -> torch.Tensor:
    """(45, 45) map from finger axis-angle offsets q to prior coordinates, |q W|^2 the Mahalanobis
    energy of the pose components C (rows: directions scaled by their standard deviation).

    W = C^+ when ``std_floor`` is 0. Otherwise each direction's standard deviation is raised to at
    least ``std_floor`` radians: a pose space learnt from a corpus leaves most of the 45
    directions almost no variance, which would freeze joint motions real hands make.
    """
    if std_floor < 0:
        raise ValueError(f"pose_std_floor: expected radians >= 0, got {std_floor}")
    if std_floor == 0:
        return torch.linalg.pinv(components)
    u, std, vt = torch.linalg.svd(components)                                         # C = U diag(std) V^T
    return vt.T @ torch.diag(1.0 / std.clamp_min(std_floor)) @ u.T


def default_pose_limits(arrays: dict, components: torch.Tensor, pose_mean: torch.Tensor) -> torch.Tensor:
    """(45, 2) bounds of the absolute finger axis-angles for the joint-range penalty: the box the hand
    model's file stores (the open hand's ``pose_prior["axis_angle_limits"]``: its pose corpus' extent
    plus 5 degrees, the anatomical ranges widened to real hands'), else the pose space's mean +- 3
    standard deviations, taking the coefficients to have unit variance (MANO's file has no box).

    Not the mean +- 3 sd for the open hand: its coefficients vary by 1 / ``pca_scale`` (about 3.4,
    so that 10 coefficients in [-2, 2] stay in range), and that box held each flexion within 0.7
    rad (a straightened finger paid as much as a keypoint 4 expected errors off)."""
    prior = arrays.get("pose_prior")
    if isinstance(prior, dict) and "axis_angle_limits" in prior:
        return torch.as_tensor(np.asarray(prior["axis_angle_limits"]), dtype=components.dtype, device=components.device)
    std = components.square().sum(0).sqrt()
    return torch.stack([pose_mean - 3 * std, pose_mean + 3 * std], 1)


def bone_length_sum(keypoints_3d: torch.Tensor, usable: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 21, 3) -> (B,) total length of the 20 bones: a hand's size, whatever its pose; with
    ``usable`` (B, 21), of the bones whose both ends are usable."""
    parents, children = (list(ends) for ends in zip(*kp.BONES))
    lengths = (keypoints_3d[:, children] - keypoints_3d[:, parents]).norm(dim=-1)
    if usable is not None:
        lengths = lengths * (usable[:, children] & usable[:, parents])
    return lengths.sum(1)


# ----------------------------------------------------------------------------- starts

# Directions in the hand frame (n palm normal, a across the palm, d along the fingers) that
# face the camera, in the order starts are taken.
_VIEWS = (("n",), ("-n",), ("a",), ("-a",), ("n", "a"), ("n", "-a"), ("-n", "a"), ("-n", "-a"), ("d",), ("-d",))
MAX_STARTS = len(_VIEWS)


def _hand_frame(keypoints: torch.Tensor) -> dict[str, torch.Tensor]:
    """Unit axes of a hand from its (21, 3) keypoints: d along the fingers, a across, n normal."""
    d = keypoints[9] - keypoints[kp.ROOT]
    d = d / d.norm()
    a = keypoints[5] - keypoints[17]
    a = a - (a @ d) * d
    a = a / a.norm()
    n = torch.linalg.cross(d, a)
    return {"d": d, "a": a, "n": n}


def start_rotations(rest_keypoints: torch.Tensor, count: int) -> torch.Tensor:
    """(count, 3, 3) rotations showing the hand from the first ``count`` views of ``_VIEWS``.

    Each turns its view direction towards the camera (-z) and the fingers up the image (-y)
    where it can; the in-plane angle is refitted per hand anyway.
    """
    if not 1 <= count <= MAX_STARTS:
        raise ValueError(f"num_inits: expected 1 to {MAX_STARTS} starting rotations, got {count}")
    axes = _hand_frame(rest_keypoints)
    signed = {**axes, **{f"-{k}": -v for k, v in axes.items()}}
    cam_up = rest_keypoints.new_tensor([0.0, -1.0, 0.0])
    cam_towards = rest_keypoints.new_tensor([0.0, 0.0, -1.0])
    cam_basis = torch.stack([cam_up, cam_towards, torch.linalg.cross(cam_up, cam_towards)], 1)   # columns
    out = []
    for names in _VIEWS[:count]:
        view = sum(signed[name] for name in names)
        view = view / view.norm()
        up = axes["d"] if abs(float(view @ axes["d"])) < 0.9 else axes["n"]
        up = up - (up @ view) * view
        up = up / up.norm()
        hand_basis = torch.stack([up, view, torch.linalg.cross(up, view)], 1)
        out.append(cam_basis @ hand_basis.T)
    return torch.stack(out)


def similarity_2d(source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor):
    """Weighted least-squares s, angle, t with s Rot(angle) source_i + t ~ target_i (batched).

    source, target (B, K, 2), weights (B, K). Rotations only (no reflection).
    """
    w = weights / weights.sum(1, keepdim=True)
    mu_s = (w[..., None] * source).sum(1)
    mu_t = (w[..., None] * target).sum(1)
    s0, t0 = source - mu_s[:, None], target - mu_t[:, None]
    h = torch.einsum("bk,bki,bkj->bij", w, t0, s0)
    angle = torch.atan2(h[:, 1, 0] - h[:, 0, 1], h[:, 0, 0] + h[:, 1, 1])
    cos, sin = torch.cos(angle), torch.sin(angle)
    var = (w * s0.square().sum(-1)).sum(1).clamp_min(1e-30)
    scale = (cos * (h[:, 0, 0] + h[:, 1, 1]) + sin * (h[:, 1, 0] - h[:, 0, 1])) / var
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    trans = mu_t - scale[:, None] * torch.einsum("bij,bj->bi", rot, mu_s)
    return scale, angle, trans


# ----------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class FitOptions:
    """How ``Fit2D.fit`` searches: its starts, the Levenberg-Marquardt budget, the robust rounds.

    ``num_inits``: standard starts per hand (without ``init``); ``extra_starts``: standard starts
    besides a given ``init``; ``iterations`` per start at most; ``tolerance``: the relative energy
    decrease at which a start stops; ``chunk_size``: (hand, start) problems solved together;
    ``robust``: Geman-McClure scale in expected keypoint errors (0: squared residuals, eq. 10), one
    or one per hand (B,); ``robust_rounds``: reweighted fits after the first; ``progress``: a bar.
    """
    num_inits: int = 8
    iterations: int = 15
    tolerance: float = 1e-4
    chunk_size: int = 1024
    robust: float | np.ndarray = 0.0
    robust_rounds: int = 3
    extra_starts: int = 0
    progress: bool = False


@dataclass(frozen=True)
class EnergySettings:
    """Eq. 10's energy as a profile sets it: the ``Fit2D`` arguments of the same names."""
    pose_space: str
    alpha_beta: float
    w_theta: float
    w_range: float
    pose_std_floor: float


ENERGY_KEYS = tuple(f.name for f in fields(EnergySettings))
OPTION_KEYS = tuple(f.name for f in fields(FitOptions) if f.name != "progress")   # progress: the caller's


@dataclass(frozen=True)
class FitSettings:
    """A profile's ``[fit2d]`` table: the 2D fit's energy (``Fit2D``) and search (``Fit2D.fit``)."""
    energy: EnergySettings
    options: FitOptions

    @classmethod
    def from_config(cls, config: dict) -> "FitSettings":
        """From ``[fit2d]``, which must set every key of ``ENERGY_KEYS`` and ``OPTION_KEYS`` and no other."""
        unknown = sorted(set(table(config, "fit2d")) - set(ENERGY_KEYS) - set(OPTION_KEYS))
        if unknown:
            raise ValueError(f"[fit2d]: unknown settings {', '.join(unknown)} "
                             f"(known: {', '.join(ENERGY_KEYS + OPTION_KEYS)})")
        return cls(settings_from_table(EnergySettings, config, "fit2d"),
                   settings_from_table(FitOptions, config, "fit2d", progress=False))

    def replace(self, **changes) -> "FitSettings":
        """These settings with some energy or option fields changed (e.g. ``num_inits=1``)."""
        unknown = sorted(set(changes) - set(ENERGY_KEYS) - {f.name for f in fields(FitOptions)})
        if unknown:
            raise ValueError(f"2D fit settings: unknown {', '.join(unknown)}")
        return FitSettings(
            dataclasses.replace(self.energy, **{k: v for k, v in changes.items() if k in ENERGY_KEYS}),
            dataclasses.replace(self.options, **{k: v for k, v in changes.items() if k not in ENERGY_KEYS}))


# ----------------------------------------------------------------------------- the fit

@dataclass
class Fit2DResult:
    """Fitted parameters per hand (camera convention of ``camera.weak_perspective_project``)."""
    rotation: torch.Tensor        # (B, 3, 3) camera rotation R, acting on root-relative points
    global_orient: torch.Tensor   # (B, 3) R as axis-angle
    trans: torch.Tensor           # (B, 2) root keypoint pixel
    scale: torch.Tensor           # (B,) pixels per metre
    betas: torch.Tensor           # (B, S)
    pose: torch.Tensor            # (B, n) PCA coefficients, or (B, 45) axis-angle offsets from the mean ("full")
    pose_space: str
    keypoints_2d: torch.Tensor    # (B, 21, 2) reprojected keypoints, pixels
    keypoints_3d: torch.Tensor    # (B, 21, 3) R (J - J_root): camera frame, root-relative, metres
    error_px: torch.Tensor        # (B,) mean distance to the keypoints with confidence > 0, pixels
    cost: torch.Tensor            # (B,) final energy of eq. 10
    iterations: torch.Tensor      # (B,) Levenberg-Marquardt iterations of the winning start
    start: torch.Tensor           # (B,) index of the winning start (-1: the given init)
    settings: dict = field(default_factory=dict)

    def parameters(self) -> HandParameters:
        return HandParameters(self.rotation, self.trans, self.scale, self.betas, self.pose)

    def to_vector(self) -> torch.Tensor:
        """The paper's v = (R axis-angle, t, s, beta, theta): (B, 6 + S + n)."""
        return VectorLayout(self.betas.shape[1]).join(self.global_orient, self.trans, self.scale, self.betas,
                                                      self.pose)

    def summary(self) -> dict:
        """JSON-ready numbers: median / 95th percentile / mean error, iterations."""
        err = self.error_px.detach().cpu().numpy()
        its = self.iterations.detach().cpu().numpy()
        return {"hands": int(len(err)), "median_error_px": float(np.median(err)),
                "p95_error_px": float(np.percentile(err, 95)), "mean_error_px": float(err.mean()),
                "mean_iterations": float(its.mean()), "max_iterations": int(its.max()), **self.settings}


@dataclass
class _Derivatives:
    """The hand at packed parameters x and its derivatives, shared by the Jacobian's blocks."""
    rotation: torch.Tensor      # (B, 3, 3) R
    cam: torch.Tensor           # (B, 21, 3) R (J - J_root)
    d_orient: torch.Tensor      # (B, 21, 3, 3) d cam / d axis-angle
    dbeta: torch.Tensor         # (B, 21, 3, S) d (J - J_root) / d beta
    dpose: torch.Tensor         # (B, 21, 3, n) d (J - J_root) / d pose
    finger_pose: torch.Tensor   # (B, 45) absolute finger axis-angles


@dataclass
class _Problem:
    """The (hand, start) least-squares problems of one ``Fit2D.fit`` call, hand-major: ``data`` holds
    the per-problem tensors of ``Fit2D.residuals``, named by ``keys`` (targets and sqrt_conf first)."""
    batch: int
    starts: int
    x0: torch.Tensor            # (batch * starts, P)
    data: tuple
    keys: tuple

    @property
    def size(self) -> int:
        return self.batch * self.starts


class Fit2D:
    """Eq. 10 for a hand model: build once, call ``fit`` on batches of keypoints.

    ``alpha_beta``: shape prior weight; ``w_theta``: pose prior weight (1 in the paper);
    ``pose_space``: "pca" or "full"; ``w_range``, ``pose_limits`` (45, 2) and ``pose_std_floor``
    (radians: no direction of the pose prior and anchor narrower, 0: the pose space's own) for "full".
    ``analytic_jacobian=False`` uses forward-mode autodiff instead (slower, same result).
    Energies are in squared pixels; the fit runs in ``dtype`` on ``device``. Parameters are packed
    as ``VectorLayout(num_betas, log_scale=True)`` says (log s, so that s stays > 0).
    """

    def __init__(self, hand_model: HandModel, alpha_beta: float = 1.0, w_theta: float = 1.0,
                 pose_space: str = "pca", w_range: float = 100.0, pose_limits=None, pose_std_floor: float = 0.0,
                 analytic_jacobian: bool = True, dtype: torch.dtype = torch.float64, device="cpu"):
        if pose_space not in POSE_SPACES:
            raise ValueError(f"pose_space: expected one of {', '.join(POSE_SPACES)}, got {pose_space!r}")
        if alpha_beta < 0 or w_theta < 0 or w_range < 0:
            raise ValueError(f"prior weights must be >= 0, got alpha_beta={alpha_beta}, w_theta={w_theta}, "
                             f"w_range={w_range}")
        self.device = torch.device(device)
        self.model = KeypointModel(hand_model, dtype).to(self.device)
        self.analytic_jacobian = analytic_jacobian
        self.dtype = dtype
        self.pose_space = pose_space
        self.alpha_beta, self.w_theta, self.w_range = float(alpha_beta), float(w_theta), float(w_range)
        self.num_betas = self.model.num_betas
        self.num_pose = self.model.num_pca_comps if pose_space == "pca" else 45
        self.layout = VectorLayout(self.num_betas, log_scale=True)
        with torch.no_grad():
            zeros = torch.zeros(1, self.num_betas, dtype=dtype, device=self.device)
            self.rest = self.model(zeros, zeros.new_zeros(1, self.model.num_pca_comps))[0]
        if pose_space == "full":
            arrays = load_mano_arrays(hand_model.path)
            components = torch.as_tensor(arrays["hands_components"], dtype=dtype, device=self.device)
            self.whiten = whitening(components, float(pose_std_floor))                    # (45, 45): q -> coefficients
            if pose_limits is None:
                pose_limits = default_pose_limits(arrays, components, self.model.pose_mean)
            self.pose_limits = torch.as_tensor(pose_limits, dtype=dtype, device=self.device)
            if self.pose_limits.shape != (45, 2):
                raise ValueError(f"pose_limits: expected shape (45, 2), got {tuple(self.pose_limits.shape)}")

    @classmethod
    def from_settings(cls, hand_model: HandModel, energy: EnergySettings, **runtime) -> "Fit2D":
        """The fit of a profile's energy (``FitSettings.energy``, ``RefineSettings.energy_for``);
        ``runtime``: ``pose_limits``, ``analytic_jacobian``, ``dtype``, ``device``."""
        return cls(hand_model, **dataclasses.asdict(energy), **runtime)

    @property
    def num_params(self) -> int:
        return self.layout.size(self.num_pose)

    def _unpack(self, x: torch.Tensor):
        """(axis-angle, t, s, betas, pose) of packed parameters (B, P)."""
        return self.layout.split(x)

    def _keypoints_3d(self, x: torch.Tensor) -> torch.Tensor:
        """R (J - J_root) for packed parameters: (B, 21, 3)."""
        orient, _, _, betas, pose = self._unpack(x)
        if self.pose_space == "pca":
            joints = self.model(betas, pose)
        else:
            joints = self.model.keypoints(betas, pose + self.model.pose_mean)
        return torch.einsum("bij,bkj->bki", axis_angle_to_matrix(orient), joints - joints[:, kp.ROOT:kp.ROOT + 1])

    def project(self, x: torch.Tensor, keypoints_3d: torch.Tensor | None = None,
                pinhole: torch.Tensor | None = None) -> torch.Tensor:
        """Reprojected keypoints (B, 21, 2) in pixels for packed parameters x (B, P) (their
        ``_keypoints_3d`` when already computed), by the weak-perspective camera or, with ``pinhole``
        (B, 3: focal, principal point), by that pinhole camera (``camera.pinhole_project``)."""
        _, trans, scale, _, _ = self._unpack(x)
        cam = self._keypoints_3d(x) if keypoints_3d is None else keypoints_3d
        return pinhole_project(cam, scale, trans, pinhole)

    # ------------------------------------------------------------------------- the energy

    def residuals(self, x: torch.Tensor, targets: torch.Tensor, sqrt_conf: torch.Tensor,
                  anchor: torch.Tensor | None = None, anchor_scale: torch.Tensor | None = None,
                  targets_3d: torch.Tensor | None = None, sqrt_weight_3d: torch.Tensor | None = None,
                  pinhole: torch.Tensor | None = None) -> torch.Tensor:
        """Residual vector whose squared norm is eq. 10's energy: (B, 42 + priors [+ anchor] [+ 63 3D])."""
        terms = self._residual_terms(x, self._keypoints_3d(x), targets, sqrt_conf, anchor, anchor_scale,
                                     targets_3d, sqrt_weight_3d, pinhole)
        return torch.cat(terms, 1)

    def _residual_terms(self, x, cam, targets, sqrt_conf, anchor, anchor_scale, targets_3d,
                        sqrt_weight_3d, pinhole) -> list[torch.Tensor]:
        """The energy, term by term, for packed parameters x whose camera-frame keypoints are ``cam``:
        the 2D keypoints, the shape and pose priors, the anchor and the 3D keypoints (when given)."""
        _, _, _, betas, pose = self._unpack(x)
        parts = [(sqrt_conf[..., None] * (self.project(x, cam, pinhole) - targets)).flatten(1),
                 math.sqrt(self.alpha_beta) * betas, math.sqrt(self.w_range) * torch.relu(betas.abs() - SHAPE_LIMIT)]
        if self.pose_space == "pca":
            parts.append(math.sqrt(self.w_theta) * pose)
        else:
            absolute = pose + self.model.pose_mean
            low, high = self.pose_limits[:, 0], self.pose_limits[:, 1]
            parts += [math.sqrt(self.w_theta) * pose @ self.whiten,
                      math.sqrt(self.w_range) * (torch.relu(low - absolute) + torch.relu(absolute - high))]
        if anchor is not None:
            parts.append(anchor_scale * self._anchor_coordinates(x - anchor))
        if targets_3d is not None:
            parts.append((sqrt_weight_3d[..., None] * (cam - targets_3d)).flatten(1))
        return parts

    def residuals_and_jacobian(self, x: torch.Tensor, targets: torch.Tensor, sqrt_conf: torch.Tensor,
                               anchor: torch.Tensor | None = None, anchor_scale: torch.Tensor | None = None,
                               targets_3d: torch.Tensor | None = None,
                               sqrt_weight_3d: torch.Tensor | None = None,
                               pinhole: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``residuals`` and their analytic Jacobian (B, M, P), block by block of the same terms."""
        hand = self._derivatives(x)
        terms = self._residual_terms(x, hand.cam, targets, sqrt_conf, anchor, anchor_scale, targets_3d,
                                     sqrt_weight_3d, pinhole)
        blocks = [self._jacobian_2d(x, hand, sqrt_conf, pinhole), self._prior_jacobian(x, hand.finger_pose)]
        if anchor is not None:
            blocks.append(self._anchor_jacobian(x.shape[0], anchor_scale, x))
        if targets_3d is not None:
            blocks.append(self._jacobian_3d(x, hand, sqrt_weight_3d))
        return torch.cat(terms, 1), torch.cat(blocks, 1)

    def _derivatives(self, x: torch.Tensor) -> _Derivatives:
        orient, _, _, betas, pose = self._unpack(x)
        finger_pose = self.model.pca_to_axis_angle(pose) if self.pose_space == "pca" else pose + self.model.pose_mean
        directions = self.model.components if self.pose_space == "pca" else None
        joints, dbeta, dpose = self.model.keypoints_and_jacobians(betas, finger_pose, directions)
        root = slice(kp.ROOT, kp.ROOT + 1)
        rel, dbeta, dpose = joints - joints[:, root], dbeta - dbeta[:, root], dpose - dpose[:, root]
        rotation = axis_angle_to_matrix(orient)
        cam = torch.einsum("bij,bkj->bki", rotation, rel)                                # (B, 21, 3)
        # Camera rotation: d(R X) / d orient_m = (Jl(orient) e_m) x (R X).
        axes = so3_left_jacobian(orient).transpose(1, 2)                                  # (B, 3 m, 3)
        d_orient = torch.linalg.cross(axes[:, None].expand(-1, cam.shape[1], -1, -1),
                                      cam[:, :, None].expand(-1, -1, 3, -1)).transpose(-1, -2)   # (B, 21, 3, 3)
        return _Derivatives(rotation, cam, d_orient, dbeta, dpose, finger_pose)

    def _jacobian_2d(self, x: torch.Tensor, hand: _Derivatives, sqrt_conf: torch.Tensor,
                     pinhole: torch.Tensor | None = None) -> torch.Tensor:
        """Rows of the 2D keypoint residuals: (B, 42, P)."""
        _, trans, scale, _, _ = self._unpack(x)
        rows = 2 if pinhole is None else 3        # the pinhole camera also needs d(s z)
        s = scale[:, None, None, None]
        layout, turn = self.layout, hand.rotation[:, :rows]
        # d(s R (J - J_root) + (t, 0)) / dx: the weak-perspective pixels, then s z
        jac = x.new_zeros(x.shape[0], hand.cam.shape[1], rows, self.num_params)
        jac[..., layout.rotation] = s * hand.d_orient[..., :rows, :]
        jac[..., :2, layout.trans] = torch.eye(2, dtype=x.dtype, device=x.device)
        jac[..., layout.scale] = s[..., 0] * hand.cam[..., :rows]                         # d / d log s
        jac[..., layout.betas] = s * torch.einsum("bij,bkjs->bkis", turn, hand.dbeta)
        jac[..., layout.pose] = s * torch.einsum("bij,bkjs->bkis", turn, hand.dpose)
        if pinhole is not None:
            # u = c + (w - c) / d, d = 1 + s z / f:  du = dw / d - (w - c) / d^2 * d(s z) / f
            focal, centre = pinhole[:, None, :1], pinhole[:, None, 1:]
            depth = 1 + scale[:, None, None] * hand.cam[..., 2:] / focal                 # (B, 21, 1)
            clamped = depth < MIN_DEPTH_RATIO
            depth = depth.clamp_min(MIN_DEPTH_RATIO)
            offset = scale[:, None, None] * hand.cam[..., :2] + trans[:, None] - centre   # w - c (B, 21, 2)
            d_depth = torch.where(clamped[..., None], 0.0, jac[..., 2:, :] / focal[..., None])
            jac = jac[..., :2, :] / depth[..., None] - (offset / depth.square())[..., None] * d_depth
        return (sqrt_conf[..., None, None] * jac).flatten(1, 2)

    def _prior_jacobian(self, x: torch.Tensor, finger_pose: torch.Tensor) -> torch.Tensor:
        """Rows of the shape prior, its range and the pose priors: (B, 2 S + n [+ 45 range], P)."""
        nb = self.num_betas
        num_prior = 2 * nb + (self.num_pose if self.pose_space == "pca" else 90)
        jac = x.new_zeros(x.shape[0], num_prior, self.num_params)
        jac[:, :nb, self.layout.betas] = math.sqrt(self.alpha_beta) * torch.eye(nb, dtype=x.dtype, device=x.device)
        betas = x[:, self.layout.betas]
        jac[:, nb:2 * nb, self.layout.betas] = math.sqrt(self.w_range) * torch.diag_embed(
            torch.sign(betas) * (betas.abs() > SHAPE_LIMIT).to(x.dtype))
        pose_rows, pose_cols = slice(2 * nb, 2 * nb + self.num_pose), self.layout.pose
        if self.pose_space == "pca":
            eye = torch.eye(self.num_pose, dtype=x.dtype, device=x.device)
            jac[:, pose_rows, pose_cols] = math.sqrt(self.w_theta) * eye
        else:
            low, high = self.pose_limits[:, 0], self.pose_limits[:, 1]
            jac[:, pose_rows, pose_cols] = math.sqrt(self.w_theta) * self.whiten.T
            slope = (finger_pose > high).to(x.dtype) - (finger_pose < low).to(x.dtype)
            jac[:, pose_rows.stop:, pose_cols] = math.sqrt(self.w_range) * torch.diag_embed(slope)
        return jac

    def _jacobian_3d(self, x: torch.Tensor, hand: _Derivatives, sqrt_weight_3d: torch.Tensor) -> torch.Tensor:
        """Rows of the camera-frame joints R (J - J_root) against the detector's 3D keypoints: (B, 63, P)."""
        weight = sqrt_weight_3d[..., None, None]                                           # (B, 21, 1, 1)
        jac = x.new_zeros(x.shape[0], hand.cam.shape[1], 3, self.num_params)
        jac[..., self.layout.rotation] = weight * hand.d_orient
        jac[..., self.layout.betas] = weight * torch.einsum("bij,bkjs->bkis", hand.rotation, hand.dbeta)
        jac[..., self.layout.pose] = weight * torch.einsum("bij,bkjs->bkis", hand.rotation, hand.dpose)
        return jac.flatten(1, 2)

    def _anchor_coordinates(self, delta: torch.Tensor) -> torch.Tensor:
        """(rotation, betas, pose as PCA coefficients) of a parameter difference: (B, 3 + S + n_pca)."""
        pose = delta[:, self.layout.pose]
        if self.pose_space == "full":
            pose = pose @ self.whiten
        return torch.cat([delta[:, self.layout.rotation], delta[:, self.layout.betas], pose], 1)

    def _anchor_jacobian(self, batch: int, anchor_scale: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        nb = self.num_betas
        jac = like.new_zeros(batch, anchor_scale.shape[1], self.num_params)
        rows = torch.arange(ROTATION_DIMS + nb, device=like.device)
        cols = torch.cat([torch.arange(ROTATION_DIMS, device=like.device),
                          self.layout.betas.start + torch.arange(nb, device=like.device)])
        jac[:, rows, cols] = 1.0
        pose_block = (torch.eye(self.num_pose, dtype=like.dtype, device=like.device) if self.pose_space == "pca"
                      else self.whiten.T)
        jac[:, ROTATION_DIMS + nb:, self.layout.pose] = pose_block
        return anchor_scale[..., None] * jac

    # ------------------------------------------------------------------------- inputs and starts

    def _check(self, keypoints_2d, confidences) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(np.asarray(keypoints_2d) if not torch.is_tensor(keypoints_2d) else keypoints_2d)
        if x.ndim != 3 or x.shape[1:] != (kp.NUM_KEYPOINTS, 2):
            raise ValueError(f"keypoints_2d: expected shape (B, {kp.NUM_KEYPOINTS}, 2) in pixels, got {tuple(x.shape)}")
        x = x.to(self.device, self.dtype)
        if confidences is None:
            p = torch.ones(x.shape[:2], dtype=self.dtype, device=self.device)
        else:
            p = torch.as_tensor(np.asarray(confidences) if not torch.is_tensor(confidences) else confidences)
            if p.shape != x.shape[:2]:
                raise ValueError(f"confidences: expected shape {tuple(x.shape[:2])}, got {tuple(p.shape)}")
            p = p.to(self.device, self.dtype)
        if not torch.isfinite(p).all() or (p < 0).any():
            raise ValueError("confidences: expected finite values >= 0")
        bad = (~torch.isfinite(x).all(-1) & (p > 0)).any(1)
        if bad.any():
            raise ValueError(f"keypoints_2d: NaN or infinite coordinates with confidence > 0 in hands "
                             f"{bad.nonzero().squeeze(1)[:5].tolist()}")
        few = (p > 0).sum(1) < 2
        if few.any():
            raise ValueError(f"confidences: hands {few.nonzero().squeeze(1)[:5].tolist()} have fewer than 2 "
                             f"keypoints with confidence > 0")
        return torch.where(p[..., None] > 0, x, torch.zeros_like(x)), p

    def starts(self, targets: torch.Tensor, conf: torch.Tensor, num_inits: int) -> torch.Tensor:
        """Packed parameters (B, K, P) of K starts per hand: mean hand, camera by 2D Procrustes."""
        batch = targets.shape[0]
        rotations = start_rotations(self.rest, num_inits)                                   # (K, 3, 3)
        rel = self.rest - self.rest[kp.ROOT]
        projected = torch.einsum("kij,nj->kni", rotations, rel)[..., :2]                    # (K, 21, 2)
        src = projected[None].expand(batch, -1, -1, -1).reshape(batch * num_inits, -1, 2)
        tgt = targets[:, None].expand(-1, num_inits, -1, -1).reshape(batch * num_inits, -1, 2)
        w = conf[:, None].expand(-1, num_inits, -1).reshape(batch * num_inits, -1)
        scale, angle, trans = similarity_2d(src, tgt, w)
        zero = torch.zeros_like(angle)
        in_plane = axis_angle_to_matrix(torch.stack([zero, zero, angle], -1))
        rotation = in_plane @ rotations.repeat(batch, 1, 1)
        count = batch * num_inits
        x = self.layout.join(matrix_to_axis_angle(rotation), trans, scale.clamp_min(1e-6),
                             targets.new_zeros(count, self.num_betas), targets.new_zeros(count, self.num_pose))
        return x.reshape(batch, num_inits, -1)

    def pack(self, init) -> torch.Tensor:
        """Packed parameters (B, P) from a dict or object (e.g. ``encoder.HandParameters``).

        Needs ``rotation`` (B, 3, 3) or ``global_orient`` (B, 3), ``trans`` (B, 2), ``scale`` (B,),
        ``betas`` and ``pose``: PCA coefficients, or in the "full" space 45 axis-angle offsets.
        """
        def get(key):
            value = init.get(key) if isinstance(init, dict) else getattr(init, key, None)
            if value is None:
                return None
            value = value if torch.is_tensor(value) else torch.as_tensor(np.asarray(value))
            return value.detach().to(self.device, self.dtype)

        missing = [k for k in ("trans", "scale", "betas", "pose") if get(k) is None]
        if get("rotation") is None and get("global_orient") is None:
            missing.insert(0, "rotation (or global_orient)")
        if missing:
            raise ValueError(f"init: missing {', '.join(missing)}")
        orient = get("global_orient") if get("rotation") is None else matrix_to_axis_angle(get("rotation"))
        trans, scale, betas, pose = (get(k) for k in ("trans", "scale", "betas", "pose"))
        batch = orient.shape[0]
        scale = scale.reshape(-1)
        if self.pose_space == "full" and pose.shape[-1] == self.model.num_pca_comps != 45:
            pose = pose @ self.model.components                                    # PCA -> axis-angle offsets
        for name, value, shape in (("rotation", orient, (batch, 3)), ("trans", trans, (batch, 2)),
                                   ("scale", scale, (batch,)), ("betas", betas, (batch, self.num_betas)),
                                   ("pose", pose, (batch, self.num_pose))):
            if tuple(value.shape) != shape:
                raise ValueError(f"init: {name} for {batch} hands has shape {tuple(value.shape)}, "
                                 f"expected {shape}")
        if (scale <= 0).any():
            raise ValueError("init: scale must be > 0 pixels per metre")
        return self.layout.join(orient, trans, scale, betas, pose)

    # ------------------------------------------------------------------------- the fit

    def fit(self, keypoints_2d, confidences=None, init=None, options: FitOptions | None = None, *,
            anchor_sigma: dict | None = None, keypoints_3d=None, weights_3d=None, pinhole=None) -> Fit2DResult:
        """Fit every hand of a batch: keypoints_2d (B, 21, 2) pixels, confidences (B, 21) or None.

        Keypoints with confidence 0 are ignored (they may be NaN). ``options`` (``FitOptions``, its
        defaults when None): the starts, the Levenberg-Marquardt budget and the robust rounds.
        ``init``: start from given parameters (one start per hand, e.g. a network's prediction)
        instead of ``options.num_inits`` standard starts; ``options.extra_starts``: that many
        standard starts besides it, the best taken (for a prediction that may be far off; any
        anchor stays on ``init``). ``anchor_sigma`` (with ``init``): ``{"rotation": rad, "betas": ..,
        "pose": PCA units}`` adds sum ((v - v_init) / sigma)^2 to the energy, a Gaussian prior
        centred on the given parameters (how far a network's prediction is from the truth), so
        that noisy keypoints refine a prediction instead of replacing it.
        ``options.robust`` > 0: outlying keypoints (a detector's hallucinations, swapped fingers)
        lose their pull by iteratively reweighted least squares: ``options.robust_rounds`` more
        fits, each from the previous one's result (the anchor stays on ``init``), each keypoint's
        confidence times 1 / (1 + (r / robust)^2), r its residual at the previous fit in units of
        its expected error (sqrt(confidence) r_px), which minimises the Geman-McClure energy
        sum r^2 / (1 + r^2 / robust^2); starts are compared by that energy. 0: eq. 10 as the paper
        has it (squared residuals). A float, or one scale per hand (B,) with 0 for the hands fitted
        with squared residuals.
        ``keypoints_3d`` (B, 21, 3), root-relative metres in the camera's axes (a detector's 3D
        keypoints, for the hand the fit sees), and ``weights_3d`` (B, 21), 1 / sigma^2 per keypoint
        in 1/m^2 (0: none): adds sum_i w_i |R (J_i - J_root) - lambda X_i|^2, which pulls the
        rotation and pose towards the detector's 3D hand. lambda scales the 3D keypoints to the size
        of the hand at ``init`` (else the mean hand), by the sum of their bone lengths, so that the
        term constrains the shape of the hand and not its size.
        ``pinhole`` (B, 3): the photo's camera in the keypoints' pixels (focal length, principal point
        x, y; ``data.crops.CropTransform.pinhole``): the hands are then projected by it
        (``camera.pinhole_project``: the root at depth f / s) instead of the weak-perspective camera,
        and an ``init``'s scale is first taken to the root's depth (``pinhole_start``).
        """
        options = FitOptions() if options is None else options
        targets, conf = self._check(keypoints_2d, confidences)
        robust_scale = self._robust_scales(options, targets.shape[0])
        rounds = 1 + (int(options.robust_rounds) if bool((robust_scale > 0).any()) else 0)
        pinhole = self._pinhole(pinhole, targets.shape[0])
        problem = self._problem(targets, conf, init, options, anchor_sigma, keypoints_3d, weights_3d, pinhole)
        with torch.no_grad():
            x, cost, its = self._irls(problem, robust_scale, rounds, options)
            x, cost, its, best = self._best_starts(problem, x, cost, its)
            fitted_3d = self._keypoints_3d(x)
            fitted_2d = self.project(x, fitted_3d, pinhole)
        settings = {"alpha_beta": self.alpha_beta, "w_theta": self.w_theta, "pose_space": self.pose_space,
                    "projection": "weak perspective" if pinhole is None else "pinhole",
                    "num_inits": int(problem.starts), "iterations": int(options.iterations),
                    "tolerance": float(options.tolerance),
                    **({"robust": robust_scale.tolist() if np.ndim(options.robust) else float(options.robust),
                        "robust_rounds": int(options.robust_rounds)} if rounds > 1 else {}),
                    **({"anchor_sigma": dict(anchor_sigma)} if anchor_sigma else {}),
                    # Recorded for every fit, with or without the 3D term, as the metrics have always had it.
                    "keypoints_3d": True}
        return self._result(x, cost, its, best if init is None else torch.full_like(best, -1), targets, conf,
                            fitted_3d, fitted_2d, settings)

    def _robust_scales(self, options: FitOptions, batch: int) -> torch.Tensor:
        """(B,) Geman-McClure scale per hand from ``options.robust``; checks the robust and start options."""
        robust_scale = torch.as_tensor(np.asarray(options.robust, np.float64), dtype=self.dtype, device=self.device)
        if robust_scale.ndim == 0:
            robust_scale = robust_scale.expand(batch)
        if (robust_scale.shape != (batch,) or not torch.isfinite(robust_scale).all() or (robust_scale < 0).any()
                or options.robust_rounds < 0):
            raise ValueError(f"robust, robust_rounds: expected scales >= 0 (one, or one per hand of {batch}) and "
                             f"rounds >= 0, got {options.robust!r}, {options.robust_rounds}")
        if not 0 <= int(options.extra_starts) <= MAX_STARTS:
            raise ValueError(f"extra_starts: expected 0-{MAX_STARTS} standard starts besides init, "
                             f"got {options.extra_starts!r}")
        return robust_scale

    def _pinhole(self, pinhole, batch: int) -> torch.Tensor | None:
        if pinhole is None:
            return None
        value = torch.as_tensor(np.asarray(pinhole) if not torch.is_tensor(pinhole) else pinhole)
        value = value.to(self.device, self.dtype)
        if tuple(value.shape) != (batch, 3) or not torch.isfinite(value).all() or (value[:, 0] <= 0).any():
            raise ValueError(f"pinhole: expected ({batch}, 3) focal lengths > 0 and principal points in pixels, "
                             f"got shape {tuple(value.shape)}")
        return value

    def pinhole_start(self, x: torch.Tensor, pinhole: torch.Tensor) -> torch.Tensor:
        """Packed weak-perspective parameters with the scale taken to the root's depth: the pinhole camera
        then draws the hand at its mean depth as large as the weak-perspective camera did. (Turning the
        rotation by the ray to the hand as well, as a crop shows an off-axis hand (``camera.ray_rotation``,
        through the root or the keypoints' centroid, the anchor turned with it or not), changed no DexYCB
        figure of bench_refinement_real_poses.py --depth by more than 0.1 mm: the keypoints settle the
        rotation.)"""
        _, _, scale, _, _ = self._unpack(x)
        mean_z = self._keypoints_3d(x)[..., 2].mean(1)
        ratio = (1 - scale * mean_z / pinhole[:, 0]).clamp_min(MIN_DEPTH_RATIO)
        x = x.clone()
        x[:, self.layout.scale] = x[:, self.layout.scale] - torch.log(ratio)
        return x

    def _problem(self, targets, conf, init, options: FitOptions, anchor_sigma, keypoints_3d, weights_3d,
                 pinhole) -> _Problem:
        """The starts of every hand and the data of its residuals, one row per (hand, start)."""
        batch, centre = targets.shape[0], None
        if init is not None:
            centre = self.pack(init)
            if centre.shape[0] != batch:
                raise ValueError(f"init: {centre.shape[0]} hands, keypoints_2d has {batch}")
            x0 = centre[:, None] if pinhole is None else self.pinhole_start(centre, pinhole)[:, None]
            if options.extra_starts:
                x0 = torch.cat([x0, self.starts(targets, conf, int(options.extra_starts))], 1)
        else:
            if anchor_sigma:
                raise ValueError("anchor_sigma: needs init (the parameters to stay near)")
            x0 = self.starts(targets, conf, options.num_inits)
        starts = x0.shape[1]
        flat_t = targets[:, None].expand(-1, starts, -1, -1).reshape(batch * starts, -1, 2)
        flat_c = conf[:, None].expand(-1, starts, -1).reshape(batch * starts, -1).sqrt()
        data, keys = (flat_t, flat_c), ("targets", "sqrt_conf")
        if anchor_sigma:
            data += (centre.repeat_interleave(starts, 0), self._anchor_scale(anchor_sigma).expand(batch * starts, -1))
            keys += ("anchor", "anchor_scale")
        if keypoints_3d is not None:
            sized = self._targets_3d(keypoints_3d, weights_3d, centre, batch)
            data += tuple(t.repeat_interleave(starts, 0) for t in sized)
            keys += ("targets_3d", "sqrt_weight_3d")
        if pinhole is not None:
            data += (pinhole.repeat_interleave(starts, 0),)
            keys += ("pinhole",)
        return _Problem(batch, starts, x0.reshape(batch * starts, -1), data, keys)

    def _named_residuals(self, keys: tuple, x: torch.Tensor, *parts) -> torch.Tensor:
        return self.residuals(x, **dict(zip(keys, parts)))

    def _named_residuals_and_jacobian(self, keys: tuple, x: torch.Tensor, *parts):
        return self.residuals_and_jacobian(x, **dict(zip(keys, parts)))

    def _irls(self, problem: _Problem, robust_scale: torch.Tensor, rounds: int, options: FitOptions):
        """(x, cost, iterations) per (hand, start): the fit, then ``rounds - 1`` reweighted fits from it."""
        # Per (hand, start) problem; infinite where a hand is fitted with squared residuals.
        flat_scale = torch.where(robust_scale > 0, robust_scale, math.inf).repeat_interleave(problem.starts)
        targets, sqrt_conf = problem.data[:2]
        pinhole = dict(zip(problem.keys, problem.data)).get("pinhole")
        bar = None
        if options.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=rounds * options.iterations * math.ceil(problem.size / options.chunk_size),
                       desc="2D fit", unit="it")

        def robust_weights(x):
            residual = (self.project(x, pinhole=pinhole) - targets).norm(dim=-1) * sqrt_conf  # in expected errors
            return sqrt_conf / (1 + (residual / flat_scale[:, None]).square()).sqrt()

        x, cost, its = self._solve(problem, problem.x0, problem.data, options, bar)
        for _ in range(rounds - 1):
            x, cost, its = self._solve(problem, x, (targets, robust_weights(x)) + problem.data[2:], options, bar)
        if rounds > 1:  # every start's Geman-McClure energy, at its own result
            cost = self._named_residuals(problem.keys, x, targets, robust_weights(x), *problem.data[2:]).square().sum(1)
        if bar is not None:
            bar.close()
        return x, cost, its

    def _solve(self, problem: _Problem, x_start: torch.Tensor, data: tuple, options: FitOptions, bar):
        """Levenberg-Marquardt on every (hand, start) problem from ``x_start``, ``options.chunk_size`` at a time."""
        residual_fn = functools.partial(self._named_residuals, problem.keys)
        jacobian_fn = functools.partial(self._named_residuals_and_jacobian, problem.keys)
        states = []
        for lo in range(0, problem.size, options.chunk_size):
            part = slice(lo, lo + options.chunk_size)
            states.append(levenberg_marquardt(
                residual_fn, x_start[part], tuple(d[part] for d in data), iterations=options.iterations,
                ftol=options.tolerance, jacobian_fn=jacobian_fn if self.analytic_jacobian else None, progress=bar))
            if bar is not None:  # the chunk may have converged before its last iteration
                bar.update(options.iterations - int(states[-1].iterations.max()))
        return (torch.cat([s.x for s in states]), torch.cat([s.cost for s in states]),
                torch.cat([s.iterations for s in states]))

    def _best_starts(self, problem: _Problem, x: torch.Tensor, cost: torch.Tensor, its: torch.Tensor):
        """Each hand's start of the lowest energy: its (x, cost, iterations) and the start's index."""
        batch, starts = problem.batch, problem.starts
        x, cost, its = x.reshape(batch, starts, -1), cost.reshape(batch, starts), its.reshape(batch, starts)
        best = torch.nan_to_num(cost, nan=math.inf).argmin(1)
        rows = torch.arange(batch, device=self.device)
        return x[rows, best], cost[rows, best], its[rows, best], best

    def _result(self, x, cost, its, start, targets, conf, keypoints_3d, keypoints_2d, settings: dict) -> Fit2DResult:
        orient, trans, scale, betas, pose = self._unpack(x)
        rotation = axis_angle_to_matrix(orient)
        visible = conf > 0
        dist = (keypoints_2d - targets).norm(dim=-1)
        error = (dist * visible).sum(1) / visible.sum(1)
        return Fit2DResult(
            rotation=rotation, global_orient=matrix_to_axis_angle(rotation), trans=trans, scale=scale, betas=betas,
            pose=pose, pose_space=self.pose_space, keypoints_2d=keypoints_2d, keypoints_3d=keypoints_3d,
            error_px=error, cost=cost, iterations=its, start=start, settings=settings)

    def _targets_3d(self, keypoints_3d, weights_3d, centre: torch.Tensor | None, batch: int):
        """(targets (B, 21, 3) scaled to the hand's size, sqrt weights (B, 21)) of the 3D term."""
        def tensor(value, name, shape):
            value = torch.as_tensor(np.asarray(value) if not torch.is_tensor(value) else value)
            if tuple(value.shape) != shape:
                raise ValueError(f"{name}: expected shape {shape}, got {tuple(value.shape)}")
            return value.to(self.device, self.dtype)

        if weights_3d is None:
            raise ValueError("weights_3d: needed with keypoints_3d (1 / sigma^2 per keypoint, 1/m^2)")
        weights = tensor(weights_3d, "weights_3d", (batch, kp.NUM_KEYPOINTS))
        points = tensor(keypoints_3d, "keypoints_3d", (batch, kp.NUM_KEYPOINTS, 3))
        usable = torch.isfinite(points).all(-1) & (weights > 0)
        if not torch.isfinite(weights).all() or (weights < 0).any():
            raise ValueError("weights_3d: expected finite values >= 0")
        points = torch.where(usable[..., None], points, torch.zeros_like(points))
        points = points - points[:, kp.ROOT:kp.ROOT + 1]
        reference = (self.rest - self.rest[kp.ROOT])[None].expand(batch, -1, -1) if centre is None \
            else self._keypoints_3d(centre)
        size = bone_length_sum(points, usable)
        scale = torch.where(size > 0, bone_length_sum(reference, usable) / size.clamp_min(1e-12),
                            torch.ones_like(size))
        weights = torch.where(usable & usable[:, kp.ROOT:kp.ROOT + 1], weights, torch.zeros_like(weights))
        return scale[:, None, None] * points, weights.sqrt()

    def _anchor_scale(self, anchor_sigma: dict) -> torch.Tensor:
        """(1, 3 + S + n) inverse sigmas of the anchor residuals from ``{"rotation", "betas", "pose"}``."""
        unknown = sorted(set(anchor_sigma) - set(ANCHOR_KEYS))
        missing = [k for k in ANCHOR_KEYS if k not in anchor_sigma]
        if unknown or missing:
            raise ValueError(f"anchor_sigma: expected keys {', '.join(ANCHOR_KEYS)}, got {sorted(anchor_sigma)}")
        sizes = {"rotation": 3, "betas": self.num_betas, "pose": self.num_pose}
        parts = []
        for key in ANCHOR_KEYS:
            sigma = float(anchor_sigma[key])
            if not sigma > 0:
                raise ValueError(f"anchor_sigma: {key} must be > 0, got {anchor_sigma[key]!r}")
            parts.append(torch.full((sizes[key],), 1.0 / sigma, dtype=self.dtype, device=self.device))
        return torch.cat(parts)[None]


def fit_keypoints_2d(hand_model: HandModel, keypoints_2d, settings: FitSettings, confidences=None, init=None,
                     anchor_sigma: dict | None = None) -> Fit2DResult:
    """One call: fit eq. 10 to (B, 21, 2) keypoints with ``settings`` (``FitSettings.from_config``,
    changed with ``FitSettings.replace``); ``init`` and ``anchor_sigma`` as in ``Fit2D.fit``."""
    return Fit2D.from_settings(hand_model, settings.energy).fit(keypoints_2d, confidences, init, settings.options,
                                                                anchor_sigma=anchor_sigma)
