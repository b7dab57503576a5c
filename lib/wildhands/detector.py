"""The independent 2D hand detector: MediaPipe Hands (0.10.21, models inside the wheel, CPU, offline).

The paper feeds 2D joint heat-maps from an independent CNN (OpenPose hand); we use MediaPipe.
``HandDetector.detect(image)`` returns, per hand, 21 keypoints in image pixels in our order
(MediaPipe's order is the same OpenPose order), the handedness for an ordinary photograph
and MediaPipe's score. MediaPipe labels handedness as if the image were a mirrored selfie,
so its label is swapped. A second pass on the 2.2 l crop of each hand refines its keypoints,
and when the full photo gives nothing, a pass on overlapping tiles finds small hands.
MediaPipe gives no per-keypoint confidence: callers use the hand score for every keypoint.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import keypoints as kp
from .crops import crop_box, crop_image, make_transform
from .images import check_image

SECOND_PASS_SIZE = 320      # the refinement pass sees the paper's 2.2 l crop at 320 px
MAX_DETECTION_SIDE = 1920   # larger photos are downscaled for the first pass (coordinates mapped back)


@dataclass
class Detection:
    """One hand found in an image."""
    keypoints_2d: np.ndarray        # (21, 2) image pixels, our keypoint order
    handedness: str                 # "left" or "right", for an ordinary (unmirrored) photo
    score: float                    # MediaPipe's handedness score (0-1)
    box: tuple = field(default=())  # (x0, y0, x1, y1): tight box around the keypoints

    def to_dict(self) -> dict:
        return {"keypoints_2d": self.keypoints_2d.tolist(), "handedness": self.handedness,
                "score": float(self.score), "box": [float(v) for v in self.box]}


def swap_handedness(label: str) -> str:
    """MediaPipe's label (mirrored-selfie convention) -> the hand's side in an ordinary photo."""
    label = label.lower()
    if label not in ("left", "right"):
        raise ValueError(f"handedness: expected 'Left' or 'Right' from MediaPipe, got {label!r}")
    return "right" if label == "left" else "left"


def _detections_from_result(result, width: int, height: int) -> list[Detection]:
    hands = []
    for landmarks, handedness in zip(result.multi_hand_landmarks or [], result.multi_handedness or []):
        pts = np.array([[lm.x * width - 0.5, lm.y * height - 0.5] for lm in landmarks.landmark])
        label = handedness.classification[0]
        box = (*pts.min(axis=0), *pts.max(axis=0))
        hands.append(Detection(pts, swap_handedness(label.label), float(label.score), tuple(float(v) for v in box)))
    return hands


class HandDetector:
    """MediaPipe Hands in static-image mode; one instance per process (it is not thread-safe)."""

    def __init__(self, max_num_hands: int = 4, min_detection_confidence: float = 0.3, second_pass: bool = True,
                 tiles: bool = True):
        import mediapipe as mp

        self._hands = mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=max_num_hands,
                                               min_detection_confidence=min_detection_confidence,
                                               model_complexity=1)
        self._single = mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=1,
                                                min_detection_confidence=min_detection_confidence,
                                                model_complexity=1) if second_pass or tiles else None
        self.second_pass = second_pass
        self.tiles = tiles
        self.max_num_hands = max_num_hands

    def close(self) -> None:
        for hands in (self._hands, self._single):
            if hands is not None:
                hands.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _run(self, hands, image: np.ndarray) -> list[Detection]:
        return _detections_from_result(hands.process(np.ascontiguousarray(image)), image.shape[1], image.shape[0])

    def detect(self, image) -> list[Detection]:
        """All hands in an RGB image (H, W, 3); grayscale and RGBA are converted."""
        image = check_image(image)
        factor = min(1.0, MAX_DETECTION_SIDE / max(image.shape[:2]))
        small = image if factor == 1.0 else _resize(image, factor)
        found = self._run(self._hands, small)
        if not found and self.tiles:
            found = self._tiled(small)
        for det in found:
            det.keypoints_2d = (det.keypoints_2d + 0.5) / factor - 0.5
            det.box = tuple((np.asarray(det.box) + 0.5) / factor - 0.5)
        if self.second_pass:
            found = [self._refine(image, det) for det in found]
        return found

    def _refine(self, image: np.ndarray, det: Detection) -> Detection:
        """Run again on the 2.2 l crop of a detection; keep the refined keypoints when it finds one hand."""
        transform = make_transform(image.shape, crop_box(det.keypoints_2d, None, 2.2), SECOND_PASS_SIZE, False)
        refined = self._run(self._single, crop_image(image, transform))
        if len(refined) != 1:
            return det
        pts = transform.to_image(refined[0].keypoints_2d)
        return Detection(pts, det.handedness, max(det.score, refined[0].score),
                         (*pts.min(axis=0), *pts.max(axis=0)))

    def _tiled(self, image: np.ndarray) -> list[Detection]:
        """Overlapping half-size tiles, each upscaled by MediaPipe's own resizing; duplicates merged."""
        h, w = image.shape[:2]
        size = max(h, w) // 2
        if size < 64:
            return []
        found: list[Detection] = []
        for y0 in np.linspace(0, max(h - size, 0), 3).astype(int):
            for x0 in np.linspace(0, max(w - size, 0), 3).astype(int):
                tile = image[y0:y0 + size, x0:x0 + size]
                for det in self._run(self._hands, tile):
                    det.keypoints_2d = det.keypoints_2d + [x0, y0]
                    det.box = (det.box[0] + x0, det.box[1] + y0, det.box[2] + x0, det.box[3] + y0)
                    if not any(_same_hand(det, other) for other in found):
                        found.append(det)
        return found[:self.max_num_hands]


def _same_hand(a: Detection, b: Detection) -> bool:
    scale = max(a.box[2] - a.box[0], a.box[3] - a.box[1], 1.0)
    return float(np.median(np.linalg.norm(a.keypoints_2d - b.keypoints_2d, axis=1))) < 0.2 * scale


def _resize(image: np.ndarray, factor: float) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)


def detector_from_config(config: dict) -> HandDetector:
    """The detector a profile's ``[detector]`` table describes."""
    section = config.get("detector", {})
    return HandDetector(max_num_hands=int(section.get("max_num_hands", 4)),
                        min_detection_confidence=float(section.get("min_detection_confidence", 0.3)),
                        second_pass=bool(section.get("second_pass", True)))


def keypoint_errors_at_crop(predicted, labels, visible=None, crop_scale: float = 2.2, crop_size: int = 320):
    """Per-keypoint distances (21,) between two sets of image keypoints, in pixels of the 320 crop
    of the labelled hand (the unit the network sees)."""
    labels = kp.check_keypoints(labels, "labels")[..., :2]
    predicted = kp.check_keypoints(predicted, "predicted")[..., :2]
    size = crop_box(labels, visible, crop_scale)[2]
    errors = np.linalg.norm(predicted - labels, axis=-1) * crop_size / size
    if visible is not None:
        errors = np.where(np.asarray(visible) > 0, errors, np.nan)
    return errors


def match_detection(detections: list[Detection], keypoints_2d, visible=None, crop_scale: float = 2.2):
    """The detection of the labelled hand (closest median keypoint), or None when none lies within
    half the labelled hand's size."""
    labels = kp.check_keypoints(keypoints_2d, "keypoints_2d")[..., :2]
    vis = np.ones(kp.NUM_KEYPOINTS, bool) if visible is None else np.asarray(visible) > 0
    if not detections:
        return None
    best = min(detections, key=lambda d: np.median(np.linalg.norm(d.keypoints_2d - labels, axis=1)[vis]))
    size = crop_box(labels, vis, 1.0)[2]
    return best if np.median(np.linalg.norm(best.keypoints_2d - labels, axis=1)[vis]) < 0.5 * size else None


def detection_report(detector: HandDetector, images, keypoints_2d, visible=None, sides=None) -> dict:
    """MediaPipe against labelled hands: detection rate, handedness accuracy where ``sides`` are
    known, and per-keypoint errors in pixels of the 320 crop of 2.2 l around each labelled hand."""
    errors, found, side_ok, side_known = [], [], 0, 0
    for i, image in enumerate(images):
        vis = None if visible is None else visible[i]
        det = match_detection(detector.detect(image), keypoints_2d[i], vis)
        found.append(det)
        if det is None:
            continue
        errors.append(keypoint_errors_at_crop(det.keypoints_2d, keypoints_2d[i], vis))
        if sides is not None and sides[i]:
            side_known += 1
            side_ok += det.handedness == sides[i]
    errors = np.array(errors) if errors else np.full((0, kp.NUM_KEYPOINTS), np.nan)
    stat = lambda f: (f(errors, axis=0).round(2).tolist() if len(errors) else [None] * kp.NUM_KEYPOINTS)  # noqa: E731
    return {
        "hands": len(images), "detected": int(sum(d is not None for d in found)),
        "handedness_correct": [side_ok, side_known],
        "median_px": float(np.nanmedian(errors)) if len(errors) else None,
        "mean_px": float(np.nanmean(errors)) if len(errors) else None,
        "per_keypoint": {"names": list(kp.KEYPOINT_NAMES), "mean_px": stat(np.nanmean),
                         "median_px": stat(np.nanmedian),
                         "p90_px": stat(lambda e, axis: np.nanpercentile(e, 90, axis=axis))},
        "detections": found,
    }
