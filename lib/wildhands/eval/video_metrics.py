"""Jitter of 3D joints through time: acceleration and acceleration error (HMMR, VIBE).

Owns the video metrics. As defined by Kanazawa et al. (HMMR, CVPR 2019) and computed by VIBE
(Kocabas et al., CVPR 2020, ``compute_error_accel``): the acceleration of a joint at frame t is
the second finite difference x_{t-1} - 2 x_t + x_{t+1}; the acceleration error is the mean over
frames and joints of |a_pred - a_true|, in the points' unit per frame^2 (mm/frame^2 when they
are in mm). A frame counts only when it and both neighbours are valid. Joints are compared as
given: pass root-relative joints (as VIBE does, pelvis-aligned) to measure the jitter of the
hand's articulation and rotation, camera-frame joints to include the global motion.
``video_errors`` gathers a track's accuracy (root-aligned, Procrustes) and jitter in mm.
"""
from __future__ import annotations

import numpy as np

from wildhands.eval.metrics import align_procrustes


def _check(points, name: str) -> np.ndarray:
    arr = np.asarray(points, np.float64)
    if arr.ndim != 3 or arr.shape[-1] not in (2, 3):
        raise ValueError(f"{name}: expected (frames, joints, 2 or 3) points, got shape {arr.shape}")
    return arr


def _valid_triples(valid, frames: int) -> np.ndarray:
    """(frames - 2,) whether each interior frame and both its neighbours are valid."""
    ok = np.ones(frames, bool) if valid is None else np.asarray(valid, bool).reshape(-1)
    if ok.shape != (frames,):
        raise ValueError(f"valid: expected one flag per frame ({frames}), got shape {ok.shape}")
    return ok[:-2] & ok[1:-1] & ok[2:]


def acceleration(points) -> np.ndarray:
    """(frames - 2, joints, D) second finite differences of (frames, joints, D) points."""
    arr = _check(points, "points")
    return arr[:-2] - 2 * arr[1:-1] + arr[2:]


def acceleration_error(pred, gt, valid=None) -> float:
    """Mean |a_pred - a_true| (HMMR / VIBE) of (frames, joints, D) points: their unit per frame^2.

    ``valid`` (frames,) bools: frames whose points exist (a frame enters with both neighbours).
    NaN when no three consecutive valid frames exist.
    """
    pred, gt = _check(pred, "pred"), _check(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt: shapes differ, {pred.shape} and {gt.shape}")
    if len(pred) < 3:
        return float("nan")
    keep = _valid_triples(valid, len(pred))
    if not keep.any():
        return float("nan")
    error = np.linalg.norm(acceleration(np.nan_to_num(pred)) - acceleration(np.nan_to_num(gt)), axis=-1)
    return float(error[keep].mean())


def mean_acceleration(points, valid=None) -> float:
    """Mean |a| of (frames, joints, D) points: jitter without a ground truth (unit per frame^2)."""
    arr = _check(points, "points")
    if len(arr) < 3:
        return float("nan")
    keep = _valid_triples(valid, len(arr))
    if not keep.any():
        return float("nan")
    return float(np.linalg.norm(acceleration(np.nan_to_num(arr)), axis=-1)[keep].mean())


def video_errors(pred, gt, valid=None) -> dict:
    """Accuracy and jitter of a hand's (frames, 21, 3) root-relative joints (metres) against the truth,
    in mm: mean root-aligned and Procrustes-aligned keypoint errors over the valid frames, and the
    acceleration error (mm/frame^2)."""
    pred, gt = _check(pred, "pred"), _check(gt, "gt")
    ok = np.isfinite(pred).all((1, 2)) if valid is None else np.asarray(valid, bool) & np.isfinite(pred).all((1, 2))
    if not ok.any():
        raise ValueError("video_errors: no valid frame")
    rel_pred, rel_gt = pred - pred[:, :1], gt - gt[:, :1]
    aligned = align_procrustes(rel_pred[ok], rel_gt[ok])
    return {"root_aligned_mm": 1000 * float(np.linalg.norm(rel_pred[ok] - rel_gt[ok], axis=-1).mean()),
            "procrustes_mm": 1000 * float(np.linalg.norm(aligned - rel_gt[ok], axis=-1).mean()),
            "acceleration_error_mm_per_frame2": 1000 * acceleration_error(rel_pred, rel_gt, ok),
            "frames": int(ok.sum())}
