"""How well a hand model expresses real captured poses, and a pose space learnt from them.

Real poses (``datasets.real_poses``, DexYCB: Chao et al., CVPR 2021, CC BY-NC 4.0) are fitted 3D
to 3D (``fit3d.Fit3D``) in each of the pose spaces of ``FIT_SPACES``; ``fit_summary`` turns a fit
into the numbers reported (millimetres); ``app.real_pose_report`` reports them per split and space for
``benchmarks/bench_real_poses.py`` and notebook 00, with figures of the worst fits and of the mean pose.

A pose space from real hands: ``real_pose_corpus`` fits the training subjects' poses in the 45-D
space (cached), ``learn_pose_space`` rebuilds the model's pose PCA from them
(``open_hand.replace_pose_space``), and ``choose_synthetic_share`` picks how much of the synthetic
corpus to mix in, on training subjects alone.
"""
from __future__ import annotations

import numpy as np

from wildhands.data.datasets.real_poses import load_real_poses
from wildhands.fileio import atomic_path, write_pickle
from wildhands.fit.fit3d import Fit3D, Fit3DResult
from wildhands.hand import keypoints as kp
from wildhands.hand import open_hand as oh
from wildhands.hand.hand_model import HandModel, load_mano_arrays
from wildhands.paths import output_dir

# Fit3D settings per reported pose space. Data term: 2 mm expected keypoint error; the shape
# prior is the unit-variance one of the betas. "pca": the model's 10 coefficients under their
# unit prior (what the network predicts). "full": all 45 axis-angles, with the whitened prior of
# the model's pose space at 1e-3 (a weak pull towards its corpus; at 1 it holds the fit within
# the corpus' subspace) and the joint-range penalty keeping every joint within the model's range.
# "free": a diagnostic, the skeleton's floor: 45-D pose and shape all but unconstrained (no joint
# ranges; betas then reach implausible values), so what remains is where the model's keypoints
# sit on its bones, which no pose or plausible shape changes.
FIT_SPACES = {
    "pca": {"pose_space": "pca", "joint_sigma": 0.002, "alpha_beta": 1.0, "w_theta": 1.0},
    "full": {"pose_space": "full", "joint_sigma": 0.002, "alpha_beta": 1.0, "w_theta": 1e-3, "w_range": 100.0},
    "free": {"pose_space": "full", "joint_sigma": 0.002, "alpha_beta": 1e-2, "w_theta": 1e-4, "w_range": 0.0},
}
FIT_OPTIONS = {"iterations": 50, "tolerance": 1e-6}
MM = 1000.0


def fit_real_poses(hand_model: HandModel, joints: np.ndarray, space: str, chunk_size: int = 2048,
                   progress: bool = False) -> Fit3DResult:
    """Fit (N, 21, 3) root-relative joints (metres) in pose space ``space`` (a key of ``FIT_SPACES``)."""
    if space not in FIT_SPACES:
        raise ValueError(f"pose space {space!r}: expected one of {', '.join(FIT_SPACES)}")
    return Fit3D(hand_model, **FIT_SPACES[space]).fit(joints, chunk_size=chunk_size, progress=progress,
                                                      **FIT_OPTIONS)


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """(N, 20) lengths of ``keypoints.BONES`` (child order 1..20), same unit as ``joints``."""
    joints = np.asarray(joints)
    return np.stack([np.linalg.norm(joints[:, c] - joints[:, p], axis=-1) for p, c in kp.BONES], 1)


# Keypoints of the palm's rigid joints (the wrist's children in MANO's tree): the thumb's CMC and the MCPs.
PALM_BASE_KEYPOINTS = {f: kp.FINGER_KEYPOINTS[f][0] for f in kp.FINGERS}


def palm_frames(joints: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rows x, y, z of each right hand's palm frame, the open hand's rest axes: x from the
    wrist to the middle MCP, y the back of the hand (normal to the wrist-index MCP-pinky MCP plane),
    z = x cross y (towards the little finger)."""
    joints = np.asarray(joints, np.float64)
    wrist = joints[:, kp.ROOT]
    x = joints[:, PALM_BASE_KEYPOINTS["middle"]] - wrist
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    normal = np.cross(joints[:, PALM_BASE_KEYPOINTS["pinky"]] - wrist, joints[:, PALM_BASE_KEYPOINTS["index"]] - wrist)
    y = normal - (normal * x).sum(1, keepdims=True) * x
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    return np.stack([x, y, np.cross(x, y)], 1)


def real_proportions(joints: np.ndarray) -> dict:
    """The skeleton of (N, 21, 3) right hands (metres), as the open hand's anatomy stores it
    (``anatomy.PALM_JOINTS_MM``, ``anatomy.BONE_LENGTHS_MM``), in millimetres: ``palm_joints``,
    each digit's base joint (thumb CMC, finger MCP) in the palm frame (``palm_frames``), median
    over hands per coordinate; ``bone_lengths``, each digit's three bones from its base joint to
    the tip, medians over hands."""
    joints = np.asarray(joints, np.float64)
    local = np.einsum("nij,nkj->nki", palm_frames(joints), joints - joints[:, kp.ROOT:kp.ROOT + 1]) * MM
    bones = np.median(bone_lengths(joints), 0) * MM
    return {"palm_joints": {f: tuple(float(v) for v in np.median(local[:, k], 0))
                            for f, k in PALM_BASE_KEYPOINTS.items()},
            "bone_lengths": {f: tuple(float(bones[k - 1]) for k in kp.FINGER_KEYPOINTS[f][1:])
                             for f in kp.FINGERS}}


def fit_summary(result: Fit3DResult, targets: np.ndarray) -> dict:
    """JSON-ready numbers of a fit, millimetres: per hand the mean distance over the 20 keypoints
    other than the root (which is 0 by construction), its median / 90th percentile / mean over hands;
    the same over every (hand, keypoint); the median per keypoint; median bone lengths, real and fitted."""
    per_hand = result.mean_error.cpu().numpy() * MM
    per_joint = result.joint_error.cpu().numpy()[:, 1:] * MM
    fitted = result.keypoints_3d.cpu().numpy()
    real_bones, fit_bones = np.median(bone_lengths(targets), 0) * MM, np.median(bone_lengths(fitted), 0) * MM
    names = kp.KEYPOINT_NAMES
    return {
        "hands": int(len(per_hand)),
        "median_mm": float(np.median(per_hand)), "p90_mm": float(np.percentile(per_hand, 90)),
        "mean_mm": float(per_hand.mean()),
        "all_joints_median_mm": float(np.median(per_joint)), "all_joints_p90_mm": float(np.percentile(per_joint, 90)),
        "per_keypoint_median_mm": {names[k]: float(np.median(per_joint[:, k - 1])) for k in range(1, len(names))},
        "bone_length_median_mm": {names[c]: {"real": float(r), "fit": float(f)}
                                  for (_, c), r, f in zip(kp.BONES, real_bones, fit_bones)},
        "mean_iterations": float(result.iterations.float().mean()),
        "start_share": np.bincount(result.start.cpu().numpy(), minlength=2).tolist(),
        "beta_abs_max": float(result.betas.abs().max()),
        "settings": result.settings,
    }


def hand_extent(arrays: dict, finger_pose: np.ndarray) -> np.ndarray:
    """(N,) metres from the wrist joint to the farthest vertex of the mean-shape hand in (N, 45)
    absolute finger poses (185 mm flat for the open hand model; less as the fingers curl)."""
    verts = np.asarray(arrays["v_template"], np.float64)
    joints = np.asarray(arrays["J_regressor"] @ verts)
    posed_joints, posed = oh.forward(joints, np.atleast_2d(finger_pose), verts, np.asarray(arrays["weights"]))
    return np.linalg.norm(posed - posed_joints[:, :1], axis=-1).max(1)


def mean_pose_report(hand_model: HandModel, finger_poses: np.ndarray) -> dict:
    """The mean of (N, 45) absolute finger poses beside the model's own theta = 0 and the flat hand:
    hand extent (mm, ``hand_extent``) and, for the open hand model, per-digit flexion (degrees,
    summed over the digit's three joints, from the model's joint frames)."""
    arrays = load_mano_arrays(hand_model.path)
    frames = oh.JointFrames.from_pose_prior(arrays["pose_prior"]) if "pose_prior" in arrays else None
    poses = {"flat": np.zeros(45), "model_theta0": np.asarray(arrays["hands_mean"], np.float64),
             "real_mean": np.asarray(finger_poses, np.float64).mean(0)}
    digits = {f: [j - 1 for j, n in enumerate(kp.MANO_JOINT_NAMES) if n.startswith(f)] for f in kp.FINGERS}
    report = {}
    for name, pose in poses.items():
        report[name] = {"extent_mm": float(hand_extent(arrays, pose)[0] * MM)}
        if frames is not None:
            angles = oh.joint_angles(pose, frames)
            report[name]["flexion_deg"] = {d: float(angles[j, 0].sum()) for d, j in digits.items()}
    return report


# ----------------------------------------------------------------------------- a pose space from real hands

def real_pose_corpus(hand_model: HandModel, split: str = "train", path=None, limit: int | None = None,
                     cache: bool = True) -> np.ndarray:
    """(N, 45) absolute finger axis-angles of the real poses of ``split`` fitted in the "full" space.

    Deterministic for a given hand model, split and ``limit`` (evenly spaced frames); cached in
    ``outputs/cache/`` by the hand model's hash (derived from DexYCB: never committed)."""
    poses = load_real_poses(split, path).subsample(limit)
    cached = output_dir("cache") / f"real_pose_fits_{hand_model.hash[:12]}_{split}_{limit or 'all'}_{len(poses)}.npz"
    if cache and cached.is_file():
        return np.load(cached)["finger_pose"]
    finger_pose = fit_real_poses(hand_model, poses.joints, "full").finger_pose.numpy()
    if cache:
        with atomic_path(cached) as tmp, open(tmp, "wb") as f:
            np.savez(f, finger_pose=finger_pose, settings=repr(FIT_SPACES["full"]))
    return finger_pose


# Synthetic shares of the pose corpus tried when learning a pose space from real hands; the
# choice is made on training subjects alone (learn on VALIDATION_LEARN, check on the others).
SYNTHETIC_SHARES = (0.0, 0.1, 0.3)
VALIDATION_LEARN = tuple(range(1, 7))
REAL_POSE_MODEL_NAME = "OPEN_HAND_RIGHT_real_poses.pkl"


def learn_pose_space(hand_model: HandModel, finger_poses: np.ndarray, synthetic_share: float = 0.0) -> dict:
    """The hand model's arrays with the pose space learnt from (N, 45) fitted real poses
    (``open_hand.replace_pose_space``; the mesh, skinning and shape space unchanged)."""
    return oh.replace_pose_space(load_mano_arrays(hand_model.path), finger_poses, synthetic_share)


def model_with_arrays(arrays: dict, path) -> HandModel:
    """Write ``arrays`` as a MANO-format pickle at ``path`` and load it as the 10-coefficient model."""
    return HandModel(write_pickle(path, arrays), num_pca_comps=10)


def choose_synthetic_share(hand_model: HandModel, finger_poses: np.ndarray, poses, shares=SYNTHETIC_SHARES,
                           limit: int | None = 600, workdir=None) -> dict:
    """{share: 10-D fit summary}: for each share, a pose space learnt from the fits of the training
    subjects in ``VALIDATION_LEARN``, checked on the remaining training subjects' poses
    (``poses``: the 'train' split in the order of ``finger_poses``), ``limit`` frames of them."""
    import tempfile
    from pathlib import Path

    learn = np.isin(poses.subject, VALIDATION_LEARN)
    check = poses.take(~learn).subsample(limit)
    out = {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for share in shares:
            model = model_with_arrays(learn_pose_space(hand_model, finger_poses[learn], share),
                                      Path(tmp) / f"share_{share:g}.pkl")
            out[float(share)] = fit_summary(fit_real_poses(model, check.joints, "pca"), check.joints)
    return out
