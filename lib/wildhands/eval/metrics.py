"""Evaluation protocol: keypoint alignment, errors, PCK curves and their AUC (paper sec. 8).

Inputs are numpy arrays: 3D keypoints (N, 21, 3) in metres, 2D keypoints (N, 21, 2) in
pixels of the 320 crop, both in the OpenPose order, and an optional ``valid`` mask (N, 21)
of annotated keypoints; reports are in millimetres and pixels.

Alignments of a prediction to its ground truth before scoring (``align_3d``):

- ``"root"``: translate so that the root keypoints coincide (the paper's protocol, after
  Zimmermann & Brox; root 0 is the wrist, STB's root is its palm centre: pass its index).
- ``"root_scale"``: root alignment, then scale the prediction so that one reference bone
  has the ground truth's length. The bone is middle-finger MCP to PIP (keypoints 9-10), the
  bone ColorHandPose3D (Zimmermann & Brox, fig. 4's "Zimm. et al.") normalises by.
- ``"procrustes"``: the least-squares similarity transform (rotation, scale, translation)
  over the annotated keypoints (Umeyama), the FreiHAND "aligned" protocol; reflections are
  excluded.
- ``"fingertips"``: Dexter+Object and EgoDexter annotate fingertips only: translate so that
  the centroids of the annotated fingertips coincide, and score the fingertips only.

Averaging follows the evaluation code of Zimmermann & Brox (also FreiHAND's): PCK and mean
error are computed per keypoint over its annotated samples, then averaged over keypoints
(``average="keypoints"``); ``average="pooled"`` weighs every annotated keypoint equally.
A keypoint is correct at threshold tau when its error is <= tau. The AUC over [a, b] is the
exact normalised integral (1 / (b - a)) * integral_a^b PCK(tau) dtau, the limit of the
trapezoid rule on a fine threshold grid.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wildhands.config import TableSettings
from wildhands.hand import keypoints as kp

ALIGNMENTS = ("root", "root_scale", "procrustes", "fingertips")
AVERAGES = ("keypoints", "pooled")
# Middle-finger MCP -> PIP in the OpenPose order (ColorHandPose3D's keypoints 12 -> 11).
SCALE_BONE = (9, 10)
THRESHOLDS_3D_MM = np.arange(0.0, 51.0)     # the paper's figures span 20-50 mm
AUC_RANGE_3D_MM = (20.0, 50.0)
THRESHOLDS_2D_PX = np.arange(0.0, 31.0)     # 0-30 px at the 320 crop (fig. 8)
AUC_RANGE_2D_PX = (0.0, 30.0)


# ----------------------------------------------------------------------------- input checks

def _check_points(points, name: str, dims: tuple[int, ...]) -> np.ndarray:
    arr = kp.check_keypoints(points, name, dims)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"{name}: expected shape (N, 21, {'|'.join(map(str, dims))}), got {arr.shape}")
    return arr


def check_inputs(pred, gt, valid=None, dims: tuple[int, ...] = (3,)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate (N, 21, d) predictions and ground truth and an (N, 21) mask; return float arrays.

    Without ``valid``, the keypoints whose ground truth is finite count. Annotated keypoints
    must be finite in both arrays.
    """
    pred = _check_points(pred, "pred", dims)
    gt = _check_points(gt, "gt", dims)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt: shapes differ, {pred.shape} vs {gt.shape}")
    if valid is None:
        valid = np.isfinite(gt).all(-1)
    else:
        valid = np.asarray(valid)
        if valid.ndim == 1:
            valid = valid[None]
        if valid.shape != pred.shape[:2]:
            raise ValueError(f"valid: expected shape {pred.shape[:2]} (samples, keypoints), got {valid.shape}")
        valid = valid.astype(bool)
        if not np.isfinite(gt[valid]).all():
            raise ValueError("gt: NaN or infinite coordinates at keypoints marked valid")
    if not np.isfinite(pred[valid]).all():
        raise ValueError("pred: NaN or infinite coordinates at annotated keypoints")
    return pred, gt, valid


# ----------------------------------------------------------------------------- alignments

def align_root(pred: np.ndarray, gt: np.ndarray, root: int = kp.ROOT) -> np.ndarray:
    """Translate ``pred`` (N, 21, d) so that its root keypoint lands on the ground truth's."""
    return pred - pred[:, root:root + 1] + gt[:, root:root + 1]


def align_root_scale(pred: np.ndarray, gt: np.ndarray, root: int = kp.ROOT,
                     bone: tuple[int, int] = SCALE_BONE) -> np.ndarray:
    """Root alignment plus the scale that gives ``bone`` the ground truth's length."""
    a, b = bone
    pred_len = np.linalg.norm(pred[:, b] - pred[:, a], axis=-1)
    gt_len = np.linalg.norm(gt[:, b] - gt[:, a], axis=-1)
    if np.any(pred_len <= 0):
        raise ValueError(f"pred: zero-length reference bone {bone} in samples "
                         f"{np.flatnonzero(pred_len <= 0)[:5].tolist()}")
    scale = (gt_len / pred_len)[:, None, None]
    return (pred - pred[:, root:root + 1]) * scale + gt[:, root:root + 1]


def similarity_transform(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None,
                         allow_reflection: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares s, R, t with s R source_i + t ~ target_i (Umeyama 1991), batched.

    source, target (N, K, d); weights (N, K) >= 0 (keypoints with weight 0 are ignored).
    Returns scale (N,), rotation (N, d, d), translation (N, d).
    """
    n, k, d = source.shape
    w = np.ones((n, k)) if weights is None else np.asarray(weights, dtype=np.float64)
    total = w.sum(1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("similarity_transform: a sample has no keypoint with positive weight")
    w = w / total
    mu_s = np.einsum("nk,nkd->nd", w, source)
    mu_t = np.einsum("nk,nkd->nd", w, target)
    xs, xt = source - mu_s[:, None], target - mu_t[:, None]
    cov = np.einsum("nk,nki,nkj->nij", w, xt, xs)            # target x source covariance
    var_s = np.einsum("nk,nkd,nkd->n", w, xs, xs)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.ones((n, d))
    if not allow_reflection:
        sign[:, -1] = np.sign(np.linalg.det(u @ vt))
        sign[sign == 0] = 1.0
    rotation = u @ (sign[:, :, None] * vt)
    scale = (sigma * sign).sum(1) / np.maximum(var_s, 1e-300)
    translation = mu_t - scale[:, None] * np.einsum("nij,nj->ni", rotation, mu_s)
    return scale, rotation, translation


def align_procrustes(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """``pred`` mapped by the similarity transform that best fits it to ``gt`` on valid keypoints."""
    weights = None if valid is None else valid.astype(np.float64)
    pred_fit = np.where(np.isfinite(pred), pred, 0.0)
    gt_fit = np.where(np.isfinite(gt), gt, 0.0)
    scale, rotation, translation = similarity_transform(pred_fit, gt_fit, weights)
    return scale[:, None, None] * np.einsum("nij,nkj->nki", rotation, pred) + translation[:, None]


def align_fingertip_centroid(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Translate ``pred`` so that the centroid of its annotated fingertips matches the ground truth's."""
    tips = list(kp.FINGERTIPS)
    w = valid[:, tips].astype(np.float64)
    count = w.sum(1)
    if np.any(count == 0):
        raise ValueError(f"valid: samples {np.flatnonzero(count == 0)[:5].tolist()} have no annotated fingertip")

    def centroid(points: np.ndarray) -> np.ndarray:
        at_tips = points[:, tips]
        return np.einsum("nk,nkd->nd", w, np.where(np.isfinite(at_tips), at_tips, 0.0)) / count[:, None]

    return pred - centroid(pred)[:, None] + centroid(gt)[:, None]


def align_3d(pred, gt, valid=None, alignment: str = "root", root: int = kp.ROOT,
             bone: tuple[int, int] = SCALE_BONE) -> tuple[np.ndarray, np.ndarray]:
    """Align (N, 21, 3) predictions to the ground truth; returns (aligned, scored mask).

    The scored mask is ``valid``, restricted to fingertips for ``"fingertips"``. The root
    (and the bone for ``"root_scale"``) must be annotated in every sample.
    """
    pred, gt, valid = check_inputs(pred, gt, valid, dims=(3,))
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment: expected one of {', '.join(ALIGNMENTS)}, got {alignment!r}")
    if alignment in ("root", "root_scale"):
        needed = [root] + (list(bone) if alignment == "root_scale" else [])
        missing = ~valid[:, needed].all(1)
        if missing.any():
            raise ValueError(f"valid: {alignment!r} alignment needs keypoints {needed} annotated; samples "
                             f"{np.flatnonzero(missing)[:5].tolist()} lack them")
        pred_aligned = align_root(pred, gt, root) if alignment == "root" else align_root_scale(pred, gt, root, bone)
        return pred_aligned, valid
    if alignment == "procrustes":
        return align_procrustes(pred, gt, valid), valid
    tips_only = np.zeros_like(valid)
    tips_only[:, list(kp.FINGERTIPS)] = valid[:, list(kp.FINGERTIPS)]
    return align_fingertip_centroid(pred, gt, valid), tips_only


# ----------------------------------------------------------------------------- errors, PCK, AUC

def keypoint_errors(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Euclidean distances (N, 21) in the inputs' unit; NaN where not annotated."""
    dist = np.linalg.norm(np.where(valid[..., None], pred - gt, 0.0), axis=-1)
    return np.where(valid, dist, np.nan)


def hand_errors_3d(pred, gt, alignments=("root", "root_scale", "procrustes")) -> dict:
    """``{alignment: mean 3D keypoint error (mm)}`` of one hand: (21, 3) metres each, all keypoints."""
    pred, gt = np.asarray(pred, np.float64)[None], np.asarray(gt, np.float64)[None]
    return {alignment: float(1000 * np.linalg.norm(align_3d(pred, gt, None, alignment)[0] - gt, axis=-1).mean())
            for alignment in alignments}


def _check_average(average: str) -> None:
    if average not in AVERAGES:
        raise ValueError(f"average: expected one of {', '.join(AVERAGES)}, got {average!r}")


def _scored(errors: np.ndarray) -> np.ndarray:
    """Mask of keypoint ids with at least one annotated sample."""
    return np.isfinite(errors).any(0)


def mean_error(errors: np.ndarray, average: str = "keypoints") -> float:
    """Mean of (N, 21) errors over annotated keypoints (NaN = not annotated)."""
    _check_average(average)
    finite = np.isfinite(errors)
    if not finite.any():
        return float("nan")
    if average == "pooled":
        return float(errors[finite].mean())
    return float(np.nanmean(per_keypoint_mean(errors)[_scored(errors)]))


def per_keypoint_mean(errors: np.ndarray) -> np.ndarray:
    """(21,) mean error per keypoint over its annotated samples (NaN when it has none)."""
    finite = np.isfinite(errors)
    counts = finite.sum(0)
    sums = np.where(finite, errors, 0.0).sum(0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def per_keypoint_pck(errors: np.ndarray, thresholds) -> np.ndarray:
    """(T, 21) fraction of each keypoint's annotated samples with error <= threshold."""
    thresholds = np.asarray(thresholds, dtype=np.float64)
    finite = np.isfinite(errors)
    counts = finite.sum(0)
    hits = (np.where(finite, errors, np.inf)[None] <= thresholds[:, None, None]).sum(1)
    return np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)


def pck_curve(errors: np.ndarray, thresholds, average: str = "keypoints") -> np.ndarray:
    """(T,) PCK of (N, 21) errors at each threshold."""
    _check_average(average)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    finite = np.isfinite(errors)
    if not finite.any():
        return np.full(len(thresholds), np.nan)
    if average == "pooled":
        return (errors[finite][None] <= thresholds[:, None]).mean(1)
    return per_keypoint_pck(errors, thresholds)[:, _scored(errors)].mean(1)


def _exact_auc(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Normalised integral over [low, high] of the step function 1[value <= tau], per value."""
    return (high - np.clip(values, low, high)) / (high - low)


def pck_auc(errors: np.ndarray, low: float, high: float, average: str = "keypoints") -> float:
    """Area under the PCK curve over [low, high], normalised to [0, 1] (exact integral)."""
    _check_average(average)
    if not high > low:
        raise ValueError(f"AUC range: expected low < high, got [{low}, {high}]")
    finite = np.isfinite(errors)
    if not finite.any():
        return float("nan")
    if average == "pooled":
        return float(_exact_auc(errors[finite], low, high).mean())
    per_sample = np.where(finite, _exact_auc(np.where(finite, errors, high), low, high), np.nan)
    return float(np.nanmean(per_keypoint_mean(per_sample)[_scored(errors)]))


def curve_auc(thresholds, pck, low: float, high: float) -> float:
    """Normalised area over [low, high] under a tabulated PCK curve (trapezoid rule).

    The curve is linearly interpolated at ``low`` and ``high``; for published curves that
    do not cover the whole range, the area is taken over the covered part only.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    pck = np.asarray(pck, dtype=np.float64)
    order = np.argsort(thresholds)
    thresholds, pck = thresholds[order], pck[order]
    low, high = max(low, thresholds[0]), min(high, thresholds[-1])
    if not high > low:
        return float("nan")
    inside = (thresholds > low) & (thresholds < high)
    x = np.concatenate([[low], thresholds[inside], [high]])
    y = np.interp(x, thresholds, pck)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / (high - low))


# ----------------------------------------------------------------------------- summaries

def summarize_errors(errors: np.ndarray, thresholds, auc_range: tuple[float, float], unit: str,
                     average: str = "keypoints", keypoint_names=kp.KEYPOINT_NAMES) -> dict:
    """JSON-ready summary of (N, 21) errors (NaN = not scored) in ``unit`` (``"mm"`` or ``"px"``)."""
    thresholds = np.asarray(thresholds, dtype=np.float64)
    finite = np.isfinite(errors)
    scored = _scored(errors)
    per_kp_mean = per_keypoint_mean(errors)
    per_kp_auc = [pck_auc(errors[:, [k]], *auc_range) if scored[k] else None for k in range(errors.shape[1])]
    as_list = lambda a: [None if not np.isfinite(v) else float(v) for v in a]  # noqa: E731
    counts = finite.sum(1)
    sample_means = np.where(counts > 0, np.where(finite, errors, 0.0).sum(1) / np.maximum(counts, 1), np.nan)
    return {
        "unit": unit,
        "average": average,
        "num_samples": int(finite.any(1).sum()),
        "num_keypoints_scored": int(finite.sum()),
        f"mean_{unit}": mean_error(errors, average),
        f"median_{unit}": float(np.median(errors[finite])) if finite.any() else None,
        "auc": pck_auc(errors, *auc_range, average=average),
        f"auc_range_{unit}": [float(auc_range[0]), float(auc_range[1])],
        f"thresholds_{unit}": thresholds.tolist(),
        "pck": as_list(pck_curve(errors, thresholds, average)),
        "per_sample_mean": as_list(sample_means),
        "per_keypoint": {
            name: {f"mean_{unit}": None if not scored[k] else float(per_kp_mean[k]),
                   "auc": per_kp_auc[k], "count": int(finite[:, k].sum())}
            for k, name in enumerate(keypoint_names)
        },
    }


def evaluate_3d(pred, gt, valid=None, alignments=("root", "root_scale", "procrustes"), root: int = kp.ROOT,
                thresholds_mm=THRESHOLDS_3D_MM, auc_range_mm=AUC_RANGE_3D_MM, average: str = "keypoints",
                bone: tuple[int, int] = SCALE_BONE) -> dict:
    """3D summary per alignment: {alignment: summary in mm}; inputs (N, 21, 3) in metres.

    Use ``alignments=("fingertips",)`` for Dexter+Object and EgoDexter, and ``root`` = the
    palm-centre index for STB.
    """
    pred, gt, valid = check_inputs(pred, gt, valid, dims=(3,))
    out = {}
    for alignment in alignments:
        aligned, scored = align_3d(pred, gt, valid, alignment, root=root, bone=bone)
        errors = 1000.0 * keypoint_errors(aligned, gt, scored)
        out[alignment] = summarize_errors(errors, thresholds_mm, auc_range_mm, "mm", average)
        out[alignment]["alignment"] = alignment
        if alignment in ("root", "root_scale"):
            out[alignment]["root"] = int(root)
    return out


def evaluate_2d(pred, gt, valid=None, thresholds_px=THRESHOLDS_2D_PX, auc_range_px=AUC_RANGE_2D_PX,
                average: str = "keypoints") -> dict:
    """2D summary in pixels: (N, 21, 2) predictions and ground truth in pixels of the 320 crop."""
    pred, gt, valid = check_inputs(pred, gt, valid, dims=(2,))
    return summarize_errors(keypoint_errors(pred, gt, valid), thresholds_px, auc_range_px, "px", average)


def evaluate_predictions(pred_3d=None, gt_3d=None, pred_2d=None, gt_2d=None, valid_3d=None, valid_2d=None,
                         alignments=("root", "root_scale", "procrustes"), root: int = kp.ROOT,
                         settings: EvalSettings | None = None) -> dict:
    """One call for a notebook: {"3d": {alignment: summary}, "2d": summary} for what is given.

    Thresholds, AUC ranges and averaging from ``settings`` (a profile's ``[eval]``:
    ``EvalSettings.from_config``), else the paper's (0-50 mm, AUC over 20-50 mm; 0-30 px).
    """
    out = {}
    if (pred_3d is None) != (gt_3d is None) or (pred_2d is None) != (gt_2d is None):
        raise ValueError("evaluate_predictions: give predictions and ground truth together (3D and/or 2D)")
    if pred_3d is not None:
        out["3d"] = evaluate_3d(pred_3d, gt_3d, valid_3d, alignments, root=root,
                                **(settings.arguments_3d() if settings else {}))
    if pred_2d is not None:
        out["2d"] = evaluate_2d(pred_2d, gt_2d, valid_2d, **(settings.arguments_2d() if settings else {}))
    return out


@dataclass(frozen=True)
class EvalSettings(TableSettings):
    """The profile's ``[eval]`` table: the PCK thresholds (a [low, high] range and a step), the AUC
    ranges and the averaging of ``evaluate_3d`` (mm) and ``evaluate_2d`` (px at the 320 crop), and how
    many labelled real photos notebook 04 predicts (``real_photo_limit``; 0: all)."""
    TABLE = "eval"
    pck_3d_mm: tuple
    pck_step_3d_mm: float
    auc_3d_mm: tuple
    pck_2d_px: tuple
    pck_step_2d_px: float
    auc_2d_px: tuple
    average: str               # keypoints | pooled
    real_photo_limit: int

    def __post_init__(self):
        for name in ("pck_3d_mm", "auc_3d_mm", "pck_2d_px", "auc_2d_px"):
            value = tuple(getattr(self, name))
            if len(value) != 2:
                raise ValueError(f"[eval] {name}: expected [low, high], got {list(value)}")
            object.__setattr__(self, name, value)
        _check_average(self.average)

    def arguments_3d(self) -> dict:
        """Keyword arguments of ``evaluate_3d``: thresholds, AUC range, averaging."""
        (low, high), step = self.pck_3d_mm, self.pck_step_3d_mm
        return {"thresholds_mm": np.arange(low, high + step / 2, step), "auc_range_mm": self.auc_3d_mm,
                "average": self.average}

    def arguments_2d(self) -> dict:
        """Keyword arguments of ``evaluate_2d``: thresholds, AUC range, averaging."""
        (low, high), step = self.pck_2d_px, self.pck_step_2d_px
        return {"thresholds_px": np.arange(low, high + step / 2, step), "auc_range_px": self.auc_2d_px,
                "average": self.average}
