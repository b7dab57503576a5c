"""Hands found through the people holding them: MediaPipe Pose (0.10.21, its full model, inside the
wheel, CPU, offline) gives each visible person's elbows, wrists and the pose model's index and
pinky points; this module owns what follows from them.

1. ``arms_from_pose``: the arms whose wrist the pose model sees (visibility at least
   ``min_wrist_visibility``), with the person's side (MediaPipe Pose names landmarks by the
   person's own side, so no swap is needed, unlike MediaPipe Hands' mirrored-selfie labels).
2. ``hand_box``: a square box around the hand from the arm alone. The hand's size l (the edge of
   the tightest square around its 21 keypoints) is the larger of ``hand_per_forearm`` times the
   forearm (elbow to wrist) and ``hand_per_knuckles`` times the wrist-to-knuckles distance (the
   mean of the index and pinky points), so a foreshortened forearm does not shrink the box; the
   box's centre lies half an l from the wrist, towards the knuckles (along the forearm when the
   knuckle points sit on the wrist).
3. ``BodyFinder.people``: every person, by repeated runs of the pose model with the people
   already found painted out (``max_people`` at most); when the whole photo shows nobody,
   overlapping tiles of 1/2, 1/3, ... of its longer side (``tile_levels`` sizes) are searched:
   the pose detector misses people much smaller than its view (the cameraman 145 px tall is
   missed in a 512 px view, found in a 384 px one).
4. ``BodyFinder.find_hands``: for each arm with no hand found near its wrist, the box's crop
   (``crop_scales`` l at ``crop_size`` pixels: first 2.2 l, the scale of the detector's
   refinement crop, then a wider one if that shows nothing; for a small hand, whose crops are
   magnified blurs, last a window of ``NATIVE_VIEW_SIDE`` px at the photo's own resolution:
   ``arm_views``) goes through the caller's hand pass;
   a hand it finds is kept when its score reaches ``min_hand_score`` and its wrist lies within
   ``max_wrist_offset`` l of the pose wrist. Its side is the body's. ``found_by = "body"``.
5. ``fallback_keypoints`` (off unless ``low_confidence`` is set): when the hand pass reads nothing
   in the crop, a template hand placed on the body's wrist, index and pinky points at the
   forearm's scale, marked ``low_confidence``. Measured on the person composites of
   ``benchmarks/bench_detector.py``: of the 11 hands the passes miss, 1 got such a guess within
   half a hand of its labels, 53 px at the 320 crop off (the read hands: 15-26), while the arms
   the pose model imagines in hand-free photos got 0.38 false hands per photo (the read pass:
   0), so it is off in the profiles.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wildhands.data.crops import crop_box, crop_image, make_transform
from wildhands.data.detection import Detection, tight_box
from wildhands.hand.camera import CROP_SCALE, CROP_SIZE

# MediaPipe Pose landmark indices per side of the person: elbow, wrist, pinky, index points.
POSE_ARMS = {"left": (13, 15, 17, 19), "right": (14, 16, 18, 20)}
MIN_PEOPLE_TILE_SIDE = 160  # smaller tiles are not searched for people (a person there is too small for a hand crop)
# Views of a small hand at the photo's own resolution (the detector's refinement uses them too): a window
# this large, MediaPipe's palm-detector input side, tried when a crop would magnify more than this.
NATIVE_VIEW_SIDE = 192
MAX_CROP_UPSAMPLING = 2.0

# A right hand, palm towards the camera, fingers up, in units of its length (wrist to middle tip),
# wrist at the origin, in our keypoint order: an average adult hand drawn from the DESIGN.md
# proportions (the fingers' MCP-PIP-DIP-tip spacing 0.22 / 0.14 / 0.13 of the length).
TEMPLATE_HAND = np.array([
    [0.00, 0.00],
    [0.12, -0.12], [0.24, -0.24], [0.33, -0.35], [0.40, -0.45],
    [0.11, -0.47], [0.13, -0.68], [0.14, -0.81], [0.15, -0.93],
    [0.00, -0.50], [0.00, -0.72], [0.00, -0.86], [0.00, -1.00],
    [-0.10, -0.46], [-0.11, -0.66], [-0.12, -0.79], [-0.13, -0.91],
    [-0.19, -0.41], [-0.22, -0.56], [-0.24, -0.66], [-0.25, -0.75]])
TEMPLATE_ANCHORS = (0, 5, 17)   # wrist, index MCP, pinky MCP: where the pose model's points sit


@dataclass(frozen=True)
class BodySettings:
    """The ``[detector]`` body-pass settings (profile keys ``body_*``; units in the profile)."""
    min_wrist_visibility: float = 0.5
    hand_per_forearm: float = 0.7
    hand_per_knuckles: float = 2.2
    crop_scales: tuple = (CROP_SCALE, 3.0, 4.0)
    crop_size: int = CROP_SIZE
    min_hand_score: float = 0.5
    max_wrist_offset: float = 1.0
    max_people: int = 3
    tile_levels: int = 2
    low_confidence: bool = False

    def __post_init__(self):
        if not self.crop_scales or any(not scale > 0 for scale in self.crop_scales):
            raise ValueError(f"[detector] body_crop_scales: expected positive crop scales, got {self.crop_scales}")
        object.__setattr__(self, "crop_scales", tuple(float(v) for v in self.crop_scales))
        for name in ("hand_per_forearm", "hand_per_knuckles", "max_wrist_offset"):
            if not getattr(self, name) > 0:
                raise ValueError(f"[detector] body_{name}: expected a positive number, got {getattr(self, name)}")
        for name in ("min_wrist_visibility", "min_hand_score"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"[detector] body_{name}: expected a value in [0, 1], got {getattr(self, name)}")
        if int(self.tile_levels) != self.tile_levels or self.tile_levels < 0:
            raise ValueError(f"[detector] body_tile_levels: expected an integer >= 0, got {self.tile_levels}")
        if int(self.max_people) != self.max_people or self.max_people < 1:
            raise ValueError(f"[detector] body_max_people: expected a positive integer, got {self.max_people}")
        if int(self.crop_size) != self.crop_size or self.crop_size < 64:
            raise ValueError(f"[detector] body_crop_size: expected an integer of at least 64 px, got {self.crop_size}")


@dataclass(frozen=True)
class Arm:
    """One arm of one person, in image pixels."""
    side: str                 # "left" or "right": the person's own side
    elbow: np.ndarray         # (2,)
    wrist: np.ndarray         # (2,)
    pinky: np.ndarray         # (2,) the pose model's pinky point (near the pinky knuckle)
    index: np.ndarray         # (2,) the pose model's index point (near the index knuckle)
    visibility: float         # the pose model's wrist visibility (0-1)
    person: int = 0


def arms_from_pose(points: np.ndarray, visibility: np.ndarray, min_visibility: float, person: int = 0) -> list[Arm]:
    """The arms of one person whose wrist is visible: ``points`` (33, 2) pose landmarks in pixels,
    ``visibility`` (33,) the pose model's visibility."""
    points, visibility = np.asarray(points, float), np.asarray(visibility, float)
    if points.shape != (33, 2) or visibility.shape != (33,):
        raise ValueError(f"pose landmarks: expected (33, 2) points and (33,) visibility, got {points.shape} "
                         f"and {visibility.shape}")
    return [Arm(side, *(points[i] for i in ids), float(visibility[ids[1]]), person)
            for side, ids in POSE_ARMS.items() if visibility[ids[1]] >= min_visibility]


def hand_size(arm: Arm, settings: BodySettings) -> float:
    """The hand's expected l (px): from the forearm, or from the knuckle points when larger."""
    forearm = float(np.linalg.norm(arm.wrist - arm.elbow))
    knuckles = float(np.linalg.norm((arm.index + arm.pinky) / 2 - arm.wrist))
    return max(settings.hand_per_forearm * forearm, settings.hand_per_knuckles * knuckles, 1.0)


def hand_direction(arm: Arm) -> np.ndarray:
    """Unit vector from the wrist into the hand: towards the knuckle points, else along the forearm."""
    for vector in ((arm.index + arm.pinky) / 2 - arm.wrist, arm.wrist - arm.elbow):
        norm = float(np.linalg.norm(vector))
        if norm > 1e-6:
            return vector / norm
    return np.array([0.0, 1.0])


def hand_box(arm: Arm, settings: BodySettings) -> tuple[float, float, float]:
    """(cx, cy, l): the square box the arm's hand is expected in (l its expected size)."""
    size = hand_size(arm, settings)
    centre = arm.wrist + 0.5 * size * hand_direction(arm)
    return float(centre[0]), float(centre[1]), size


def fallback_keypoints(arm: Arm, settings: BodySettings) -> np.ndarray:
    """(21, 2) a template hand on the arm: rotation (and mirror, which also fixes which side the
    thumb is on) fitted by least squares to the pose model's wrist, index and pinky points, scale
    from ``hand_size``. A low-confidence guess: the fingers' pose is unknown."""
    length = hand_size(arm, settings) / np.ptp(TEMPLATE_HAND, axis=0).max()  # template l -> hand l
    source = TEMPLATE_HAND[list(TEMPLATE_ANCHORS)] * length
    target = np.stack([arm.wrist, arm.index, arm.pinky])
    best = None
    for mirror in (1.0, -1.0):
        src = source * [mirror, 1.0]
        src_c, tgt_c = src - src.mean(0), target - target.mean(0)
        u, _, vt = np.linalg.svd(src_c.T @ tgt_c)
        rotation = u @ vt
        if np.linalg.det(rotation) < 0:   # a proper rotation; the mirror is the outer loop's
            rotation = u @ np.diag([1.0, -1.0]) @ vt
        residual = float(np.square(src_c @ rotation - tgt_c).sum())
        if best is None or residual < best[0]:
            best = (residual, mirror, rotation, target.mean(0) - src.mean(0) @ rotation)
    _, mirror, rotation, shift = best
    return (TEMPLATE_HAND * length * [mirror, 1.0]) @ rotation + shift


class BodyFinder:
    """MediaPipe Pose in static-image mode (one graph, not thread-safe) and the body pass on it."""

    def __init__(self, settings: BodySettings | None = None):
        import mediapipe as mp

        self.settings = settings or BodySettings()
        # model_complexity 1: the full model, the one the wheel ships (lite and heavy are downloads)
        self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1, min_detection_confidence=0.5)

    def close(self) -> None:
        if self._pose is not None:
            self._pose.close()
            self._pose = None

    def _pose_once(self, image: np.ndarray):
        result = self._pose.process(np.ascontiguousarray(image))
        if result.pose_landmarks is None:
            return None
        h, w = image.shape[:2]
        marks = result.pose_landmarks.landmark
        points = np.array([[m.x * w - 0.5, m.y * h - 0.5] for m in marks])
        return points, np.array([m.visibility for m in marks])

    def people(self, image: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every person's (33, 2) landmarks (pixels) and (33,) visibility: the pose model finds one
        person per run, so each one found is painted out (grey over their landmarks' box, grown by
        a quarter) before the next run."""
        if self._pose is None:
            raise RuntimeError("BodyFinder: people() after close()")
        found = self._search(image)
        if not found:
            found = self._tiled(image)
        return found

    def _search(self, image: np.ndarray) -> list:
        found, view = [], image
        for _ in range(int(self.settings.max_people)):
            person = self._pose_once(view)
            if person is None:
                break
            found.append(person)
            if len(found) < self.settings.max_people:
                view = _painted_out(view, person[0])
        return found

    def _tiled(self, image: np.ndarray) -> list:
        """People too small for the pose detector on the whole photo: tiles of 1/2, 1/3, ... of
        the longer side, overlapping by half, down to ``MIN_PEOPLE_TILE_SIDE``; the first level
        that shows somebody ends the search (a photo's people tend to be of one size)."""
        h, w = image.shape[:2]
        found = []
        for parts in range(2, 2 + int(self.settings.tile_levels)):
            size = max(h, w) // parts
            if size < MIN_PEOPLE_TILE_SIDE:
                break
            for y0 in _tile_starts(h, size):
                for x0 in _tile_starts(w, size):
                    person = self._pose_once(image[y0:y0 + size, x0:x0 + size])
                    if person is None:
                        continue
                    points = person[0] + [x0, y0]
                    if not any(np.median(np.linalg.norm(points - other[0], axis=1)) < 0.1 * size for other in found):
                        found.append((points, person[1]))
            if found:
                break
        return found

    def arms(self, image: np.ndarray) -> list[Arm]:
        arms = []
        for i, (points, visibility) in enumerate(self.people(image)):
            arms += arms_from_pose(points, visibility, self.settings.min_wrist_visibility, person=i)
        return arms

    def find_hands(self, image: np.ndarray, found: list, run_hands, arms: list[Arm] | None = None,
                   native_view: bool = True) -> list:
        """The hands of the arms that ``found`` (``detector.Detection``s in image pixels) leaves
        without one. ``run_hands(crop)`` is the hand landmark pass: a crop -> ``Detection``s in
        crop pixels. ``arms``: the image's arms when already known (else the pose model runs);
        ``native_view``: also search small hands at the photo's resolution (``arm_views``)."""
        settings = self.settings
        arms = self.arms(image) if arms is None else arms
        hands = []
        for arm in arms:
            box = hand_box(arm, settings)
            if any(_covers(d, arm, box, settings) for d in list(found) + hands if not d.low_confidence):
                continue
            candidates = []
            for transform in arm_views(image.shape, box, settings, native_view):  # the next if one finds none
                candidates = [d.mapped(transform.to_image, 1.0 / transform.zoom)
                              for d in run_hands(crop_image(image, transform))]
                candidates = [d for d in candidates
                              if d.score >= settings.min_hand_score and _covers(d, arm, box, settings)]
                if candidates:
                    break
            if candidates:
                best = max(candidates, key=lambda d: d.score)
                hands.append(best.moved(best.keypoints_2d, handedness=arm.side, found_by="body"))
            elif settings.low_confidence:
                points = fallback_keypoints(arm, settings)
                hands.append(Detection(points, arm.side, 0.0, tight_box(points), found_by="body", low_confidence=True))
        return hands


def arm_views(image_shape, box, settings: BodySettings, native_view: bool = True) -> list:
    """The crops searched for an arm's hand (``box`` = (cx, cy, expected l)), in the order tried: the
    ``crop_scales`` at ``crop_size`` px, then, when ``native_view`` and the widest of them magnifies
    the photo more than ``MAX_CROP_UPSAMPLING``, a window of ``NATIVE_VIEW_SIDE`` px (or the widest
    crop, when larger) at the photo's own resolution: a 20 px hand magnified 4 times is a blur where
    the palm detector often sees nothing."""
    views = [make_transform(image_shape, (box[0], box[1], scale * box[2]), settings.crop_size)
             for scale in settings.crop_scales]
    widest = max(settings.crop_scales) * box[2]
    if native_view and settings.crop_size / widest > MAX_CROP_UPSAMPLING:
        side = max(widest, float(NATIVE_VIEW_SIDE))
        views.append(make_transform(image_shape, (box[0], box[1], side), round(side)))
    return views


def _covers(hand, arm: Arm, box, settings: BodySettings) -> bool:
    """Whether ``hand`` (a ``Detection``) is this arm's: its wrist within ``max_wrist_offset``
    times the larger of its l and the arm's expected l of the arm's wrist. (The pose model
    underestimates a small person's forearm, and two hands on one object lie close together.)"""
    size = max(box[2], crop_box(hand.keypoints_2d, None, 1.0)[2])
    return float(np.linalg.norm(hand.keypoints_2d[0] - arm.wrist)) <= settings.max_wrist_offset * size


def _tile_starts(length: int, size: int) -> list[int]:
    """Tile origins along one side: a stride of half a tile, the last tile flush with the edge."""
    if length <= size:
        return [0]
    return sorted(set(range(0, length - size, max(1, size // 2))) | {length - size})


def _painted_out(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    low, high = points.min(0), points.max(0)
    grow = 0.25 * (high - low)
    x0, y0 = np.clip(np.floor(low - grow), 0, [w, h]).astype(int)
    x1, y1 = np.clip(np.ceil(high + grow), 0, [w, h]).astype(int)
    out = image.copy()
    out[y0:y1, x0:x1] = 128
    return out
