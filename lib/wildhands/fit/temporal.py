"""The temporal fit of a hand track: one shape per track, smooth pose, rotation and camera.

Owns the smoothing of per-frame hand estimates through time, offline (a batched fit over
windows of frames) and online (a one-euro filter, causal).

A track's frames are fitted in one frame of reference, its "track frame": image pixels, mirrored
(x' = W - 1 - x) for a left hand, so that the right-hand model and eq. 10's weak-perspective
camera x = s Pi(R (J - J_root)) + t apply to every frame whatever its crop; or, given the video's
pinhole camera (``TrackObservations.pinhole``, mirrored with the track frame), the per-photo
refinement's perspective camera (``camera.pinhole_project``: the root at depth f / s). Per frame the
parameters are z_t = (R axis-angle 3, t 2, log s 1, pose n); the shape beta is one for the track.

Offline energy of a window of T frames (every term in units of its expected error, as the
per-photo refinement ``fit.refine``):

    sum_t E_t(z_t, beta)                                   eq. 10 per frame (``Fit2D.residuals``):
                                                           2D keypoints weighted 1 / sigma_px^2,
                                                           priors, the network's prediction as an
                                                           anchor, the detector's 3D landmarks
    + sum_t |(z_{t+1} - z_t) / (sigma_v / fps)|^2          velocity prior
    + sum_t |(z_{t+1} - 2 z_t + z_{t-1}) / (sigma_a / fps^2)|^2   acceleration prior

sigma_v and sigma_a per parameter block in physical units (``TemporalSettings``): rotation rad/s
and rad/s^2; translation m/s and m/s^2 at the hand (turned into pixels with the track's median
scale s, px/m); log-scale 1/s and 1/s^2; pose: PCA coefficients per s and s^2 in the 10-D space,
and in the 45-D space ("full": tracks whose frames carry the detector's world landmarks, fitted
with the per-photo refinement's ``[refine.with_3d]`` pose space and priors) radians per s and s^2
per finger joint angle (``angle_velocity_sigma``, ``angle_acceleration_sigma``), over shorter
windows (``window_with_3d``). Minimised by ``fit.lm.levenberg_marquardt``: a window is one problem
of the batch (windows of every track solved together), its normal equations assembled block by
block from ``Fit2D.residuals_and_jacobian`` per frame (the frames' blocks on the diagonal, the
shared beta's rows and columns beside them, the priors' constant band) and handed to the LM as
their Cholesky factor (``_square_root``), never as the mostly-zero dense Jacobian. Outlying
keypoints lose their pull by reweighting (Geman-McClure, ``[refine] robust``), as in the per-photo
refinement.

Long tracks: windows of ``window`` frames overlapping by ``overlap``, blended linearly across the
overlap; the track's beta is fitted first on ``window`` frames spread over the whole track (each
with its own pose and camera, no smoothness between them) and then held by every window, so that
the shape is one per track at the cost of one window more. Frames of a track without a detection
(gaps shorter than the tracker's ``max_missing``) get their parameters from the priors alone.

Latency: offline, a frame is final once its window is solved (up to ``window`` frames, in
practice the whole video). Online (``mode = "online"``), each frame's per-photo estimate (the
network's; refined by the 2D fit first with ``online_refine``) passes through a one-euro filter
(Casiez et al., CHI 2012) per parameter and the shape is the running mean of the track's
estimates: no frame of delay, a lag of about 1 / (2 pi min_cutoff_hz) s on slow motion, less on
fast motion (``beta``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from wildhands.config import settings_from_table
from wildhands.fit.fit2d import Fit2D
from wildhands.fit.lm import levenberg_marquardt
from wildhands.hand.parameters import VectorLayout

MODES = ("offline", "online", "per-frame")   # per-frame: no smoothing (the photo pipeline per frame)
BLOCKS = ("rotation", "translation", "log_scale", "pose")


@dataclass
class TemporalSettings:
    """``[video]`` of a profile (``from_config``). Sigmas per ``BLOCKS`` (units in the module docstring)."""
    mode: str                        # offline | online | per-frame
    window: int                      # frames per fitted window
    overlap: int                     # frames shared by consecutive windows
    iterations: int                  # LM iterations per round
    robust_rounds: int               # reweighted rounds after the first (0: squared residuals)
    velocity_sigma: dict
    acceleration_sigma: dict
    angle_velocity_sigma: float      # pose in the 45-D space: rad/s per finger joint angle
    angle_acceleration_sigma: float  # and rad/s^2
    window_with_3d: int              # window and overlap of the 45-D fit (51 parameters a frame: its
    overlap_with_3d: int             # dense solve grows with the cube of the window's parameters)
    online_refine: bool              # online: each frame's network estimate refined by the 2D fit first
    min_cutoff_hz: float             # online: one-euro cutoff at rest
    beta: float                      # online: cutoff increase per unit of speed (per s)
    d_cutoff_hz: float               # online: cutoff of the speed estimate

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"[video] mode: expected one of {', '.join(MODES)}, got {self.mode!r}")
        for window, overlap in ((self.window, self.overlap), (self.window_with_3d, self.overlap_with_3d)):
            if not (window >= 3 and 0 <= overlap < window):
                raise ValueError(f"[video]: window >= 3 and 0 <= overlap < window (and the same of window_with_3d, "
                                 f"overlap_with_3d), got {window}, {overlap}")
        for name in ("velocity_sigma", "acceleration_sigma"):
            table = getattr(self, name)
            if sorted(table) != sorted(BLOCKS) or not all(float(v) > 0 for v in table.values()):
                raise ValueError(f"[video] {name}: expected {', '.join(BLOCKS)}, each > 0; got {table}")
        for name in ("angle_velocity_sigma", "angle_acceleration_sigma"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"[video] {name}: expected > 0 (rad/s, rad/s^2), got {getattr(self, name)!r}")

    def windowing(self, joint_angles: bool) -> tuple[int, int]:
        """(window, overlap) of the fit in the 45 joint angles' space (True) or the PCA space."""
        return (self.window_with_3d, self.overlap_with_3d) if joint_angles else (self.window, self.overlap)

    @classmethod
    def from_config(cls, config: dict, **overrides) -> "TemporalSettings":
        """From the profile's ``[video]`` table, ``overrides`` (fields) replacing its keys."""
        return settings_from_table(cls, config, "video", **overrides)


@dataclass
class TrackObservations:
    """What a track's frames say, in the track frame (``T`` frames, first to last of the track)."""
    keypoints_2d: np.ndarray        # (T, 21, 2) pixels; anything where weights are 0
    weights: np.ndarray             # (T, 21) 1 / sigma_px^2 per keypoint; 0: not seen
    init: np.ndarray                # (T, P) packed ``Fit2D`` parameters per frame; NaN rows: none
    anchored: np.ndarray            # (T,) hold ``init`` as the anchor of that frame
    world: np.ndarray | None = None          # (T, 21, 3) detector's 3D keypoints (mirrored for a left track)
    world_weights: np.ndarray | None = None  # (T, 21) 1 / sigma_m^2; 0: none
    pinhole: np.ndarray | None = None        # (T, 3) the video's camera in the track frame (focal length,
    #                                          principal point x, y; px), or None: the weak-perspective camera


@dataclass
class TrackFit:
    """Packed parameters per frame (T, P) in the track frame; ``betas`` (S,) shared."""
    params: np.ndarray
    betas: np.ndarray
    cost: float


def continuous_rotations(axis_angles: np.ndarray) -> np.ndarray:
    """(T, 3) axis-angles with each one's equivalent (a - 2 pi a / |a|) taken where it is nearer
    the previous: the same rotations, without the jumps that break finite differences."""
    out = np.array(axis_angles, np.float64, copy=True)
    for t in range(1, len(out)):
        angle = np.linalg.norm(out[t])
        if angle < 1e-9:
            continue
        other = out[t] * (1 - 2 * math.pi / angle)
        if np.linalg.norm(other - out[t - 1]) < np.linalg.norm(out[t] - out[t - 1]):
            out[t] = other
    return out


def fill_missing(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(T, D) values with the rows not ``known`` interpolated linearly (held at the ends)."""
    values = np.array(values, np.float64, copy=True)
    known = np.asarray(known, bool)
    if not known.any():
        raise ValueError("a track needs at least one frame with an estimate")
    frames = np.arange(len(values))
    for d in range(values.shape[1]):
        values[~known, d] = np.interp(frames[~known], frames[known], values[known, d])
    return values


def prior_scales(settings: TemporalSettings, fps: float, px_per_m: float, num_pose: int,
                 joint_angles: bool = False) -> tuple:
    """Inverse sigmas per frame parameter (6 + n,) of the velocity and acceleration priors;
    ``joint_angles``: the pose is the 45 finger joint angles (sigmas ``angle_*_sigma``, rad)."""
    if not (fps > 0 and px_per_m > 0):
        raise ValueError(f"fps and scale must be > 0, got {fps}, {px_per_m}")

    def per_parameter(sigma: dict, angle_sigma: float, per_frame: float) -> np.ndarray:
        sigma = {**sigma, "pose": angle_sigma} if joint_angles else sigma
        sizes = {"rotation": 3, "translation": 2, "log_scale": 1, "pose": num_pose}
        unit = {"translation": px_per_m}
        return np.concatenate([np.full(sizes[b], 1.0 / (float(sigma[b]) * unit.get(b, 1.0) * per_frame))
                               for b in BLOCKS])
    return (per_parameter(settings.velocity_sigma, settings.angle_velocity_sigma, 1.0 / fps),
            per_parameter(settings.acceleration_sigma, settings.angle_acceleration_sigma, 1.0 / fps ** 2))


def difference_operator(frames: int, inv_velocity: torch.Tensor, inv_acceleration: torch.Tensor) -> torch.Tensor:
    """(R, T * D) residuals of both priors as a linear map of the stacked frame parameters."""
    eye = torch.eye(frames, dtype=inv_velocity.dtype)
    first = eye[1:] - eye[:-1]                                    # (T - 1, T)
    second = eye[2:] - 2 * eye[1:-1] + eye[:-2]                   # (T - 2, T)
    rows = [torch.kron(first, torch.diag(inv_velocity))]
    if frames > 2:
        rows.append(torch.kron(second, torch.diag(inv_acceleration)))
    return torch.cat(rows, 0)


def window_starts(frames: int, window: int, overlap: int) -> list[int]:
    """First frames of the windows covering ``frames`` (the last one flush with the end)."""
    if frames <= window:
        return [0]
    step = window - overlap
    starts = list(range(0, frames - window, step)) + [frames - window]
    return sorted(set(starts))


def blend_windows(solved: list[np.ndarray], starts: list[int], frames: int, overlap: int) -> np.ndarray:
    """(frames, D) from windows' (W, D) values: linear cross-fades over the overlaps."""
    total = np.zeros((frames, solved[0].shape[1]))
    weight = np.zeros(frames)
    for values, start in zip(solved, starts):
        length = len(values)
        ramp = np.ones(length)
        if overlap > 0:
            rise = (np.arange(length) + 1.0) / (overlap + 1.0)
            ramp = np.minimum(ramp, np.where(start > 0, rise, 1.0))
            ramp = np.minimum(ramp, np.where(start + length < frames, rise[::-1], 1.0))
        total[start:start + length] += ramp[:, None] * values
        weight[start:start + length] += ramp
    return total / weight[:, None]


FRAME_KEYS = ("targets", "sqrt_conf", "anchor", "anchor_scale", "targets_3d", "sqrt_weight_3d", "pinhole")


class TemporalFit:
    """The offline fit of tracks: build once per hand model and settings, call ``fit_tracks``.

    ``fit``: the per-frame model, pose space and priors (``Fit2D``, e.g. with ``fit.refine``'s settings:
    ``energy_for(True)``, 45-D, for tracks with the detector's world landmarks; a "full" fit takes
    ``init`` poses as PCA coefficients too);
    ``anchor_sigma``: ``Fit2D.fit``'s, for the frames whose ``init`` is a prediction; ``robust``:
    the Geman-McClure scale in expected keypoint errors (0: squared residuals).
    """

    def __init__(self, fit: Fit2D, settings: TemporalSettings, anchor_sigma: dict | None = None,
                 robust: float = 3.0):
        self.fit, self.settings, self.robust = fit, settings, float(robust)
        self.anchor_scale = None if not anchor_sigma else fit._anchor_scale(anchor_sigma)[0]
        self.layout = fit.layout                                     # Fit2D's packed parameters
        self.frame_layout = VectorLayout(0, log_scale=True)          # a frame's: the same without the shape
        self.frame_dims = self.frame_layout.size(fit.num_pose)

    def fit_tracks(self, tracks: list[TrackObservations], fps: float) -> list[TrackFit]:
        """Every track's smoothed parameters; windows of all tracks solved as one batch per length."""
        prepared = [self._prepare(obs, fps) for obs in tracks]
        window, overlap = self.settings.windowing(self.fit.pose_space == "full")
        starts = [window_starts(len(p["init"]), window, overlap) for p in prepared]
        # One shape per track: a long track's shape is fitted first, on frames spread over it (no
        # smoothness between them), then held by all its windows; a short track's is its window's.
        spread = [(k, np.unique(np.linspace(0, len(p["init"]) - 1, window).round().astype(int)), False)
                  for k, p in enumerate(prepared) if len(starts[k]) > 1]
        shared = {job[0]: result[0] for job, result in zip(spread, self._solve_jobs(prepared, spread, {}))}
        jobs = [(k, np.arange(s, s + min(window, len(p["init"]))), True)
                for k, p in enumerate(prepared) for s in starts[k]]
        solved = self._solve_jobs(prepared, jobs, shared)
        out = []
        for k, p in enumerate(prepared):
            mine = [i for i, job in enumerate(jobs) if job[0] == k]
            frames = blend_windows([solved[i][1] for i in mine], starts[k], len(p["init"]), overlap)
            betas = shared.get(k, solved[mine[0]][0])
            params = self.layout.with_betas(frames, np.repeat(betas[None], len(frames), 0))
            out.append(TrackFit(params, betas, float(sum(solved[i][2] for i in mine))))
        return out

    def _prepare(self, obs: TrackObservations, fps: float) -> dict:
        """A track's data as tensors: initial values filled and unwrapped, per-frame terms, priors."""
        init = np.asarray(obs.init, np.float64)
        known = np.isfinite(init).all(1)
        init = fill_missing(init, known)
        init[:, self.layout.rotation] = continuous_rotations(init[:, self.layout.rotation])
        init = self._in_pose_space(init)
        tensor = lambda a: torch.as_tensor(np.asarray(a, np.float64), dtype=self.fit.dtype)  # noqa: E731
        weights = np.where(np.isfinite(obs.keypoints_2d).all(-1), np.asarray(obs.weights, np.float64), 0.0)
        out = {"init": init, "targets": tensor(np.nan_to_num(obs.keypoints_2d)), "sqrt_conf": tensor(np.sqrt(weights))}
        if self.anchor_scale is not None:
            anchored = torch.as_tensor(np.asarray(obs.anchored, bool) & known)
            out["anchor"] = tensor(init)
            out["anchor_scale"] = anchored[:, None].to(self.fit.dtype) * self.anchor_scale
        if obs.world is not None and np.any(np.asarray(obs.world_weights) > 0):
            out["targets_3d"], out["sqrt_weight_3d"] = self.fit._targets_3d(
                tensor(obs.world), tensor(obs.world_weights), tensor(init), len(init))
        if obs.pinhole is not None:   # the per-photo refinement's start: the scale taken to the root's depth
            out["pinhole"] = self.fit._pinhole(obs.pinhole, len(init))
            out["init"] = init = self.fit.pinhole_start(tensor(init), out["pinhole"]).numpy()
        px_per_m = float(np.median(np.exp(init[:, self.layout.scale])))
        inv_v, inv_a = prior_scales(self.settings, fps, px_per_m, self.fit.num_pose,
                                    joint_angles=self.fit.pose_space == "full")
        out["inv_velocity"], out["inv_acceleration"] = tensor(inv_v), tensor(inv_a)
        return out

    def _in_pose_space(self, init: np.ndarray) -> np.ndarray:
        """(T, P) packed parameters with the pose in the fit's space: PCA coefficients (the network's)
        turned into the 45 joint angles' offsets from the mean pose for a "full" fit."""
        size = self.layout.size(self.fit.model.num_pca_comps)
        if init.shape[1] == self.fit.num_params:
            return init
        if self.fit.pose_space != "full" or init.shape[1] != size:
            raise ValueError(f"init: expected {self.fit.num_params} parameters per frame ({self.fit.pose_space} "
                             f"pose space), got {init.shape[1]}")
        pose = self.layout.pose
        components = self.fit.model.components.double().cpu().numpy()
        return np.concatenate([init[:, :pose.start], init[:, pose] @ components], 1)

    def _solve_jobs(self, prepared: list[dict], jobs: list, shared: dict) -> list:
        """(betas (S,), frame parameters (W, 6 + n), cost) per (track, frame indices, smooth) job; the
        shape is ``shared[track]`` where given, else fitted per job. Jobs alike are solved as one batch."""
        results = [None] * len(jobs)
        nb = self.fit.num_betas
        for length, fixed in sorted({(len(job[1]), job[0] in shared) for job in jobs}):
            members = [i for i, job in enumerate(jobs) if (len(job[1]), job[0] in shared) == (length, fixed)]
            data, z0, b0 = {}, [], []
            for i in members:
                k, frames, smooth = jobs[i]
                p, index = prepared[k], torch.as_tensor(frames)
                for key in FRAME_KEYS:
                    if key in p:
                        data.setdefault(key, []).append(p[key][index])
                init = p["init"][frames]
                z0.append(self.layout.without_betas(init))
                b0.append(shared[k] if fixed else init[:, self.layout.betas].mean(0))
                operator = difference_operator(length, p["inv_velocity"], p["inv_acceleration"])
                data.setdefault("operator", []).append(operator if smooth else torch.zeros_like(operator))
            batch = {key: torch.stack(values) for key, values in data.items()}
            batch["gram"] = batch["operator"].transpose(1, 2) @ batch["operator"]   # the priors' constant J^T J
            z0 = torch.as_tensor(np.stack(z0), dtype=self.fit.dtype).flatten(1)
            b0 = torch.as_tensor(np.stack(b0), dtype=self.fit.dtype)
            if fixed:
                batch["betas"] = b0
            x, cost = self._solve(batch, z0 if fixed else torch.cat([b0, z0], 1), length)
            for row, i in enumerate(members):
                betas = b0[row] if fixed else x[row, :nb]
                frames = x[row, (0 if fixed else nb):].reshape(length, -1)
                results[i] = (betas.numpy(), frames.numpy(), float(cost[row]))
        return results

    def _solve(self, batch: dict, x0: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Levenberg-Marquardt on a batch of windows, then ``robust_rounds`` reweighted rounds."""
        keys = list(batch)
        measured = batch["sqrt_conf"]

        def residual_fn(x, *parts):
            return self._residuals(x, length, dict(zip(keys, parts)), False)

        def jacobian_fn(x, *parts):
            return self._residuals(x, length, dict(zip(keys, parts)), True)
        rounds = 1 + (self.settings.robust_rounds if self.robust > 0 else 0)
        x = x0
        with torch.no_grad():
            for _ in range(rounds):
                state = levenberg_marquardt(residual_fn, x, tuple(batch[k] for k in keys), jacobian_fn=jacobian_fn,
                                            iterations=self.settings.iterations, ftol=1e-4)
                x = state.x
                if self.robust > 0:  # Geman-McClure weights from the residuals in expected errors
                    flat, _ = self._frames(x, length, batch.get("betas"))
                    pinhole = batch["pinhole"].flatten(0, 1) if "pinhole" in batch else None
                    error = (self.fit.project(flat, None, pinhole) - batch["targets"].flatten(0, 1)).norm(dim=-1)
                    error = error.reshape(measured.shape) * measured
                    batch["sqrt_conf"] = measured / (1 + (error / self.robust).square()).sqrt()
        return x, state.cost

    def _frames(self, x: torch.Tensor, length: int, betas: torch.Tensor | None):
        """Per-frame packed ``Fit2D`` parameters (B * W, P) and the frame parameters (B, W, 6 + n)."""
        nb = self.fit.num_betas
        if betas is None:
            betas, x = x[:, :nb], x[:, nb:]
        z = x.reshape(x.shape[0], length, self.frame_dims)
        full = self.layout.with_betas(z, betas[:, None].expand(-1, length, -1))
        return full.flatten(0, 1), z

    def _residuals(self, x: torch.Tensor, length: int, data: dict, jacobian: bool):
        """Residuals (B, M) of the windows' energy; with ``jacobian``, a square-root factor of its
        normal equations instead (``_square_root``), built block by block."""
        batch = x.shape[0]
        flat, z = self._frames(x, length, data.get("betas"))
        per_frame = {k: data[k].flatten(0, 1) for k in FRAME_KEYS if k in data}
        operator = data["operator"]                                           # (B, R, W * D)
        smooth = (operator @ z.reshape(batch, -1, 1))[..., 0]
        if not jacobian:
            return torch.cat([self.fit.residuals(flat, **per_frame).reshape(batch, -1), smooth], 1)
        r, jac = self.fit.residuals_and_jacobian(flat, **per_frame)           # (B W, M, P)
        return _square_root(*self._normal_equations(r, jac, smooth, data, length, "betas" not in data))

    def _normal_equations(self, r, jac, smooth, data: dict, length: int, free_betas: bool):
        """J^T J (B, P, P) and J^T r (B, P) of a batch of windows from the per-frame Jacobians: the
        frames' blocks on the diagonal, the shared beta rows and columns, the priors' constant band."""
        nb, dims = self.fit.num_betas, self.frame_dims
        operator = data["operator"]
        batch = operator.shape[0]
        jac = jac.reshape(batch, length, jac.shape[1], -1)
        r = r.reshape(batch, length, -1)
        frame = self.layout.without_betas(jac)                                            # (B, W, M, D)
        eye = torch.eye(length, dtype=r.dtype)
        blocks = torch.einsum("btmd,btme->btde", frame, frame)
        hessian = torch.einsum("btde,ts->btdse", blocks, eye).reshape(batch, length * dims, length * dims)
        hessian = hessian + data["gram"]
        gradient = torch.einsum("btmd,btm->btd", frame, r).reshape(batch, -1)
        gradient = gradient + (operator.transpose(1, 2) @ smooth[..., None])[..., 0]
        if not free_betas:
            return hessian, gradient
        shape = jac[..., self.layout.betas]                                               # (B, W, M, S)
        cross = torch.einsum("btms,btmd->bstd", shape, frame).reshape(batch, nb, -1)
        top = torch.cat([torch.einsum("btms,btmu->bsu", shape, shape), cross], 2)
        hessian = torch.cat([top, torch.cat([cross.transpose(1, 2), hessian], 2)], 1)
        gradient = torch.cat([torch.einsum("btms,btm->bs", shape, r), gradient], 1)
        return hessian, gradient


def _square_root(hessian: torch.Tensor, gradient: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(r', J') with J'^T J' = ``hessian`` and J'^T r' = ``gradient``: J' = L^T for H = L L^T.

    ``levenberg_marquardt`` forms its normal equations from the Jacobian it is given; handing it
    this P x P factor instead of the sparse (M, P) Jacobian keeps its damping, steps and stopping
    rules while the structured J^T J costs per frame, not per window squared.
    """
    scale = hessian.diagonal(dim1=1, dim2=2).amax(1).clamp_min(1e-30)
    eye = torch.eye(hessian.shape[-1], dtype=hessian.dtype)
    chol, info = torch.linalg.cholesky_ex(hessian)
    if bool((info != 0).any()):  # semi-definite (a direction nothing constrains): a whisker of ridge
        chol = torch.linalg.cholesky(hessian + 1e-12 * scale[:, None, None] * eye)
    root = torch.linalg.solve_triangular(chol, gradient[..., None], upper=False)[..., 0]
    return root, chol.transpose(1, 2)

class OneEuroFilter:
    """The one-euro filter (Casiez, Roussel, Vogel, CHI 2012) on arrays, one value per call.

    A first-order low-pass whose cutoff rises with the signal's speed: cutoff = ``min_cutoff_hz``
    + ``beta`` |dx/dt| (dx/dt itself low-passed at ``d_cutoff_hz``), so slow motion is smoothed
    and fast motion followed. ``rate_hz``: samples per second.
    """

    def __init__(self, rate_hz: float, min_cutoff_hz: float = 1.0, beta: float = 0.0, d_cutoff_hz: float = 1.0):
        if not (rate_hz > 0 and min_cutoff_hz > 0 and d_cutoff_hz > 0 and beta >= 0):
            raise ValueError(f"one-euro: rate, cutoffs > 0 and beta >= 0, got {rate_hz}, {min_cutoff_hz}, "
                             f"{d_cutoff_hz}, {beta}")
        self.rate, self.min_cutoff, self.beta, self.d_cutoff = float(rate_hz), min_cutoff_hz, beta, d_cutoff_hz
        self.value = self.speed = None

    def _alpha(self, cutoff):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * self.rate)

    def __call__(self, value) -> np.ndarray:
        value = np.asarray(value, np.float64)
        if self.value is None:
            self.value, self.speed = value.copy(), np.zeros_like(value)
            return value.copy()
        speed = (value - self.value) * self.rate
        a = self._alpha(self.d_cutoff)
        self.speed = a * speed + (1 - a) * self.speed
        a = self._alpha(self.min_cutoff + self.beta * np.abs(self.speed))
        self.value = a * value + (1 - a) * self.value
        return self.value.copy()


class OnlineSmoother:
    """Online mode for one track: per-frame packed parameters in, smoothed ones out, causally.

    Frame parameters z = (rotation, t, log s, pose) are divided by the velocity prior's sigmas
    (so ``beta`` is in Hz per typical speed, whatever the unit) and one-euro filtered; the
    rotation is first unwrapped next to the previous output; the shape is the running mean.
    """

    def __init__(self, settings: TemporalSettings, fps: float, num_betas: int, num_pose: int):
        self.settings, self.fps, self.nb, self.num_pose = settings, float(fps), num_betas, num_pose
        self.layout = VectorLayout(num_betas, log_scale=True)        # the packed parameters (``Fit2D``'s)
        self.frame_layout = VectorLayout(0, log_scale=True)          # z: the same without the shape
        self.filter = OneEuroFilter(fps, settings.min_cutoff_hz, settings.beta, settings.d_cutoff_hz)
        self.unit = None
        self.betas_sum, self.count, self.last = 0.0, 0, None

    def __call__(self, params: np.ndarray) -> np.ndarray:
        """(P,) packed ``Fit2D`` parameters of this frame -> (P,) smoothed."""
        params = np.asarray(params, np.float64)
        z, rotation = self.layout.without_betas(params), self.frame_layout.rotation
        if self.unit is None:
            inv_v, _ = prior_scales(self.settings, self.fps, float(np.exp(z[self.frame_layout.scale])), self.num_pose)
            self.unit = inv_v / self.fps                       # 1 / sigma_v: z in typical speeds x seconds
        if self.last is not None:
            z[rotation] = continuous_rotations(np.stack([self.last[rotation], z[rotation]]))[1]
        smoothed = self.filter(z * self.unit) / self.unit
        self.last = smoothed
        self.betas_sum, self.count = self.betas_sum + params[self.layout.betas], self.count + 1
        betas = self.betas_sum / self.count
        return self.layout.with_betas(smoothed, betas)
