"""The camera-space hand under full perspective: its rotation, translation and pose refitted to its 2D keypoints.

The network (and its 2D-fit refinement) explains a hand by a weak-perspective camera: one scale for
the whole hand. ``hand.camera_space.place_hand`` turns that scale into a translation and refits the
translation under the photo's pinhole camera, the pose fixed; a hand with depth then reprojects
several pixels off its own ``keypoints_2d``, because perspective enlarges the near fingers and shrinks
the far ones. This fit removes that: under the photo's intrinsics K it minimises

    E(w, T, q) = sum_i |Pi_K(exp(w) R0 (J_i(beta, q) - J_root) + T) - x_i|^2          (pixels^2)
                 + |w|^2 / sigma_rotation^2 + |D (q - q0)|^2 / sigma_pose^2

over the global rotation (a left increment w on the weak-perspective rotation R0), the translation T
(started at ``place_hand``'s) and the pose q, the shape beta fixed, to the hand's own ``keypoints_2d``
x (kept as they are: the output's 2D estimate). The prior keeps the rotation and the pose near the
weak-perspective solution (q0). Pose spaces as ``fit.fit2d``'s: "pca" (the hand model's PCA
coefficients, D = I) or "full" (the 45 finger axis-angles relative to the model's mean pose, D = I
per radian: a weak, isotropic pull). The minimiser is ``fit.lm.levenberg_marquardt`` with analytic
Jacobians from ``hand.keypoint_model.KeypointModel``.

Left hands: the parameters are those of the mirrored right hand the network saw. Mirroring the
camera frame (x -> -x) mirrors the pixels about the principal point (u -> 2 cx - u) exactly, so a left
hand is fitted as that right hand against its mirrored keypoints, and the result mirrored back.

Videos: a track's frames are fitted in order, each hand started from its weak-perspective solution
corrected as the track's previous frame was (``carried_correction``: rotation increment, translation
offset, pose offset), in ``warm_iterations``; perspective distorts a hand nearly alike in consecutive
frames, so the fit starts near its solution and the track stays on one solution.

Owns ``PerspectiveSettings`` (the profile's ``[camera_fit]``), ``PerspectiveFit`` (the energy and its
Jacobian, batched), ``fit_camera_space`` (one batch of hands: parameters in, fitted parameters and the
posed, placed mesh out), ``place_results`` (the camera-frame fields of ``predict.HandResult``s:
weak-perspective start, translation fit, then this fit) and ``carried_correction`` (a video frame's
warm start for the next).
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from wildhands.config import TableSettings
from wildhands.fit.fit2d import POSE_SPACES
from wildhands.fit.lm import levenberg_marquardt
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import axis_angle_to_matrix, matrix_to_axis_angle, rotation_matrices
from wildhands.hand.camera_space import (MIN_DEPTH_M, Intrinsics, image_pixels_per_metre, pinhole_translation,
                                         place_hand, reprojection_rms_px)
from wildhands.hand.keypoint_model import KeypointModel, so3_left_jacobian

MODES = ("pose", "translation", "none")   # what place_results fits under perspective
MIRROR_X = np.diag([-1.0, 1.0, 1.0])


@dataclass(frozen=True)
class PerspectiveSettings(TableSettings):
    """A profile's ``[camera_fit]`` table (``from_config``; units and sources in the profile): the fit's
    prior and search. ``pose_space`` "pca" or "full" (hands whose pose is 45-D are fitted in "full"
    whatever this says); ``sigma_rotation`` (radians), ``sigma_pose`` (PCA units, or radians per finger
    axis-angle component) and ``sigma_betas`` (shape units; 0: the shape fixed) the prior's widths about
    the weak-perspective solution, against keypoint residuals in pixels; ``iterations`` and ``tolerance``
    (relative energy drop) of Levenberg-Marquardt, ``warm_iterations`` its iterations for a hand warm-started
    from its video track's previous frame (``fit_camera_space`` ``carry``)."""
    TABLE = "camera_fit"
    pose_space: str
    sigma_rotation: float
    sigma_pose: float
    sigma_betas: float
    iterations: int
    warm_iterations: int
    tolerance: float

    def __post_init__(self):
        if self.pose_space not in POSE_SPACES:
            raise ValueError(f"[camera_fit] pose_space: expected one of {', '.join(POSE_SPACES)}, "
                             f"got {self.pose_space!r}")
        if not (self.sigma_rotation > 0 and self.sigma_pose > 0 and self.sigma_betas >= 0 and self.iterations >= 1
                and self.warm_iterations >= 1 and self.tolerance >= 0):
            raise ValueError("[camera_fit]: sigma_rotation and sigma_pose must be > 0, sigma_betas and tolerance "
                             f">= 0, iterations and warm_iterations >= 1; got {self}")


class PerspectiveFit:
    """The energy above for a hand model, in ``pose_space``; build once, ``fit`` batches of hands.

    Packed parameters x (B, 6 + n): the rotation increment w (3), the translation T (3, metres) and
    the pose (n: PCA coefficients, or 45 axis-angle offsets from the mean pose)."""

    def __init__(self, hand_model, pose_space: str = "full", fit_betas: bool = False,
                 dtype: torch.dtype = torch.float64):
        if pose_space not in POSE_SPACES:
            raise ValueError(f"pose_space: expected one of {', '.join(POSE_SPACES)}, got {pose_space!r}")
        self.model = KeypointModel(hand_model, dtype)
        self.pose_space, self.dtype, self.fit_betas = pose_space, dtype, fit_betas
        self.num_pose = self.model.num_pca_comps if pose_space == "pca" else 45
        self.directions = (self.model.components if pose_space == "pca"
                           else torch.eye(45, dtype=dtype))                               # (n, 45)

    def finger_pose(self, pose: torch.Tensor) -> torch.Tensor:
        """(B, n) fitted pose -> (B, 45) absolute finger axis-angles."""
        return pose @ self.directions + self.model.pose_mean

    def _hand(self, x, rot0, betas, with_jacobian: bool):
        """Camera-frame keypoints R (J - J_root) + T (B, 21, 3) and, with ``with_jacobian``, their
        derivatives (B, 21, 3, P)."""
        w, trans, pose = x[:, :3], x[:, 3:6], x[:, 6:6 + self.num_pose]
        if self.fit_betas:
            betas = x[:, 6 + self.num_pose:]
        rotation = axis_angle_to_matrix(w) @ rot0
        finger_pose = self.finger_pose(pose)
        if not with_jacobian:
            joints = self.model.keypoints(betas, finger_pose)
            rel = joints - joints[:, kp.ROOT:kp.ROOT + 1]
            return torch.einsum("bij,bkj->bki", rotation, rel) + trans[:, None], None
        joints, dbeta, dpose = self.model.keypoints_and_jacobians(betas, finger_pose, self.directions)
        rel, dpose = joints - joints[:, kp.ROOT:kp.ROOT + 1], dpose - dpose[:, kp.ROOT:kp.ROOT + 1]
        turned = torch.einsum("bij,bkj->bki", rotation, rel)                               # (B, 21, 3)
        jac = x.new_zeros(*turned.shape, x.shape[1])
        # d(exp(w) R0 X) / d w_m = (Jl(w) e_m) x (exp(w) R0 X)
        axes = so3_left_jacobian(w).transpose(1, 2)                                         # (B, 3 m, 3)
        jac[..., :3] = torch.linalg.cross(axes[:, None].expand(-1, turned.shape[1], -1, -1),
                                          turned[:, :, None].expand(-1, -1, 3, -1)).transpose(-1, -2)
        jac[..., 3:6] = torch.eye(3, dtype=x.dtype, device=x.device)
        jac[..., 6:6 + self.num_pose] = torch.einsum("bij,bkjn->bkin", rotation, dpose)
        if self.fit_betas:
            dbeta = dbeta - dbeta[:, kp.ROOT:kp.ROOT + 1]
            jac[..., 6 + self.num_pose:] = torch.einsum("bij,bkjn->bkin", rotation, dbeta)
        return turned + trans[:, None], jac

    @staticmethod
    def _project(points, camera):
        """Pixels (B, 21, 2) of camera-frame points under ``camera`` (B, 4) = fx, fy, cx, cy."""
        depth = points[..., 2:3].clamp_min(MIN_DEPTH_M / 2)
        return points[..., :2] / depth * camera[:, None, :2] + camera[:, None, 2:]

    def residuals(self, x, targets, sqrt_weights, rot0, betas, centre, camera, prior):
        """(B, 42 + 3 + n [+ S]): weighted pixel residuals, then the priors on the rotation increment
        and on the pose [and betas] about ``centre`` (B, n [+ S]), ``prior`` (B, 3 + n [+ S]) their
        inverse sigmas."""
        points, _ = self._hand(x, rot0, betas, False)
        pixels = (sqrt_weights[..., None] * (self._project(points, camera) - targets)).flatten(1)
        return torch.cat([pixels, x[:, :3] * prior[:, :3], (x[:, 6:] - centre) * prior[:, 3:]], 1)

    def residuals_and_jacobian(self, x, targets, sqrt_weights, rot0, betas, centre, camera, prior):
        points, jac = self._hand(x, rot0, betas, True)
        depth = points[..., 2].clamp_min(MIN_DEPTH_M / 2)                                   # (B, 21)
        focal = camera[:, None, :2]
        pixels = (sqrt_weights[..., None] * (self._project(points, camera) - targets)).flatten(1)
        # d(f X / Z) = f / Z dX - f X / Z^2 dZ
        d_proj = (jac[..., :2, :] - (points[..., :2] / depth[..., None])[..., None] * jac[..., 2:3, :]) \
            * (focal / depth[..., None])[..., None]
        d_proj = (sqrt_weights[..., None, None] * d_proj).flatten(1, 2)                     # (B, 42, P)
        num = x.shape[1]
        d_prior = x.new_zeros(x.shape[0], num - 3, num)
        d_prior[:, :3, :3] = torch.diag_embed(prior[:, :3])
        d_prior[:, 3:, 6:] = torch.diag_embed(prior[:, 3:])
        residual = torch.cat([pixels, x[:, :3] * prior[:, :3], (x[:, 6:] - centre) * prior[:, 3:]], 1)
        return residual, torch.cat([d_proj, d_prior], 1)

    @torch.no_grad()
    def fit(self, keypoints_2d, rotation, translation, betas, pose, intrinsics: Intrinsics,
            settings: PerspectiveSettings, weights=None, start=None):
        """Fit B hands seen by one camera: ``keypoints_2d`` (B, 21, 2) image pixels (the hands already
        as right hands: a left hand's mirrored about cx), ``rotation`` (B, 3, 3) and ``pose`` (B, n)
        the weak-perspective solution (the prior's centre, and the start), ``translation`` (B, 3) the
        start, ``betas`` (B, S) fixed. ``start`` (B, 6 + n) replaces the start (packed as the fit's
        parameters: rotation increment, translation, pose) where its rows are finite: a warm start,
        e.g. the previous video frame's solution. Returns (rotation (B, 3, 3), translation (B, 3), pose
        (B, n), betas (B, S: ``betas`` unless fitted), camera-frame keypoints (B, 21, 3), iterations (B,))."""
        t = lambda v: torch.as_tensor(np.asarray(v, np.float64), dtype=self.dtype)  # noqa: E731
        targets, rot0, trans0, betas, pose0 = (t(v) for v in (keypoints_2d, rotation, translation, betas, pose))
        batch = targets.shape[0]
        if pose0.shape != (batch, self.num_pose):
            raise ValueError(f"pose: expected ({batch}, {self.num_pose}) for the {self.pose_space} pose space, "
                             f"got {tuple(pose0.shape)}")
        w = torch.ones(batch, kp.NUM_KEYPOINTS, dtype=self.dtype) if weights is None else t(weights)
        w = torch.where(torch.isfinite(targets).all(-1), w, torch.zeros_like(w))
        targets = torch.nan_to_num(targets)
        camera = t([[intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy]]).expand(batch, 4)
        inverse_sigmas = [1.0 / settings.sigma_rotation] * 3 + [1.0 / settings.sigma_pose] * self.num_pose
        centre = pose0
        if self.fit_betas:
            if not settings.sigma_betas > 0:
                raise ValueError("sigma_betas: expected > 0 for a fit of the betas")
            inverse_sigmas += [1.0 / settings.sigma_betas] * betas.shape[1]
            centre = torch.cat([pose0, betas], 1)
        prior = t([inverse_sigmas]).expand(batch, -1)
        x0 = torch.cat([torch.zeros(batch, 3, dtype=self.dtype), trans0, centre], 1)
        if start is not None:
            start = t(start)
            if start.shape != (batch, 6 + self.num_pose):
                raise ValueError(f"start: expected ({batch}, {6 + self.num_pose}) (rotation increment, translation, "
                                 f"{self.pose_space} pose), got {tuple(start.shape)}")
            warm = torch.isfinite(start).all(1)
            x0[warm, :6 + self.num_pose] = start[warm]
        state = levenberg_marquardt(self.residuals, x0, (targets, w.sqrt(), rot0, betas, centre, camera, prior),
                                    jacobian_fn=self.residuals_and_jacobian, iterations=settings.iterations,
                                    ftol=settings.tolerance)
        x = state.x
        points, _ = self._hand(x, rot0, betas, False)
        fitted_betas = x[:, 6 + self.num_pose:] if self.fit_betas else betas
        return (axis_angle_to_matrix(x[:, :3]) @ rot0, x[:, 3:6], x[:, 6:6 + self.num_pose], fitted_betas, points,
                state.iterations)


# ----------------------------------------------------------------------------- the mesh

_MESH_CACHE: dict = {}


def _mesh_arrays(hand_model) -> dict:
    """The hand model's skinning arrays in float64 (cached per model)."""
    key = id(hand_model.mano)
    if key not in _MESH_CACHE:
        mano = hand_model.mano
        d = lambda v: v.detach().cpu().double()  # noqa: E731
        _MESH_CACHE[key] = {"v_template": d(mano.v_template), "shapedirs": d(mano.shapedirs),
                            "posedirs": d(mano.posedirs), "J_regressor": d(mano.J_regressor),
                            "parents": mano.parents.cpu(), "lbs_weights": d(mano.lbs_weights),
                            "tips": hand_model.tip_index.cpu(), "openpose": torch.as_tensor(kp.MANO_TO_OPENPOSE)}
    return _MESH_CACHE[key]


def posed_mesh(hand_model, betas, finger_pose) -> tuple[torch.Tensor, torch.Tensor]:
    """(vertices (B, V, 3), keypoints (B, 21, 3)) in the model frame (no global rotation), float64,
    from absolute finger axis-angles (B, 45): the hand model's own skinning (``smplx.lbs``)."""
    from smplx.lbs import lbs

    arrays = _mesh_arrays(hand_model)
    betas = torch.as_tensor(betas, dtype=torch.float64)
    finger_pose = torch.as_tensor(finger_pose, dtype=torch.float64)
    full_pose = torch.cat([finger_pose.new_zeros(finger_pose.shape[0], 3), finger_pose], 1)
    vertices, joints = lbs(betas, full_pose, arrays["v_template"], arrays["shapedirs"][..., :betas.shape[1]],
                           arrays["posedirs"], arrays["J_regressor"], arrays["parents"], arrays["lbs_weights"])
    keypoints = torch.cat([joints, vertices.index_select(1, arrays["tips"])], 1).index_select(1, arrays["openpose"])
    return vertices, keypoints


# ----------------------------------------------------------------------------- hands of a photo

_FITS: dict = {}


def _perspective_fit(hand_model, pose_space: str, fit_betas: bool) -> PerspectiveFit:
    key = (id(hand_model.mano), pose_space, fit_betas)
    if key not in _FITS:
        _FITS[key] = PerspectiveFit(hand_model, pose_space, fit_betas)
    return _FITS[key]


def fit_camera_space(hand_model, params: list[dict], keypoints_2d, start_translations, mirrored, intrinsics: Intrinsics,
                     settings: PerspectiveSettings, carry: list | None = None) -> list[dict]:
    """The perspective fit of hands of one photo, from their weak-perspective parameters.

    ``params``: per hand ``HandResult.params`` (``global_orient``, ``betas``, ``pose``, ``pose_space``;
    those of the right hand the network saw), ``keypoints_2d`` (B, 21, 2) image pixels, ``start_translations``
    (B, 3) metres in the camera frame, ``mirrored`` (B,) left hands. Returns per hand
    ``camera_space_fit`` (the fitted ``global_orient``, ``pose``, ``pose_space``, ``betas``: the rig of
    ``export_gltf``), ``translation_m``, ``joints_3d_camera`` and ``vertices_camera`` (camera frame, x
    mirrored back for a left hand). ``carry``: per hand None or a ``carried_correction`` (the previous
    video frame's): the fit then starts from this hand's weak-perspective solution corrected as that
    frame's was, so that a smooth track needs few iterations and stays on the same solution."""
    carry = [None] * len(params) if carry is None else list(carry)
    if len(carry) != len(params):
        raise ValueError(f"carry: expected one entry (or None) per hand ({len(params)}), got {len(carry)}")
    out = [None] * len(params)
    keypoints_2d = np.asarray(keypoints_2d, np.float64)
    starts = np.asarray(start_translations, np.float64)
    mirrored = np.asarray(mirrored, bool)
    spaces = [("full" if p.get("pose_space", "pca") == "full" or settings.pose_space == "full" else "pca")
              for p in params]
    warm = [c is not None and c["pose_space"] == s for c, s in zip(carry, spaces)]
    for space, warmed in itertools.product(POSE_SPACES, (False, True)):
        index = [i for i, s in enumerate(spaces) if s == space and warm[i] == warmed]
        if not index:
            continue
        fit = _perspective_fit(hand_model, space, settings.sigma_betas > 0)
        started = time.process_time()
        pose0 = np.stack([_pose_in(fit, params[i], hand_model) for i in index])
        rot0 = np.stack([rotation_matrices(np.asarray(params[i]["global_orient"], np.float64)) for i in index])
        betas = np.stack([np.asarray(params[i]["betas"], np.float64).reshape(-1) for i in index])
        flip = mirrored[index]
        targets = keypoints_2d[index].copy()
        targets[flip, :, 0] = 2 * intrinsics.cx - targets[flip, :, 0]
        trans0 = starts[index] * np.where(flip[:, None], [-1.0, 1.0, 1.0], 1.0)
        start = None
        if warmed:      # the weak-perspective solution corrected as the track's previous frame was
            start = np.stack([np.concatenate([carry[i]["rotation_increment"], trans0[row] + np.asarray(
                carry[i]["translation_offset_m"], np.float64) * ([-1.0, 1.0, 1.0] if flip[row] else 1.0),
                pose0[row] + carry[i]["pose_offset"]]) for row, i in enumerate(index)])
        rotation, trans, pose, betas, _, iterations = fit.fit(
            targets, rot0, trans0, betas, pose0, intrinsics,
            replace(settings, iterations=settings.warm_iterations) if warmed else settings, start=start)
        vertices, keys = posed_mesh(hand_model, betas, fit.finger_pose(pose))
        root = keys[:, kp.ROOT:kp.ROOT + 1]
        seconds = (time.process_time() - started) / len(index)      # CPU time: what the fit costs, not the wait
        for row, i in enumerate(index):
            m = MIRROR_X if flip[row] else np.eye(3)
            turn = rotation[row].numpy()
            place = trans[row].numpy()
            joints = ((keys[row] - root[row]).numpy() @ turn.T + place) @ m
            mesh = ((vertices[row] - root[row]).numpy() @ turn.T + place) @ m
            out[i] = {"translation_m": place @ m, "joints_3d_camera": joints, "vertices_camera": mesh,
                      "camera_space_fit": {
                          "global_orient": matrix_to_axis_angle(rotation[row]).numpy(),
                          "pose": pose[row].numpy(), "pose_space": space, "betas": betas[row].numpy(),
                          "iterations": int(iterations[row]), "cpu_seconds": seconds,
                          "warm_start": warmed,
                          "sigma_rotation_rad": settings.sigma_rotation,
                          "sigma_pose": settings.sigma_pose,
                          "note": ("perspective fit of keypoints_2d under camera_intrinsics: rotation, translation "
                                   "and pose (shape fixed), near the weak-perspective solution; parameters of the "
                                   "(mirrored, for left hands) right hand, as params; pose: "
                                   + ("45 finger axis-angles relative to the model's mean pose" if space == "full"
                                      else f"{fit.num_pose} PCA coefficients of the hand model"))}}
    return out


def _pose_in(fit: PerspectiveFit, params: dict, hand_model) -> np.ndarray:
    """A hand's pose (``params``) in the fit's pose space."""
    pose = np.asarray(params["pose"], np.float64).reshape(-1)
    if fit.pose_space == "pca" or params.get("pose_space", "pca") == "full":
        return pose
    return pose @ fit.model.components.numpy()                  # PCA -> axis-angle offsets from the mean


def carried_correction(hand_model, result) -> dict | None:
    """What the perspective fit changed in a placed ``predict.HandResult`` (None where it did not run):
    its rotation increment on the weak-perspective rotation (axis-angle, the mirrored right hand's), its
    translation's offset from the pose-fixed translation (metres, camera frame) and its pose's offset
    from the weak-perspective pose (in the fit's pose space). Carried to the next frame of a video
    track (``fit_camera_space`` ``carry``), where perspective distorts the hand nearly as it did here."""
    fitted = result.extras.get("camera_space_fit")
    if fitted is None or "translation_pose_fixed_m" not in result.extras:
        return None
    turn = rotation_matrices(np.asarray(fitted["global_orient"], np.float64)) \
        @ rotation_matrices(np.asarray(result.params["global_orient"], np.float64)).T
    space = fitted["pose_space"]
    pose0 = _pose_in(_perspective_fit(hand_model, space, False), result.params, hand_model)
    return {"rotation_increment": matrix_to_axis_angle(torch.as_tensor(turn)[None])[0].numpy(),
            "translation_offset_m": np.asarray(result.extras["translation_m"], np.float64)
            - np.asarray(result.extras["translation_pose_fixed_m"], np.float64),
            "pose_offset": np.asarray(fitted["pose"], np.float64) - pose0, "pose_space": space}


def place_results(results, intrinsics: Intrinsics, hand_model, mode: str, settings: PerspectiveSettings,
                  carry: list | None = None) -> None:
    """The camera-frame fields of ``predict.HandResult``s (one shared camera), in their JSON extras.

    ``mode``: "pose" (the weak-perspective start, the translation fit, then this fit of rotation,
    translation and pose), "translation" (``camera_space.place_hand``: the translation alone, the pose
    fixed) or "none" (the weak-perspective placement alone); ``settings`` the fit's (``[camera_fit]``);
    ``carry`` as ``fit_camera_space``'s (video tracks). The root-relative fields, ``keypoints_2d`` and
    the weak-perspective camera are left as they are. A hand the refinement already fitted under these
    intrinsics (``camera_space.pinhole_translation``) is placed exactly, without a fit: its
    ``keypoints_2d`` are its perspective projection."""
    if mode not in MODES:
        raise ValueError(f"camera fit: expected one of {', '.join(MODES)}, got {mode!r}")
    if not results:
        return
    exact = [pinhole_translation(r.camera, r.crop, intrinsics) for r in results]
    placed = [place_hand(r.joints_3d, r.vertices, r.keypoints_2d, image_pixels_per_metre(r.camera, r.crop),
                         intrinsics, refine=mode != "none" and start is None, start=start)
              for r, start in zip(results, exact)]
    for p, start in zip(placed, exact):
        if start is not None:
            p["translation_method"] = "the refinement's pinhole camera (camera.pinhole_project): exact"
    fit_index = [i for i, start in enumerate(exact) if start is None]
    if mode == "pose" and fit_index:
        fitted = fit_camera_space(hand_model, [results[i].params for i in fit_index],
                                  [results[i].keypoints_2d for i in fit_index],
                                  [placed[i]["translation_m"] for i in fit_index],
                                  [results[i].crop.mirrored for i in fit_index], intrinsics, settings,
                                  None if carry is None else [carry[i] for i in fit_index])
        for i, f in zip(fit_index, fitted):
            p, r = placed[i], results[i]
            p["translation_pose_fixed_m"] = p["translation_m"]
            p.update(f)
            p["translation_method"] = "perspective fit of keypoints_2d: rotation, translation and pose"
            p["keypoints_2d_camera"] = intrinsics.project(p["joints_3d_camera"])
            p["reprojection_rms_px"] = reprojection_rms_px(p["keypoints_2d_camera"], r.keypoints_2d)
    if mode == "pose":
        for p, r, start in zip(placed, results, exact):
            if start is not None:
                p["translation_pose_fixed_m"] = p["translation_m"]
                p["camera_space_fit"] = {
                    **{key: r.params[key] for key in ("global_orient", "betas", "pose")},
                    "pose_space": r.params.get("pose_space", "pca"), "iterations": 0, "cpu_seconds": 0.0,
                    "warm_start": False,
                    "note": "the refinement fitted this hand under camera_intrinsics: its parameters (params) place "
                            "it exactly, without a further fit"}
    for p, r in zip(placed, results):
        r.extras.update(p)
