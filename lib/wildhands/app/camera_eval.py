"""How well predict places hands in the camera: synthetic hands under a known perspective camera,
and labelled photos with 3D keypoints and intrinsics (RHD in ``../shared/real_photos``).

Owns: ``perspective_hands`` (hands of the synthetic distribution placed at known depths and
seen by known pinhole cameras: 2D keypoints by full perspective), ``evaluate_placement`` (root
depth and root position errors of predict + ``camera_space``, and of the true root-relative 3D
placed on the given 2D keypoints, which isolates the camera-space step from the network's
shape and pose errors),
``labelled_photo_hands`` (the entries of a labels.json with a camera) and ``by_hand_size``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wildhands.app.predict import HandInput
from wildhands.data.images import read_image
from wildhands.data.synthetic import SyntheticSettings, anatomical_frame, sample_parameters
from wildhands.fit.perspective import PerspectiveSettings, place_results
from wildhands.hand import keypoints as kp
from wildhands.hand.camera_space import Intrinsics, image_pixels_per_metre, place_hand

MIDDLE_CHAIN = (0, 9, 10, 11, 12)   # wrist, middle MCP, PIP, DIP, tip


@dataclass
class CameraHand:
    """One hand with known camera-frame keypoints and camera."""
    name: str
    image: np.ndarray               # (H, W, 3) what predict sees (blank for synthetic hands: the 2D variant)
    keypoints_2d: np.ndarray        # (21, 2) pixels
    keypoints_3d_camera: np.ndarray  # (21, 3) metres, camera frame
    intrinsics: Intrinsics
    handedness: str = "right"
    confidence: np.ndarray | None = None   # (21,) > 0 where the 2D keypoint is labelled visible; None: all


def hand_length_mm(keypoints_3d) -> float:
    """Wrist to middle fingertip along the middle finger's bones (independent of the pose)."""
    k = np.asarray(keypoints_3d, np.float64)[list(MIDDLE_CHAIN)]
    return float(np.linalg.norm(np.diff(k, axis=0), axis=1).sum() * 1000)


def perspective_hands(hand_model, config: dict, count: int, seed: int = 0, width: int = 640, height: int = 480,
                      fov_range_deg=(40.0, 75.0), depth_range_m=(0.25, 1.0)) -> list[CameraHand]:
    """``count`` synthetic hands (shape, pose and view drawn as the synthetic set draws them, 30 %
    left by mirroring) at a root depth uniform in ``depth_range_m``, seen by a centred pinhole
    camera of horizontal field of view uniform in ``fov_range_deg``; every keypoint in the image."""
    frame, settings = anatomical_frame(hand_model), SyntheticSettings.from_config(config)
    hands = []
    for i in range(count):
        rng = np.random.default_rng([seed, 21, i])
        while True:
            p = sample_parameters(rng, settings, frame, hand_model.num_betas, hand_model.num_pca_comps)
            with torch.no_grad():
                keys = hand_model(betas=torch.as_tensor(p.betas[None], dtype=hand_model.dtype),
                                  pose=torch.as_tensor(p.pose[None], dtype=hand_model.dtype)).keypoints[0]
            keys = keys.double().numpy()
            joints = (keys - keys[kp.ROOT]) @ p.rotation.T
            left = rng.random() < 0.3
            if left:
                joints[:, 0] *= -1
            fov = np.deg2rad(rng.uniform(*fov_range_deg))
            camera = Intrinsics.centred(width / (2 * np.tan(fov / 2)), width, height, "flag")
            depth = rng.uniform(*depth_range_m)
            root_px = rng.uniform([0.2 * width, 0.2 * height], [0.8 * width, 0.8 * height])
            root = np.array([(root_px[0] - camera.cx) / camera.fx * depth,
                             (root_px[1] - camera.cy) / camera.fy * depth, depth])
            points = joints + root
            pixels = camera.project(points)
            inside = (pixels >= 0).all() and (pixels[:, 0] <= width - 1).all() and (pixels[:, 1] <= height - 1).all()
            if (points[:, 2] > 0.05).all() and inside:
                break
        hands.append(CameraHand(f"synthetic_{i:04d}", np.zeros((height, width, 3), np.uint8), pixels, points,
                                camera, "left" if left else "right"))
    return hands


def labelled_photo_hands(folder) -> list[CameraHand]:
    """The hands of ``folder/labels.json`` that have ``keypoints_3d_cam`` and a ``camera``."""
    folder = Path(folder)
    labels = json.loads((folder / "labels.json").read_text())
    hands = []
    for entry in labels:
        if not entry.get("keypoints_3d_cam") or not entry.get("camera"):
            continue
        image = read_image(folder / entry["image"])
        focal, centre = entry["camera"]["focal"], entry["camera"]["principal_point"]
        camera = Intrinsics(float(focal[0]), float(focal[1]), float(centre[0]), float(centre[1]),
                            image.shape[1], image.shape[0], "flag", "the data set's camera")
        points = np.asarray(entry["keypoints_2d"], np.float64)
        hands.append(CameraHand(entry["image"], image, points[:, :2], np.asarray(entry["keypoints_3d_cam"]),
                                camera, entry.get("side") or "right",
                                points[:, 2] if points.shape[1] == 3 else None))
    return hands


def evaluate_placement(predictor, hands: list[CameraHand], intrinsics_override=None, camera_fit: str = "pose"
                       ) -> list[dict]:
    """Per hand: root depth and position errors of predict's placement (``translation_m``), of the
    weak-perspective start alone, and of the placement given the true root-relative 3D; with
    ``intrinsics_override(width, height)`` the camera is not known and that one is assumed; ``camera_fit``
    as predict's ``--camera-fit`` (``fit.perspective.place_results``)."""
    rows = []
    settings = PerspectiveSettings.from_config(predictor.config)
    for hand in hands:
        confidence = np.ones(kp.NUM_KEYPOINTS) if hand.confidence is None else hand.confidence
        given = HandInput(hand.keypoints_2d, confidence, hand.handedness, 1.0, "keypoints")
        camera = hand.intrinsics if intrinsics_override is None else intrinsics_override(*hand.image.shape[1::-1])
        result = predictor.predict(hand.image, hands=[given], intrinsics=camera)[0]
        place_results([result], camera, predictor.hand_model, camera_fit, settings)
        truth = hand.keypoints_3d_camera
        truth_root = truth[kp.ROOT]
        # the true shape fitted to the given 2D keypoints: the camera-space step alone
        oracle = place_hand(truth - truth_root, truth - truth_root, hand.keypoints_2d,
                            image_pixels_per_metre(result.camera, result.crop), camera, weights=given.confidence)
        row = {"name": hand.name, "handedness": hand.handedness, "hand_length_mm": hand_length_mm(truth),
               "depth_m": float(truth_root[2]), "camera_source": camera.source}
        for label, translation in (("placed", result.extras["translation_m"]),
                                   ("pose_fixed", result.extras.get("translation_pose_fixed_m",
                                                                    result.extras["translation_m"])),
                                   ("weak_perspective", result.extras["translation_weak_perspective_m"]),
                                   ("true_3d", oracle["translation_m"])):
            row[f"{label}_depth_rel_error"] = float((translation[2] - truth_root[2]) / truth_root[2])
            row[f"{label}_root_error_mm"] = float(np.linalg.norm(translation - truth_root) * 1000)
        row["reprojection_rms_px"] = result.extras["reprojection_rms_px"]
        row["predicted_hand_length_mm"] = hand_length_mm(result.joints_3d)
        rows.append(row)
    return rows


def summarise(rows: list[dict], prefix: str) -> dict:
    """Median and mean |relative depth error| (%) and median root error (mm) of one method."""
    rel = np.abs([r[f"{prefix}_depth_rel_error"] for r in rows]) * 100
    root = np.array([r[f"{prefix}_root_error_mm"] for r in rows])
    signed = np.array([r[f"{prefix}_depth_rel_error"] for r in rows]) * 100
    return {"hands": len(rows), "depth_rel_error_median_pct": float(np.median(rel)),
            "depth_rel_error_mean_pct": float(rel.mean()), "depth_rel_error_signed_mean_pct": float(signed.mean()),
            "within_10pct": float((rel <= 10).mean()), "root_error_median_mm": float(np.median(root))}


def by_hand_size(rows: list[dict], prefix: str, edges_mm=(170.0, 185.0, 200.0)) -> list[dict]:
    """``summarise`` per bin of true hand length (edges in mm)."""
    bounds = [-np.inf, *edges_mm, np.inf]
    out = []
    for low, high in zip(bounds[:-1], bounds[1:]):
        chosen = [r for r in rows if low <= r["hand_length_mm"] < high]
        if chosen:
            out.append({"hand_length_mm": f"{low:.0f}-{high:.0f}", **summarise(chosen, prefix)})
    return out
