"""The open hand model's file: every part built in order and stored in MANO's pickle format.

Corrective pose blend shapes (``posedirs``) are zero. The file's ``pose_prior`` (a dict of numpy
arrays, MANO joints 1-15 in order): ``joint_names``; ``rest_directions``, ``flexion_directions``,
``abduction_directions`` (15, 3): each joint's bone direction at rest and where positive flexion /
abduction move it (``JointFrames``); ``flexion_axes``, ``abduction_axes`` (15, 3);
``flexion_range_deg``, ``abduction_range_deg`` (15, 2); ``axis_angle_limits`` (45, 2) radians,
the corpus' extent per axis-angle component plus 5 degrees (a box for full-pose fitting);
``pca_scale``, ``pca_std`` (45,); ``named_poses`` (name -> (45,) axis-angle);
``corpus_coefficients`` (2000, 10), corpus poses as PCA coefficients, for drawing realistic
poses. ``kinematics.joint_angles`` reads flexion and abduction back from a pose.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from wildhands.fileio import write_pickle
from wildhands.hand import keypoints as kp
from wildhands.hand.open_hand.anatomy import rest_skeleton
from wildhands.hand.open_hand.kinematics import JointFrames, angles_to_pose, joint_ranges
from wildhands.hand.open_hand.mesh import build_mesh
from wildhands.hand.open_hand.pose_pca import (CORPUS_SAMPLE_STORED, NUM_PCA_CHECK, axis_angle_limits, corpus_ranges,
                                               mixed_pose_corpus, pose_space, synthetic_pose_corpus)
from wildhands.hand.open_hand.shape_pca import shape_space
from wildhands.hand.open_hand.skinning import joint_regressor, palm_centre_vertices, skinning_weights
from wildhands.paths import OPEN_HAND_PATH

MODEL_VERSION = "3.0"


def _snap_round_off(values: np.ndarray) -> np.ndarray:
    """``values`` with entries that are zero up to round-off (|x| < 1e-12) set to an exact 0.0.

    Structural zeros (e.g. the pose components of hinge twists) come out of the SVD as +-1e-16
    whose sign depends on the BLAS thread count; the model's hash would depend on it too."""
    values = np.asarray(values, np.float64)
    return np.where(np.abs(values) < 1e-12, 0.0, values)


def _pose_space_entries(corpus: np.ndarray, frames: JointFrames, seed: int, real: bool = False) -> tuple[dict, dict]:
    """The model file's entries that derive from the pose corpus: top-level and ``pose_prior``'s.
    A corpus with real poses (``real``) sets the scale of its components within its own ranges."""
    space = pose_space(corpus, frames, seed=seed, ranges=corpus_ranges(corpus, frames) if real else None)
    top = {"hands_components": _snap_round_off(space["hands_components"]),
           "hands_mean": _snap_round_off(space["hands_mean"])}
    prior = {"axis_angle_limits": axis_angle_limits(corpus), "pca_scale": float(space["scale"]),
             "pca_std": space["std"],
             # A sample of the corpus as PCA coefficients (first 10), for drawing realistic poses.
             "corpus_coefficients": space["coefficients"][:CORPUS_SAMPLE_STORED, :NUM_PCA_CHECK].astype(np.float32)}
    return top, prior


def replace_pose_space(arrays: dict, real_poses: np.ndarray, synthetic_share: float = 0.0, seed: int = 0) -> dict:
    """A copy of the open hand model's ``arrays`` whose pose space is learnt from ``real_poses``
    (as ``build_open_hand_model(real_poses=...)`` would build it, without rebuilding the mesh)."""
    corpus, frames, _ = synthetic_pose_corpus(seed)
    corpus = mixed_pose_corpus(corpus, real_poses, synthetic_share, seed)
    top, prior = _pose_space_entries(corpus, frames, seed, real=True)
    pose_prior = {**arrays["pose_prior"], **prior, "pose_source": _pose_source(len(real_poses), synthetic_share)}
    return {**arrays, **top, "pose_prior": pose_prior}


def _pose_source(real_count: int, synthetic_share: float) -> str:
    return f"{real_count} real poses (45-D fits), synthetic share {synthetic_share:g}"


def build_open_hand_model(seed: int = 0, verbose: bool = False, real_poses: np.ndarray | None = None,
                          synthetic_share: float = 0.0) -> dict:
    """The open hand model's arrays with MANO's keys, plus ``fingertip_vertex_ids``,
    ``palm_vertex_ids`` / ``palm_vertex_weights``, ``pose_prior``, ``model_name`` and
    ``model_version``. Deterministic for a given ``seed`` (and ``real_poses``).

    ``real_poses`` (N, 45): absolute finger axis-angles of real hands (e.g.
    ``real_pose_space.real_pose_corpus``, the 45-D fits of captured poses); the pose space is then
    learnt from them, mixed with the synthetic corpus at ``synthetic_share``, instead of from the
    synthetic corpus alone (the default, and the shipped model)."""
    started = time.perf_counter()

    def log(step: str) -> None:
        if verbose:
            print(f"  {step}: {time.perf_counter() - started:.1f} s")

    skeleton = rest_skeleton()
    verts, faces, tip_ids = build_mesh(skeleton)
    log(f"mesh ({len(verts)} vertices, {len(faces)} faces)")
    weights = skinning_weights(verts, skeleton)
    regressor = joint_regressor(verts, skeleton)
    palm_ids, palm_weights = palm_centre_vertices(verts, skeleton)
    shapedirs, _ = shape_space(verts, weights, skeleton, seed=seed)
    log("skinning, regressor, shape space")
    corpus, frames, named = synthetic_pose_corpus(seed, skeleton)
    if real_poses is not None:
        corpus = mixed_pose_corpus(corpus, real_poses, synthetic_share, seed)
    pose_entries, prior_entries = _pose_space_entries(corpus, frames, seed, real=real_poses is not None)
    log("pose space")
    flexion, abduction = joint_ranges()
    kintree = np.array([[4294967295] + list(kp.MANO_PARENTS[1:]), list(range(16))], dtype=np.int64)
    return {
        "v_template": _snap_round_off(verts), "f": faces.astype(np.uint32), "weights": _snap_round_off(weights),
        "J_regressor": _snap_round_off(regressor), "J": _snap_round_off(skeleton.joints), "kintree_table": kintree,
        "shapedirs": _snap_round_off(shapedirs),
        "posedirs": np.zeros((len(verts), 3, 135), np.float16),        # no corrective pose blend shapes
        **pose_entries,
        "fingertip_vertex_ids": tip_ids.astype(np.int64),
        "palm_vertex_ids": palm_ids.astype(np.int64), "palm_vertex_weights": palm_weights,
        "model_name": "open_hand", "model_version": MODEL_VERSION,
        "pose_prior": {
            "joint_names": list(kp.MANO_JOINT_NAMES[1:]),
            "rest_directions": frames.direction, "flexion_directions": frames.flexion,
            "abduction_directions": frames.abduction,
            "flexion_axes": frames.flexion_axes, "abduction_axes": frames.abduction_axes,
            "flexion_range_deg": flexion, "abduction_range_deg": abduction,
            "named_poses": {name: angles_to_pose(angles, frames) for name, angles in named.items()},
            **prior_entries,
            **({"pose_source": _pose_source(len(real_poses), synthetic_share)} if real_poses is not None else {}),
        },
    }


def save_open_hand_model(path=None, seed: int = 0, real_poses: np.ndarray | None = None,
                         synthetic_share: float = 0.0) -> Path:
    """Build the open hand model and write it in MANO's pickle format to ``path``
    (default ``wildhands.paths.OPEN_HAND_PATH``); ``real_poses``, ``synthetic_share`` as
    ``build_open_hand_model``'s."""
    return write_pickle(Path(path) if path is not None else OPEN_HAND_PATH,
                        build_open_hand_model(seed, real_poses=real_poses, synthetic_share=synthetic_share))


# The file's arrays that come from the pose corpus; the rest come from the skeleton and the seed.
POSE_SPACE_KEYS = ("hands_components", "hands_mean")
BUILT_KEYS = ("f", "v_template", "weights", "J_regressor", "J", "shapedirs", "fingertip_vertex_ids")


def build_differences(arrays: dict, seed: int = 0) -> list[str]:
    """The keys of a stored open hand model's ``arrays`` that the builder no longer reproduces
    (within 1e-7). A pose space learnt from real poses (``pose_prior["pose_source"]``) needs
    DexYCB and minutes of fitting to rebuild (``build-hand-model --real-poses``): then only the
    rest of the file is compared."""
    built = build_open_hand_model(seed)
    keys = BUILT_KEYS + (() if "pose_source" in arrays.get("pose_prior", {}) else POSE_SPACE_KEYS)
    differ = [key for key in keys if np.shape(built[key]) != np.shape(arrays[key])
              or not np.allclose(np.asarray(built[key], np.float64), np.asarray(arrays[key], np.float64), atol=1e-7)]
    return differ + ([] if built["model_version"] == arrays.get("model_version") else ["model_version"])
