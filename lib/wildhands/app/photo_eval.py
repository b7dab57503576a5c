"""``predict`` against labelled real photos: does the mesh keep what its detector found?

For each labelled hand of a ``labels.json`` folder (the format of ``../shared/real_photos``),
the pipeline runs on the whole photo as a user runs it, and the hand it returns for the labelled
one is scored:

- 2D: the detector's keypoints and the output's reprojected keypoints against the labels, in px
  of the 320 crop of 2.2 l around the labelled hand (mean over visible keypoints per hand);
- 3D, where the labels have it (RHD): the output's root-relative joints and MediaPipe's world
  landmarks against the labels, root-relative, root + scale aligned and Procrustes-aligned (mm).

Modes: ``"detector"`` (MediaPipe finds the hand, as ``predict`` does) and ``"labels"`` (the
labelled 2D keypoints given, as ``predict --keypoints``; the detector's world landmarks join
when it finds the same hand). The photos are only read. ``photo_model_reach``: how closely the hand
model itself can reach the detector's keypoints and the labels, nothing else pulling.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from wildhands.app.predict import HandInput
from wildhands.data.detector import keypoint_errors_at_crop, match_detection
from wildhands.data.images import read_image
from wildhands.eval import metrics
from wildhands.fit.fit2d import Fit2D, FitOptions
from wildhands.hand import keypoints as kp
from wildhands.hand.camera_space import Intrinsics

MODES = ("detector", "labels")
ALIGNMENTS = ("root", "root_scale", "procrustes")


def load_labels(folder) -> list[dict]:
    """The entries of ``folder/labels.json`` (clear error when absent)."""
    path = Path(folder) / "labels.json"
    if not path.is_file():
        raise FileNotFoundError(f"labelled photos: no {path} (set WILDHANDS_REAL_PHOTOS to the folder holding it)")
    return json.loads(path.read_text())


def errors_3d(pred, labels) -> dict:
    """Mean 3D keypoint error (mm) of one hand per alignment: (21, 3) metres each."""
    return metrics.hand_errors_3d(pred, labels, ALIGNMENTS)


def score_hand(entry: dict, hand, result) -> dict:
    """One labelled hand: 2D errors of the detector's and the output's keypoints, and the 3D
    errors of the output and of the detector's world landmarks where the labels have 3D."""
    labels = np.asarray(entry["keypoints_2d"], np.float64)
    visible = labels[:, 2] > 0
    row = {"image": entry["image"], "source": entry.get("source"), "found": result is not None}
    if result is None:
        return row
    detection = hand.detection
    detector_2d = None if detection is None else detection.keypoints_2d
    row["output_px"] = float(np.nanmean(keypoint_errors_at_crop(result.keypoints_2d, labels[:, :2], visible)))
    if detector_2d is not None:
        row["detector_px"] = float(np.nanmean(keypoint_errors_at_crop(detector_2d, labels[:, :2], visible)))
        # how far the mesh left the keypoints it was fitted to, per keypoint (px at the 320 crop of 2.2 l)
        row["gap_px"] = keypoint_errors_at_crop(result.keypoints_2d, detector_2d).tolist()
    if entry.get("keypoints_3d_cam"):
        truth = np.asarray(entry["keypoints_3d_cam"], np.float64)
        truth = truth - truth[kp.ROOT]
        row["output_mm"] = errors_3d(result.joints_3d, truth)
        if detection is not None and detection.world_landmarks is not None:
            world = detection.world_landmarks - detection.world_landmarks[kp.ROOT]
            row["detector_mm"] = errors_3d(world, truth)
    return row


def label_intrinsics(entry: dict, image) -> Intrinsics | None:
    """The labelled camera of a photo (RHD's), as a user would give it (``--focal``, ``--principal``), or
    None (the default lens)."""
    camera = entry.get("camera")
    if not camera:
        return None
    (fx, fy), (cx, cy) = camera["focal"], camera["principal_point"]
    return Intrinsics(float(fx), float(fy), float(cx), float(cy), image.shape[1], image.shape[0], "flag",
                      "the photo's labelled camera")


def evaluate_photos(predictor, folder, mode: str = "detector", progress: bool = True, limit: int = 0) -> dict:
    """Every labelled hand of ``folder`` (the first ``limit``; 0: all) through ``predictor`` (a
    ``predict.Predictor``) in ``mode``; per-hand rows and a summary (medians over hands, means of
    the 3D errors)."""
    from tqdm.auto import tqdm

    if mode not in MODES:
        raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    rows = []
    entries = load_labels(folder)
    for entry in tqdm(entries[:limit] if limit else entries, desc=f"real photos ({mode})", disable=not progress):
        image = read_image(Path(folder) / entry["image"])
        labels = np.asarray(entry["keypoints_2d"], np.float64)
        if mode == "detector":
            hands = predictor.find_hands(image)
            match = match_detection([h.detection for h in hands], labels[:, :2], labels[:, 2])
            hand = next((h for h in hands if h.detection is match), None) if match is not None else None
        else:
            hand = HandInput(labels[:, :2], (labels[:, 2] > 0).astype(float), entry.get("side") or "right",
                             1.0, "keypoints")
        if hand is None:
            rows.append(score_hand(entry, None, None))
            continue
        hand = predictor.with_detections(image, [hand])[0] if mode == "labels" else hand
        result = predictor.predict(image, hands=[hand], intrinsics=label_intrinsics(entry, image))[0]
        rows.append(score_hand(entry, hand, result))
    return {"mode": mode, "hands": rows, "summary": summarize(rows)}


def summarize(rows: list[dict]) -> dict:
    """Found hands, median 2D errors (detector, output) over hands, and mean 3D errors."""
    found = [r for r in rows if r["found"]]
    both = [r for r in found if "detector_px" in r]

    def median(key, subset):
        values = [r[key] for r in subset if key in r]
        return float(np.median(values)) if values else None

    def mean_3d(key):
        values = [r[key] for r in found if key in r]
        return {a: float(np.mean([v[a] for v in values])) for a in ALIGNMENTS} if values else None

    return {"hands": len(rows), "found": len(found), "with_detector": len(both),
            "detector_median_px": median("detector_px", both), "output_median_px": median("output_px", both),
            "output_median_px_all": median("output_px", found),
            "output_not_worse": sum(r["output_px"] <= r["detector_px"] + 1e-9 for r in both),
            **gap_summary([r["gap_px"] for r in both if "gap_px" in r]),
            "output_mm": mean_3d("output_mm"), "detector_mm": mean_3d("detector_mm"),
            "with_3d": sum("output_mm" in r for r in found)}


# The palm's keypoints (the wrist and the knuckles), which the hand model places by its shape and global pose alone
PALM_KEYPOINTS = (kp.ROOT,) + tuple(kp.FINGER_KEYPOINTS[f][0] for f in kp.FINGERS[1:])


def gap_summary(gaps: list) -> dict:
    """Medians over hands of how far the output left its detector's keypoints (px at 320): all 21,
    the palm's (``PALM_KEYPOINTS``) and the rest; empty without hands."""
    if not gaps:
        return {}
    gaps = np.asarray(gaps)
    rest = [k for k in range(kp.NUM_KEYPOINTS) if k not in PALM_KEYPOINTS]
    return {"gap_median_px": float(np.median(gaps.mean(1))),
            "gap_palm_median_px": float(np.median(gaps[:, PALM_KEYPOINTS].mean(1))),
            "gap_fingers_median_px": float(np.median(gaps[:, rest].mean(1)))}


def model_reach_px(hand_model, keypoints_2d, visible=None, mirrored=None) -> np.ndarray:
    """(N,) how closely ``hand_model`` can reach each hand's (N, 21, 2) image keypoints when nothing
    else pulls: the 2D fit with no prior (45-D pose within the model's joint-range box, shape within
    3 sd, 8 starts, the weak-perspective camera), its mean distance to the ``visible`` keypoints in px
    of the 320 crop of 2.2 l around them. ``mirrored`` (N,) marks left hands (fitted mirrored)."""
    points = np.asarray(keypoints_2d, np.float64)
    if points.ndim != 3 or points.shape[1:] != (kp.NUM_KEYPOINTS, 2):
        raise ValueError(f"keypoints_2d: expected (N, {kp.NUM_KEYPOINTS}, 2), got shape {points.shape}")
    visible = np.ones(points.shape[:2]) if visible is None else (np.asarray(visible) > 0).astype(np.float64)
    sign = np.ones((len(points), 1, 2))                       # left hands fitted mirrored: x -> -x
    if mirrored is not None:
        sign[np.asarray(mirrored, bool), :, 0] = -1.0
    fit = Fit2D(hand_model, alpha_beta=0.0, w_theta=0.0, pose_space="full")
    result = fit.fit(torch.as_tensor(points * sign), torch.as_tensor(visible),
                     options=FitOptions(num_inits=8, iterations=60, tolerance=1e-7))
    reached = result.keypoints_2d.numpy() * sign
    return np.array([np.nanmean(keypoint_errors_at_crop(r, p, v)) for r, p, v in zip(reached, points, visible)])


def photo_model_reach(predictor, folder, limit: int = 0) -> dict:
    """``model_reach_px`` of ``predictor``'s hand model to each labelled hand's detector keypoints
    (where the detector finds it) and to its labels, with the medians over hands. A detector whose
    keypoints the model reaches much closer than they lie from the labels errs as a hand could, a hand
    in another pose: no refinement can take such errors out (MediaPipe's on ../shared/real_photos:
    2.4 px, 14.9 px from the labels)."""
    detected, detected_left, labelled, labelled_visible, labelled_left = [], [], [], [], []
    entries = load_labels(folder)
    for entry in entries[:limit] if limit else entries:
        labels = np.asarray(entry["keypoints_2d"], np.float64)
        image = read_image(Path(folder) / entry["image"])
        match = match_detection([h.detection for h in predictor.find_hands(image)], labels[:, :2], labels[:, 2])
        side = entry.get("side") or (match.handedness if match is not None else "right")
        labelled.append(labels[:, :2]), labelled_visible.append(labels[:, 2]), labelled_left.append(side == "left")
        if match is not None:
            detected.append(match.keypoints_2d), detected_left.append(match.handedness == "left")
    model = predictor.hand_model
    out = {"labels_px": model_reach_px(model, labelled, labelled_visible, labelled_left).tolist(),
           "detector_px": model_reach_px(model, detected, None, detected_left).tolist() if detected else []}
    return {**out, **{f"{key}_median": float(np.median(values)) if values else None for key, values in out.items()}}


def print_report(report: dict) -> None:
    """The per-hand table and the summary of ``evaluate_photos``."""
    print(f"\n== mode: {report['mode']} (2D px at the 320 crop of 2.2 l around the labels; 3D mm: "
          f"root / root+scale / Procrustes)")
    print(f"{'image':>34} {'detector px':>12} {'output px':>10}   {'output 3D mm':>18}   {'detector 3D mm':>18}")
    for r in report["hands"]:
        if not r["found"]:
            print(f"{r['image']:>34} {'not found':>12}")
            continue

        def mm(key):
            return " / ".join(f"{r[key][a]:.1f}" for a in ALIGNMENTS) if key in r else "-"

        det = f"{r['detector_px']:.1f}" if "detector_px" in r else "-"
        print(f"{r['image']:>34} {det:>12} {r['output_px']:10.1f}   {mm('output_mm'):>18}   {mm('detector_mm'):>18}")
    s = report["summary"]

    def fmt(value):
        return "-" if value is None else f"{value:.2f}"

    print(f"found {s['found']}/{s['hands']}; median over hands: detector {fmt(s['detector_median_px'])} px, "
          f"output {fmt(s['output_median_px'])} px; output no worse than the detector on "
          f"{s['output_not_worse']}/{s['with_detector']} hands")
    if "gap_median_px" in s:
        print(f"  the output left the detector's keypoints by {s['gap_median_px']:.2f} px (median over hands): the "
              f"palm's (wrist, knuckles) {s['gap_palm_median_px']:.2f}, the others {s['gap_fingers_median_px']:.2f}")
    for key in ("output_mm", "detector_mm"):
        if s[key]:
            print(f"  {key} ({s['with_3d']} hands with 3D): " + ", ".join(f"{a} {v:.1f}" for a, v in s[key].items()))


def draw_detector_vs_output(reports: dict, ax=None):
    """Per labelled hand, the detector's 2D error against the output's (px at 320), one series
    per report (``{label: evaluate_photos(...)}``): points under the diagonal are hands the mesh
    placed better than its detector."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.6, 4.2))
    top = 1.0
    for label, report in reports.items():
        rows = [r for r in report["hands"] if "detector_px" in r]
        det, out = np.array([r["detector_px"] for r in rows]), np.array([r["output_px"] for r in rows])
        if len(rows):
            top = max(top, det.max(), out.max())
            ax.scatter(det, out, s=18, label=f"{label} (median {np.median(out):.1f} px)")
    ax.plot([0, top * 1.05], [0, top * 1.05], color="0.5", lw=1, ls="--")
    ax.set_xlabel("detector (MediaPipe) 2D error, px at 320")
    ax.set_ylabel("output (mesh) 2D error, px at 320")
    ax.legend(fontsize=7)
    return ax


def summary_table(reports: dict) -> str:
    """A markdown table of ``{refinement: {mode: evaluate_photos(...)}}``: hands found, median 2D
    errors of the detector and the output, hands the output did not make worse, 3D errors."""
    def fmt(value, digits=1):
        return "-" if value is None else f"{value:.{digits}f}"

    lines = ["| refinement | input | found | detector 2D px | output 2D px | output no worse | "
             "output 3D mm (root / root+scale / PA) | MediaPipe world 3D mm |", "|---|---|---|---|---|---|---|---|"]
    for name, per_mode in reports.items():
        for mode, report in per_mode.items():
            s = report["summary"]

            def mm(key):
                return " / ".join(fmt(s[key][a]) for a in ALIGNMENTS) if s[key] else "-"

            lines.append(f"| {name} | {mode} | {s['found']}/{s['hands']} | {fmt(s['detector_median_px'])} | "
                         f"{fmt(s['output_median_px_all'])} | {s['output_not_worse']}/{s['with_detector']} | "
                         f"{mm('output_mm')} | {mm('detector_mm')} |")
    return "\n".join(lines)
