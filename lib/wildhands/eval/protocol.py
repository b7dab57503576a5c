"""The evaluation protocol run end to end: trained variants and the 2D-fit baseline on a test set.

One call per method returns a JSON-ready summary (``metrics.evaluate_3d`` per alignment and
``metrics.evaluate_2d``) plus the raw predictions for plots. Networks are scored three ways:
with clean keypoints as heat-map input, with detector-like keypoints (MediaPipe's measured
noise model), and refined by the batched 2D fit from the network's prediction. The 2D fit
alone (the paper's eq. 10 baseline) sees the same detector-like keypoints.
"""
from __future__ import annotations

import numpy as np
import torch

from wildhands.config import table
from wildhands.data.augment import DetectorNoise
from wildhands.data.crops import hand_transform
from wildhands.eval import metrics
from wildhands.eval.metrics import EvalSettings
from wildhands.eval.real_sets import evaluate_sets
from wildhands.fit.fit2d import FitSettings, fit_keypoints_2d
from wildhands.fit.refine import RefineSettings
from wildhands.hand.camera import axis_angle_to_matrix, matrix_to_axis_angle
from wildhands.hand.hand_model import HandModel
from wildhands.hand.keypoints import KEYPOINT_NAMES
from wildhands.hand.parameters import PARAMETER_FIELDS, HandParameters, VectorLayout
from wildhands.net.inference import InferenceSettings
from wildhands.net.model import HandDecoder
from wildhands.net.train import predict_dataset


def split_vector(vector: np.ndarray, num_betas: int) -> dict:
    """``Fit2D.fit``'s ``init`` from parameter vectors v (N, 26), the rotation as v has it (axis-angle)."""
    parts = VectorLayout(num_betas).split(torch.as_tensor(vector, dtype=torch.float64))
    return dict(zip(("global_orient", "trans", "scale", "betas", "pose"), parts))


def summarize(pred_3d, gt_3d, pred_2d, gt_2d, visible, has_3d, settings: EvalSettings) -> dict:
    """3D (root, root+scale, Procrustes) and 2D summaries, 3D only over samples with 3D labels;
    thresholds, AUC ranges and averaging from ``settings`` (``[eval]``)."""
    valid = np.asarray(visible) > 0
    with_3d = np.asarray(has_3d) > 0
    out = {"2d": metrics.evaluate_2d(pred_2d, gt_2d, valid, **settings.arguments_2d()), "count": int(len(valid))}
    if with_3d.any():
        out["3d"] = metrics.evaluate_3d(pred_3d[with_3d], gt_3d[with_3d], None, **settings.arguments_3d())
    return out


def evaluate_network(model, dataset, config: dict, refine: bool = True, batch_size: int = 64,
                     inference: InferenceSettings | None = None, evaluation: EvalSettings | None = None) -> dict:
    """``{"clean", "detector", "refined", "refined_labels"}`` summaries of a trained network on ``dataset``.

    "refined": the 2D fit from the network's prediction on the detector-like keypoints it saw,
    "refined_labels": the same from the clean keypoints, each weighted by its expected keypoint
    error (``RefineSettings.keypoint_weights``), the prediction itself a prior and outlying keypoints
    down-weighted as ``[refine]`` says (``RefineSettings.options_for``).

    The RGB variant reads no keypoints, so its "detector" numbers equal its "clean" ones and
    its refinement fits the detector-like keypoints (what a user would have). ``inference``: the
    test-time averaging and the refinement, ``evaluation``: the metrics' ``[eval]`` settings
    (each by default ``config``'s).
    """
    inference = inference or InferenceSettings.from_config(config)
    evaluation = evaluation or EvalSettings.from_config(config)
    out, raw = {}, {}
    for mode, noise in (("clean", False), ("detector", True)):
        pred = predict_dataset(model, dataset, config, noise=noise, batch_size=batch_size,
                               quarter_turns=inference.quarter_turns)
        raw[mode] = pred
        out[mode] = summarize(pred["pred_keypoints_3d"], pred["keypoints_3d"], pred["pred_keypoints_2d"],
                              pred["keypoints_2d"], pred["visible"], pred["has_3d"], evaluation)
    if refine:
        settings = inference.refine
        for mode, inputs, source in (("refined", "detector", "detector"), ("refined_labels", "clean", "labels")):
            pred = raw[inputs]
            targets = pred.get("input_keypoints_2d", pred["keypoints_2d"])
            sigma_px = DetectorNoise.from_config(config).keypoint_sigma_px
            weights = np.tile(settings.keypoint_weights(source, sigma_px=sigma_px), (len(targets), 1))
            init = split_vector(pred["pred_params"], model.hand_model.num_betas)
            fit = fit_keypoints_2d(model.hand_model, targets, settings.fit_settings(source), weights, init=init,
                                   anchor_sigma=settings.anchor_sigma)
            raw[mode] = {"pred_keypoints_3d": fit.keypoints_3d.numpy(), "pred_keypoints_2d": fit.keypoints_2d.numpy()}
            out[mode] = summarize(fit.keypoints_3d.numpy(), pred["keypoints_3d"], fit.keypoints_2d.numpy(),
                                  pred["keypoints_2d"], pred["visible"], pred["has_3d"], evaluation)
    return {"summary": out, "raw": raw}


def evaluate_fit2d(hand_model: HandModel, keypoints_in, labels: dict, config: dict,
                   source: str | None = "detector", **overrides) -> dict:
    """The 2D-fit baseline on given input keypoints (N, 21, 2); ``labels`` as from ``predict_dataset``.

    Eq. 10's p_i are the keypoints' expected errors from ``source`` (``RefineSettings.keypoint_weights``:
    what a detector's confidences stand for; the same weights the refinement uses); None: p_i = 1.
    ``overrides``: ``[fit2d]`` settings for this call (e.g. ``robust=3.0``; ``FitSettings.replace``).
    """
    measured = DetectorNoise.from_config(config).keypoint_sigma_px
    weights = None if source is None else np.tile(
        RefineSettings.from_config(config).keypoint_weights(source, sigma_px=measured), (len(keypoints_in), 1))
    fit = fit_keypoints_2d(hand_model, keypoints_in, FitSettings.from_config(config).replace(**overrides), weights)
    summary = summarize(fit.keypoints_3d.numpy(), labels["keypoints_3d"], fit.keypoints_2d.numpy(),
                        labels["keypoints_2d"], labels["visible"], labels["has_3d"], EvalSettings.from_config(config))
    summary["fit"] = fit.summary()
    return {"summary": summary, "raw": {"pred_keypoints_3d": fit.keypoints_3d.numpy(),
                                        "pred_keypoints_2d": fit.keypoints_2d.numpy()}}


def headline(summary: dict) -> dict:
    """The few numbers a table shows: root-aligned 3D mean error (mm), AUC 20-50 mm, 2D mean error (px)."""
    row = {"error_2d_px": summary["2d"]["mean_px"]}
    if "3d" in summary:
        row.update(error_3d_mm=summary["3d"]["root"]["mean_mm"], auc_20_50=summary["3d"]["root"]["auc"],
                   error_3d_procrustes_mm=summary["3d"]["procrustes"]["mean_mm"])
    return row


def real_photo_residuals(hand_model: HandModel, labels_path, config: dict, num_inits: int = 10,
                         iterations: int = 50, pose_space: str | None = None) -> dict:
    """Fit the hand model (eq. 10) to labelled real hands; residuals per keypoint in px at the 320 crop.

    Each hand is cropped at 2.2 l around its labels. Where the label file gives no side, both
    the image and its mirror are fitted and the better fit kept (the network is right-handed).
    ``pose_space`` overrides ``[fit2d] pose_space``: "pca" (eq. 10's 10 coefficients: residuals
    mix misplaced joints with poses the 10-D space cannot express) or "full" (45 joint angles
    under the PCA and range priors: what is left is mostly where the model puts its joints).
    """
    import json
    from pathlib import Path

    entries = json.loads(Path(labels_path).read_text())
    targets, weights, names, sides = [], [], [], []
    for entry in entries:
        labels = np.asarray(entry["keypoints_2d"], np.float64)
        visible = labels[:, 2] > 0
        for mirror in ((entry["side"] == "left",) if entry.get("side") else (False, True)):
            # The crop box only needs the image width for mirroring; the labels bound the hand.
            width = int(np.ceil(labels[:, 0].max())) + 1
            transform = hand_transform((1, width), labels[:, :2], visible, mirror=mirror)
            targets.append(transform.to_crop(labels[:, :2]))
            weights.append(visible.astype(np.float64))
            names.append(entry["image"])
            sides.append("left" if mirror else "right")
    # Run to convergence: this measures where the model puts joints, not the fit's speed.
    settings = FitSettings.from_config(config)
    space = pose_space or settings.energy.pose_space
    settings = settings.replace(num_inits=num_inits, iterations=iterations, pose_space=space)
    fit = fit_keypoints_2d(hand_model, np.stack(targets), settings, np.stack(weights))
    distance = (fit.keypoints_2d.numpy() - np.stack(targets))
    distance = np.linalg.norm(distance, axis=-1)
    distance[np.stack(weights) == 0] = np.nan
    per_hand = {}
    for i, name in enumerate(names):  # keep the better side where both were tried
        if name not in per_hand or np.nanmean(distance[i]) < np.nanmean(distance[per_hand[name]]):
            per_hand[name] = i
    chosen = distance[list(per_hand.values())]
    return {
        "hands": len(per_hand), "pose_space": space,
        "median_px": float(np.nanmedian(chosen)), "mean_px": float(np.nanmean(chosen)),
        "per_hand_median_px": {n: float(np.nanmedian(distance[i])) for n, i in per_hand.items()},
        "side_used": {n: sides[i] for n, i in per_hand.items()},
        "per_keypoint_median_px": np.nanmedian(chosen, axis=0).tolist(),
        "per_keypoint_mean_px": np.nanmean(chosen, axis=0).tolist(),
        "keypoint_names": list(KEYPOINT_NAMES),
    }


def evaluate_real_sets(config: dict, checkpoints: dict, hand_model: HandModel) -> dict:
    """Score the configured real evaluation sets; {} when none is configured (``[data]`` paths)."""
    paths = {k: v for k, v in table(config, "data").items() if isinstance(v, str) and v}
    if not paths:
        return {}
    return evaluate_sets(config, paths, checkpoints, hand_model)


@torch.no_grad()
def reconstruct(hand_model: HandModel, vectors) -> dict:
    """Meshes from parameter vectors v = (R, t, s, beta, theta) (N, 26): camera-frame, root-relative
    vertices and keypoints (metres) and their projections (pixels of the 320 crop)."""
    params = HandParameters.from_vector(torch.as_tensor(np.asarray(vectors), dtype=torch.float64), hand_model.num_betas)
    params = HandParameters(*(getattr(params, name).to(hand_model.dtype) for name in PARAMETER_FIELDS))
    out = HandDecoder(hand_model)(params)
    return {"vertices": out.vertices.numpy(), "keypoints_3d": out.keypoints_3d.numpy(),
            "vertices_2d": out.vertices_2d.numpy(), "keypoints_2d": out.keypoints_2d.numpy()}


def label_vectors(dataset, indices) -> np.ndarray:
    """Ground-truth parameter vectors (N, 26) of samples that carry parameters (synthetic)."""
    rows = []
    for i in indices:
        s = dataset[i]
        rows.append(np.concatenate([s["global_orient"], s["trans"], np.reshape(s["scale"], 1), s["betas"], s["pose"]]))
    return np.stack(rows).astype(np.float64)


TRUTH_SUBSTITUTIONS = ((), ("rotation",), ("betas",), ("pose",), ("rotation", "betas"), ("rotation", "pose"),
                       ("betas", "pose"))


def error_breakdown(hand_model: HandModel, pred_vectors, true_vectors) -> dict:
    """Where a prediction's 3D error comes from: the root-aligned mean keypoint error (mm) with
    parts of the predicted v = (R, t, s, beta, theta) replaced by the truth (keys such as
    "rotation+pose": those parts true, the rest predicted; "none": the prediction as it is),
    and the rotation error in degrees, split into in-plane (about the camera axis) and
    out-of-plane (the tilt a weak-perspective view hardly shows).
    """
    pred, true = np.asarray(pred_vectors, np.float64), np.asarray(true_vectors, np.float64)
    if pred.shape != true.shape or pred.ndim != 2:
        raise ValueError(f"pred_vectors, true_vectors: expected two (N, D) arrays, got {pred.shape}, {true.shape}")
    layout = VectorLayout(hand_model.num_betas)
    columns = {"rotation": layout.rotation, "betas": layout.betas, "pose": layout.pose}
    truth = reconstruct(hand_model, true)["keypoints_3d"]
    out = {}
    for parts in TRUTH_SUBSTITUTIONS:
        mixed = pred.copy()
        for part in parts:
            mixed[:, columns[part]] = true[:, columns[part]]
        keypoints = reconstruct(hand_model, mixed)["keypoints_3d"]
        error = np.linalg.norm(metrics.align_root(keypoints, truth) - truth, axis=-1)
        out["+".join(parts) or "none"] = float(error.mean() * 1000)
    relative = (axis_angle_to_matrix(torch.as_tensor(pred[:, layout.rotation])) @
                axis_angle_to_matrix(torch.as_tensor(true[:, layout.rotation])).transpose(1, 2))
    angle = np.degrees(matrix_to_axis_angle(relative).numpy())
    out["rotation_deg"] = float(np.linalg.norm(angle, axis=1).mean())
    out["rotation_in_plane_deg"] = float(np.abs(angle[:, 2]).mean())
    out["rotation_out_of_plane_deg"] = float(np.linalg.norm(angle[:, :2], axis=1).mean())
    return out
