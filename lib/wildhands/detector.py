"""The independent 2D hand detector: MediaPipe Hands (0.10.21, models inside the wheel, CPU, offline).

The paper feeds 2D joint heat-maps from an independent CNN (OpenPose hand); we use MediaPipe.
``HandDetector.detect(image)`` returns, per hand, 21 keypoints in image pixels in our order
(MediaPipe's landmark order is the OpenPose order), the hand's side in an ordinary photograph
and MediaPipe's handedness score. MediaPipe labels handedness as if the image were a mirrored
selfie, so its label is swapped. MediaPipe gives no per-keypoint confidence: callers use the
hand's score, or 1, for every keypoint.

Passes, all with one ``Hands`` object in static-image mode:

1. the whole photo (downscaled to ``MAX_DETECTION_SIDE`` if larger);
2. when pass 1 finds nothing, or only hands smaller than ``SMALL_HAND`` of the photo's longer
   side (people seen whole, whose other hand MediaPipe's palm detector often misses): 3 x 3
   overlapping tiles of half the longer side, which the palm detector sees at twice the
   scale. A hand cut by a tile's inner edge is dropped (a neighbouring tile holds it whole);
   a hand found more than once (box centres closer than half the larger l) is kept once,
   the highest score winning;
3. per hand, the 2.2 l crop around its keypoints at 320 pixels (``second_pass``): the hand
   fills the crop as it fills the network's input, and its keypoints replace the first
   ones when the crop pass finds the same hand there, at a size within 2/3 to 3/2 of the
   first (MediaPipe sometimes sees a small hand inside a fist on a crop).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import keypoints as kp
from .crops import crop_box, crop_image, make_transform
from .images import check_image

SECOND_PASS_SIZE = 320      # the refinement pass sees the paper's 2.2 l crop at 320 px
SECOND_PASS_SCALE = 2.2
MAX_DETECTION_SIDE = 1920   # larger photos are downscaled for pass 1 (coordinates mapped back)
MIN_TILE_SIDE = 64          # photos whose tiles would be smaller are not tiled
SMALL_HAND = 1 / 8          # hands with l under this fraction of the longer side send the photo to tiles


@dataclass
class Detection:
    """One hand found in an image."""
    keypoints_2d: np.ndarray   # (21, 2) image pixels, our keypoint order
    handedness: str            # "left" or "right", for an ordinary (unmirrored) photo
    score: float               # MediaPipe's handedness score (0-1)
    box: tuple                 # (x0, y0, x1, y1): tight box around the keypoints, image pixels

    def to_dict(self) -> dict:
        return {"keypoints_2d": self.keypoints_2d.tolist(), "handedness": self.handedness,
                "score": float(self.score), "box": [float(v) for v in self.box]}

    def moved(self, keypoints_2d: np.ndarray) -> "Detection":
        """The same hand with other keypoints (and their box)."""
        return Detection(keypoints_2d, self.handedness, self.score, tight_box(keypoints_2d))


def tight_box(points: np.ndarray) -> tuple:
    return tuple(float(v) for v in (*points.min(axis=0), *points.max(axis=0)))


def swap_handedness(label: str) -> str:
    """MediaPipe's label (mirrored-selfie convention) -> the hand's side in an ordinary photo."""
    label = label.lower()
    if label not in ("left", "right"):
        raise ValueError(f"handedness: expected 'Left' or 'Right' from MediaPipe, got {label!r}")
    return "right" if label == "left" else "left"


def detections_from_result(result, width: int, height: int) -> list[Detection]:
    """MediaPipe's result (normalised landmarks, handedness) -> ``Detection``s in pixels of a
    ``width`` x ``height`` image (pixel centres at integers)."""
    hands = []
    for landmarks, handedness in zip(result.multi_hand_landmarks or [], result.multi_handedness or []):
        pts = np.array([[lm.x * width - 0.5, lm.y * height - 0.5] for lm in landmarks.landmark])
        label = handedness.classification[0]
        hands.append(Detection(pts, swap_handedness(label.label), float(label.score), tight_box(pts)))
    return hands


def same_hand(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two (21, 2) keypoint sets are one hand: box centres closer than half the larger l."""
    (ax, ay, al), (bx, by, bl) = crop_box(a, None, 1.0), crop_box(b, None, 1.0)
    return float(np.hypot(ax - bx, ay - by)) < 0.5 * max(al, bl)


def merge_detections(detections: list[Detection], limit: int) -> list[Detection]:
    """At most ``limit`` hands, highest score first, each found hand once."""
    kept: list[Detection] = []
    for det in sorted(detections, key=lambda d: -d.score):
        if not any(same_hand(other.keypoints_2d, det.keypoints_2d) for other in kept):
            kept.append(det)
    return kept[:limit]


class HandDetector:
    """MediaPipe Hands in static-image mode, one ``Hands`` graph per instance (not thread-safe).

    ``max_num_hands``: hands per image at most; ``min_detection_confidence``: MediaPipe's palm
    detection threshold; ``second_pass``: refine each hand on its 2.2 l crop; ``tiles``: search
    tiles when the whole photo gives nothing or only small hands (pass 2). Use as a context
    manager, or call ``close()``.
    """

    def __init__(self, max_num_hands: int = 4, min_detection_confidence: float = 0.3, second_pass: bool = True,
                 tiles: bool = True):
        import mediapipe as mp

        if int(max_num_hands) != max_num_hands or max_num_hands < 1:
            raise ValueError(f"max_num_hands: expected a positive integer, got {max_num_hands}")
        if not 0.0 <= min_detection_confidence <= 1.0:
            raise ValueError(f"min_detection_confidence: expected a value in [0, 1], got {min_detection_confidence}")
        self.max_num_hands = int(max_num_hands)
        self.second_pass, self.tiles = bool(second_pass), bool(tiles)
        self._hands = mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=self.max_num_hands,
                                               min_detection_confidence=float(min_detection_confidence),
                                               model_complexity=1)

    def close(self) -> None:
        if self._hands is not None:
            self._hands.close()
            self._hands = None

    def __enter__(self) -> "HandDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def detect(self, image_rgb) -> list[Detection]:
        """All hands in an RGB image, at most ``max_num_hands``.

        ``image_rgb`` (H, W, 3) uint8; (H, W) grayscale and (H, W, 4) RGBA are converted (alpha
        dropped), floats in [0, 1] scaled; sides under 16 pixels are an error. Photos larger
        than ``MAX_DETECTION_SIDE`` are searched downscaled, refined at full resolution.
        """
        if self._hands is None:
            raise RuntimeError("HandDetector: detect() after close()")
        image = check_image(image_rgb, "image_rgb")
        factor = min(1.0, MAX_DETECTION_SIDE / max(image.shape[:2]))
        small = image if factor == 1.0 else _resize(image, factor)
        found = self._run(small)
        if self.tiles and _needs_tiles(found, small.shape):
            found = merge_detections(found + self._tiled(small), self.max_num_hands)
        found = [d.moved((d.keypoints_2d + 0.5) / factor - 0.5) for d in found]
        if self.second_pass:
            found = [self._refine(image, d) for d in found]
        return found

    def _run(self, image: np.ndarray) -> list[Detection]:
        result = self._hands.process(np.ascontiguousarray(image))
        return detections_from_result(result, image.shape[1], image.shape[0])

    def _refine(self, image: np.ndarray, det: Detection) -> Detection:
        """Pass 3: the hand's keypoints found again on its 2.2 l crop, when the crop shows it."""
        box = crop_box(det.keypoints_2d, None, SECOND_PASS_SCALE)
        transform = make_transform(image.shape, box, SECOND_PASS_SIZE)
        for candidate in self._run(crop_image(image, transform)):
            points = transform.to_image(candidate.keypoints_2d)
            ratio = crop_box(points, None, 1.0)[2] / crop_box(det.keypoints_2d, None, 1.0)[2]
            if same_hand(det.keypoints_2d, points) and 2 / 3 < ratio < 3 / 2:
                return det.moved(points)
        return det

    def _tiled(self, image: np.ndarray) -> list[Detection]:
        """Pass 2: the hands found whole on overlapping tiles of half the longer side.

        A hand cut by a tile's inner edge gives MediaPipe a partial view and wrong keypoints;
        its neighbouring tiles hold it whole (the tiles overlap by half), so it is dropped.
        """
        h, w = image.shape[:2]
        size = max(h, w) // 2
        if size < MIN_TILE_SIDE:
            return []
        found = []
        for y0 in np.linspace(0, max(h - size, 0), 3).astype(int):
            for x0 in np.linspace(0, max(w - size, 0), 3).astype(int):
                tile = image[y0:y0 + size, x0:x0 + size]
                inner = (x0 > 0, y0 > 0, x0 + tile.shape[1] < w, y0 + tile.shape[0] < h)
                found += [d.moved(d.keypoints_2d + [x0, y0]) for d in self._run(tile)
                          if not _touches(d.keypoints_2d, tile.shape, inner)]
        return found


def _touches(points: np.ndarray, shape, inner) -> bool:
    """Whether a hand reaches within a tenth of its size l of one of a tile's ``inner``
    (left, top, right, bottom) edges."""
    margin = 0.1 * crop_box(points, None, 1.0)[2]
    low, high = points.min(axis=0) - margin, points.max(axis=0) + margin
    limits = (low[0] < 0, low[1] < 0, high[0] > shape[1] - 1, high[1] > shape[0] - 1)
    return any(edge and beyond for edge, beyond in zip(inner, limits))


def _needs_tiles(found: list[Detection], shape) -> bool:
    longest = max(shape[:2])
    return not found or max(crop_box(d.keypoints_2d, None, 1.0)[2] for d in found) < SMALL_HAND * longest


def _resize(image: np.ndarray, factor: float) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)


DETECTOR_SETTINGS = ("max_num_hands", "min_detection_confidence", "second_pass", "tiles")


def detector_from_config(config: dict) -> HandDetector:
    """The detector a profile's ``[detector]`` table describes (missing keys: the defaults)."""
    section = config.get("detector", {})
    return HandDetector(**{key: section[key] for key in DETECTOR_SETTINGS if key in section})


# ----------------------------------------------------------------------------- measuring it

def keypoint_errors_at_crop(predicted, labels, visible=None, crop_scale: float = 2.2,
                            crop_size: int = 320) -> np.ndarray:
    """Per-keypoint distances (21,) between two sets of image keypoints, in pixels of the 320 crop
    of 2.2 l around the labelled hand (the unit the network sees); NaN where not visible."""
    labels = kp.check_keypoints(labels, "labels")[..., :2]
    predicted = kp.check_keypoints(predicted, "predicted")[..., :2]
    size = crop_box(labels, visible, crop_scale)[2]
    errors = np.linalg.norm(predicted - labels, axis=-1) * crop_size / size
    if visible is not None:
        errors = np.where(np.asarray(visible) > 0, errors, np.nan)
    return errors


def match_detection(detections: list[Detection], keypoints_2d, visible=None) -> Detection | None:
    """The detection of the labelled hand (smallest median keypoint distance), or None when
    none lies within half the labelled hand's size l."""
    labels = kp.check_keypoints(keypoints_2d, "keypoints_2d")[..., :2]
    vis = np.ones(kp.NUM_KEYPOINTS, bool) if visible is None else np.asarray(visible) > 0
    if not detections:
        return None
    distance = [float(np.median(np.linalg.norm(d.keypoints_2d - labels, axis=1)[vis])) for d in detections]
    best = int(np.argmin(distance))
    return detections[best] if distance[best] < 0.5 * crop_box(labels, vis, 1.0)[2] else None


def detection_report(detector: HandDetector, images, keypoints_2d, visible=None, sides=None) -> dict:
    """MediaPipe against labelled hands: detection and miss rates, handedness accuracy where
    ``sides`` are known, per-keypoint errors in pixels of the 320 crop of 2.2 l around each
    labelled hand (mean, median, 90th percentile over detected hands), and the matched
    ``detections`` (None: missed) for figures."""
    errors, found, side_ok, side_known = [], [], 0, 0
    for i, image in enumerate(images):
        vis = None if visible is None else visible[i]
        det = match_detection(detector.detect(image), keypoints_2d[i], vis)
        found.append(det)
        errors.append(np.full(kp.NUM_KEYPOINTS, np.nan) if det is None
                      else keypoint_errors_at_crop(det.keypoints_2d, keypoints_2d[i], vis))
        if det is not None and sides is not None and sides[i]:
            side_known += 1
            side_ok += det.handedness == sides[i]
    errors = np.array(errors).reshape(-1, kp.NUM_KEYPOINTS)
    detected = int(sum(d is not None for d in found))
    hit = errors[[d is not None for d in found]]

    def stat(f):
        return np.round(f(hit), 2).tolist() if len(hit) else [None] * kp.NUM_KEYPOINTS

    return {
        "hands": len(found), "detected": detected,
        "miss_rate": 1.0 - detected / len(found) if found else None,
        "handedness_correct": [side_ok, side_known],
        "median_px": float(np.nanmedian(hit)) if len(hit) else None,
        "mean_px": float(np.nanmean(hit)) if len(hit) else None,
        "per_keypoint": {"names": list(kp.KEYPOINT_NAMES),
                         "mean_px": stat(lambda e: np.nanmean(e, axis=0)),
                         "median_px": stat(lambda e: np.nanmedian(e, axis=0)),
                         "p90_px": stat(lambda e: np.nanpercentile(e, 90, axis=0))},
        "detections": found,
    }
