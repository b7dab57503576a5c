"""Training-time jitter and detector-like keypoints.

- ``augment_sample``: colour, scale, in-plane rotation and translation jitter (``AugmentSettings``,
  the ``[augment]`` table), applied consistently to the image, mask, 2D and 3D keypoints and the
  camera (an in-plane rotation by a turns R into Rz(a) R and moves t; a zoom by k multiplies s by k);
- ``DetectorNoise`` / ``detector_keypoints``: 2D keypoints that look like MediaPipe's
  (per-keypoint jitter from measured errors, a per-hand offset and zoom, occasional
  hallucinated keypoints, swapped fingers and mirrored hands), from which the heat-map
  channels are drawn at training time, so the 2D variants work on detector-fed photos;
  its per-keypoint sigma is also the refinement's fallback expected error of a detector keypoint
  (``DetectorNoise.from_config``: the ``[noise]`` table);
- ``ArticulatedNoise`` / ``articulated_keypoints``: detector-like keypoints whose errors are mostly
  those of a plausible hand in another pose, as MediaPipe's are (for benchmarks of the refinement);
- ``WorldLandmarkNoise`` / ``world_landmarks``: 3D keypoints that look like MediaPipe's world
  landmarks (a turned, rescaled hand whose finger bones are bent a little, errors accumulating
  down each finger), for benchmarks of the refinement's 3D term on captured poses.

Pixel coordinates: x right, y down, pixel centres at integers, in the crop.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from wildhands.config import TableSettings, setting
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import CROP_SIZE, rotation_matrices, rotation_z, tight_square
from wildhands.paths import PROJECT_ROOT

# Fallback mean Euclidean error (px at the 320 crop) of a MediaPipe keypoint by joint level,
# used when no measured statistics file exists: wrist, CMC/MCP, PIP, DIP/IP, tip.
DEFAULT_ERROR_BY_LEVEL_PX = (6.0, 5.0, 5.5, 6.5, 7.5)


# Adjacent non-thumb fingers, the pairs a detector confuses.
SWAPPABLE_FINGERS = (("index", "middle"), ("middle", "ring"), ("ring", "pinky"))


def similarity_matrix(angle_rad: float, zoom: float, shift, crop_size: int) -> np.ndarray:
    """2x3 map p' = zoom * Rot(angle) (p - c) + c + shift, c the crop centre (pixels, y down)."""
    c = (crop_size - 1) / 2.0
    cos, sin = np.cos(angle_rad) * zoom, np.sin(angle_rad) * zoom
    linear = np.array([[cos, -sin], [sin, cos]])
    offset = np.array([c, c]) + np.asarray(shift, float) - linear @ np.array([c, c])
    return np.hstack([linear, offset[:, None]])


@dataclass(frozen=True)
class AugmentSettings(TableSettings):
    """The ``[augment]`` table: per-sample jitter (``augment_sample``)."""
    TABLE = "augment"
    color: float
    scale: float
    rotation_deg: float
    translation: float


def augment_sample(sample: dict, rng: np.random.Generator, augment: AugmentSettings, crop_size: int = CROP_SIZE,
                   image_size: int | None = None) -> dict:
    """A jittered copy of ``sample`` (``augment``: color, scale, rotation_deg, translation).

    Geometry: rotation uniform in +-rotation_deg, zoom log-uniform in [1/(1+scale), 1+scale],
    shift uniform in +-translation * crop_size per axis, about the crop centre. Colour:
    brightness, contrast and saturation factors uniform in [1 - color, 1 + color]. The image is
    returned at ``image_size`` (default: the crop size), colour-jittered after resizing.
    """
    import cv2

    out = dict(sample)
    angle = np.deg2rad(rng.uniform(-1, 1) * augment.rotation_deg)
    zoom = float(np.exp(rng.uniform(-1, 1) * np.log1p(augment.scale)))
    shift = rng.uniform(-1, 1, size=2) * augment.translation * crop_size
    color = rng.uniform(-1, 1, size=3) * augment.color
    matrix = similarity_matrix(angle, zoom, shift, crop_size)
    linear = matrix[:, :2]

    out["keypoints_2d"] = (sample["keypoints_2d"] @ linear.T + matrix[:, 2]).astype(np.float32)
    rot = rotation_z(angle)
    out["keypoints_3d"] = (sample["keypoints_3d"] @ rot.T).astype(np.float32)
    if "trans" in sample:
        out["trans"] = (linear @ sample["trans"] + matrix[:, 2]).astype(np.float32)
        out["scale"] = (np.asarray(sample["scale"]) * zoom).astype(np.float32)
        camera = cv2.Rodrigues(np.asarray(sample["global_orient"], np.float64).reshape(3))[0]
        out["global_orient"] = cv2.Rodrigues(rot @ camera)[0].reshape(3).astype(np.float32)
    size = (crop_size, crop_size)
    if sample.get("image") is not None:
        image = cv2.warpAffine(sample["image"], matrix, size, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        out["image"] = _jitter_colour(resize_image(image, image_size or crop_size), *(1.0 + color))
    if sample.get("mask") is not None:
        out["mask"] = cv2.warpAffine(sample["mask"], matrix, size, flags=cv2.INTER_NEAREST,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out


def _jitter_colour(image: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    img = image.astype(np.float32) * brightness
    grey = img.mean(-1, keepdims=True)
    img = grey + (img - grey) * saturation
    img = img.mean() + (img - img.mean()) * contrast
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


@dataclass
class DetectorNoise:
    """How MediaPipe-like 2D keypoints differ from the truth, in pixels of the 320 crop."""
    keypoint_sigma_px: np.ndarray = field(default_factory=lambda: _level_errors(DEFAULT_ERROR_BY_LEVEL_PX))
    global_shift_px: float = 3.0        # per-hand offset (std per axis)
    global_scale: float = 0.03          # per-hand zoom about the hand centre (std)
    hallucinate_probability: float = 0.02   # per keypoint: replaced by a point anywhere near the hand
    swap_probability: float = 0.03      # per hand: two adjacent fingers exchanged
    mirror_probability: float = 0.02    # per hand: wrong handedness, keypoints mirrored
    clean_probability: float = 0.1      # per hand: exact keypoints (as clean labels feed the network)
    error_scale: float = 1.0            # multiplies the per-keypoint sigma (1: as measured)
    source: str = "defaults"

    @classmethod
    def from_config(cls, config: dict) -> "DetectorNoise":
        """From the profile's ``[noise]`` table (every field but the sigma and its source) and, when
        present, the measured statistics file it names (``stats``; "": none)."""
        stats_path = setting(config, "noise", "stats")
        noise = cls(**{name: setting(config, "noise", name) for name in cls.__dataclass_fields__
                       if name not in ("keypoint_sigma_px", "source")})
        if stats_path:
            path = Path(stats_path)
            path = path if path.is_absolute() else PROJECT_ROOT / path
            if path.is_file():
                noise.keypoint_sigma_px = _sigma_from_stats(path)
                noise.source = str(path)
        return noise


def _level_errors(by_level) -> np.ndarray:
    """Per-keypoint Gaussian sigma per axis from a mean Euclidean error per joint level."""
    level = np.array([0] + [1, 2, 3, 4] * 5)
    # For an isotropic 2D Gaussian, mean Euclidean error = sigma * sqrt(pi / 2).
    return np.asarray(by_level, float)[level] / np.sqrt(np.pi / 2)


def _sigma_from_stats(path: Path) -> np.ndarray:
    """Per-keypoint Gaussian sigma (px at 320) from the detector statistics file.

    Uses the median error (robust to the file's heavy tails, which ``hallucinate_probability``
    models instead): for an isotropic 2D Gaussian, median error = sigma * sqrt(2 ln 2). Falls
    back to the mean error (= sigma * sqrt(pi / 2)).
    """
    try:
        stats = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"noise.stats: {path} is not readable JSON: {err}") from err
    per_keypoint = stats.get("per_keypoint", {}) if isinstance(stats, dict) else {}
    for key, factor in (("median_px", 1 / np.sqrt(2 * np.log(2))), ("mean_px", 1 / np.sqrt(np.pi / 2))):
        values = per_keypoint.get(key)
        if values is not None and np.shape(values) == (kp.NUM_KEYPOINTS,):
            return np.asarray(values, float) * factor
    raise ValueError(f"noise.stats: {path} has no per_keypoint 'median_px' or 'mean_px' list of "
                     f"{kp.NUM_KEYPOINTS} numbers")


def detector_keypoints(keypoints_2d: np.ndarray, rng: np.random.Generator, noise: DetectorNoise) -> np.ndarray:
    """(21, 2) keypoints as a detector might return them for a hand whose true keypoints are given."""
    points = np.asarray(keypoints_2d, np.float64).copy()
    if rng.random() < noise.clean_probability:
        return points.astype(np.float32)
    centre, extent = tight_square(points)
    extent = max(extent, 1.0)
    if rng.random() < noise.mirror_probability:
        points[:, 0] = 2 * centre[0] - points[:, 0]
    if rng.random() < noise.swap_probability:
        a, b = SWAPPABLE_FINGERS[rng.integers(len(SWAPPABLE_FINGERS))]
        ia, ib = list(kp.FINGER_KEYPOINTS[a]), list(kp.FINGER_KEYPOINTS[b])
        points[ia + ib] = points[ib + ia]
    zoom = 1.0 + noise.global_scale * rng.standard_normal()
    points = centre + zoom * (points - centre) + noise.global_shift_px * rng.standard_normal(2)
    points += noise.error_scale * noise.keypoint_sigma_px[:, None] * rng.standard_normal((kp.NUM_KEYPOINTS, 2))
    wild = rng.random(kp.NUM_KEYPOINTS) < noise.hallucinate_probability
    if wild.any():
        points[wild] = centre + (rng.random((int(wild.sum()), 2)) - 0.5) * 1.2 * extent
    return points.astype(np.float32)


def _check_noise_fields(noise, also: bool = True, also_text: str = "") -> None:
    """A noise model's fields must all be finite and >= 0 (and ``also``): else an error naming them."""
    values = {name: getattr(noise, name) for name in noise.__dataclass_fields__}
    if not all(np.isfinite(v) and v >= 0 for v in values.values()) or not also:
        raise ValueError(f"{type(noise).__name__}: expected finite values >= 0{also_text}, got {values}")


@dataclass(frozen=True)
class ArticulatedNoise:
    """MediaPipe-like 2D keypoint errors shaped as those of a plausible hand in another pose.

    ``detector_keypoints`` jitters each keypoint on its own: errors a hand model mostly fits away.
    MediaPipe's are not. With no prior (``app.photo_eval.model_reach_px``), our model comes within
    2.4 px@320 of MediaPipe's keypoints on the 19 calibration photos (median over hands; they lie
    14.9 px from the labels), and within 4.2 px of ``detector_keypoints``' on DexYCB views (11.5 px
    median error): MediaPipe's errors are mostly a hand's. Here each bone of the true 2D skeleton is
    first turned in the image by a normal angle (``palm_turn_sigma`` rad for the wrist-to-knuckle
    bones, ``bone_turn_sigma`` for the finger bones, the turns accumulating down each finger) and
    stretched by a normal fraction ``length_sigma``; ``detector_keypoints`` then adds its offsets,
    zoom, swaps, hallucinations and its per-keypoint jitter times ``independent_share``. The
    defaults, on 150 DexYCB training-subject views, give 11.2 px median error, within 2.4 px of the
    hand model. ``DetectorNoise.error_scale`` scales the turns and stretches as it scales the jitter.
    """
    palm_turn_sigma: float = 0.08
    bone_turn_sigma: float = 0.12
    length_sigma: float = 0.08
    independent_share: float = 0.45

    def __post_init__(self):
        _check_noise_fields(self)


def articulated_keypoints(keypoints_2d: np.ndarray, rng: np.random.Generator, noise: DetectorNoise,
                          articulation: ArticulatedNoise = ArticulatedNoise()) -> np.ndarray:
    """(21, 2) keypoints as MediaPipe might return them (``ArticulatedNoise``) for a hand whose true
    keypoints are given, in pixels of the 320 crop."""
    points = np.asarray(keypoints_2d, np.float64)
    if points.shape != (kp.NUM_KEYPOINTS, 2) or not np.isfinite(points).all():
        raise ValueError(f"keypoints_2d: expected {kp.NUM_KEYPOINTS} finite 2D points, got shape {points.shape}")
    scale = noise.error_scale
    out, turn = points.copy(), np.zeros(kp.NUM_KEYPOINTS)
    for parent, child in kp.BONES:
        sigma = articulation.palm_turn_sigma if parent == kp.ROOT else articulation.bone_turn_sigma
        turn[child] = (turn[parent] if parent != kp.ROOT else 0.0) + scale * sigma * rng.standard_normal()
        cos, sin = np.cos(turn[child]), np.sin(turn[child])
        bone = points[child] - points[parent]
        stretch = 1.0 + scale * articulation.length_sigma * rng.standard_normal()
        out[child] = out[parent] + stretch * np.array([cos * bone[0] - sin * bone[1], sin * bone[0] + cos * bone[1]])
    jitter = replace(noise, error_scale=scale * articulation.independent_share)
    return detector_keypoints(out, rng, jitter)


@dataclass(frozen=True)
class WorldLandmarkNoise:
    """How MediaPipe-like 3D world landmarks differ from a hand's true root-relative joints.

    A global turn (uniform axis, normal angle of ``rotation_sigma`` rad); each bone's direction
    turned by a normal angle (``palm_sigma`` rad for the wrist-to-knuckle bones, ``bone_sigma`` for
    the finger bones), the turns accumulating down each finger as articulation errors do; each
    bone's length off by a normal fraction ``length_sigma``; and one log-normal size factor
    (``scale_mean``, ``scale_sigma``: MediaPipe's hands have about one size). The defaults reproduce
    the mean errors of MediaPipe's world landmarks on held-out real photos (issue 15: root-aligned
    25.8, root + scale aligned 21.5, Procrustes 11.3 mm): on 400 DexYCB training-subject poses at
    random views they give 25.5 / 20.3 / 11.3 mm (``eval.real_pose_lifting.landmark_scores``).
    Independent per-joint jitter, used before, could not: it stretches the scale bone (9-10) and
    gave root + scale errors of 34-39 mm at that Procrustes error.
    """
    rotation_sigma: float = 0.22
    palm_sigma: float = 0.12
    bone_sigma: float = 0.3
    length_sigma: float = 0.04
    scale_mean: float = 1.0
    scale_sigma: float = 0.18

    def __post_init__(self):
        _check_noise_fields(self, self.scale_mean > 0, " and scale_mean > 0")


def _random_turns(rng: np.random.Generator, count: int, sigma: float) -> np.ndarray:
    """(count, 3, 3) rotations about uniform axes by normal angles of ``sigma`` rad."""
    axis = rng.normal(size=(count, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    return rotation_matrices(axis * rng.normal(0.0, sigma, (count, 1)))


def world_landmarks(joints: np.ndarray, rng: np.random.Generator, noise: WorldLandmarkNoise) -> np.ndarray:
    """(21, 3) world landmarks as a detector might return them for a hand whose true (21, 3)
    camera-frame joints are given: root-relative, in the joints' units."""
    joints = np.asarray(joints, np.float64)
    if joints.shape != (kp.NUM_KEYPOINTS, 3) or not np.isfinite(joints).all():
        raise ValueError(f"joints: expected {kp.NUM_KEYPOINTS} finite 3D points, got shape {joints.shape}")
    out, turn = np.zeros_like(joints), {kp.ROOT: np.eye(3)}
    for parent, child in kp.BONES:
        sigma = noise.palm_sigma if parent == kp.ROOT else noise.bone_sigma
        own = _random_turns(rng, 1, sigma)[0] if sigma > 0 else np.eye(3)
        turn[child] = own @ turn[parent] if parent != kp.ROOT else own
        length = 1.0 + noise.length_sigma * rng.standard_normal()
        out[child] = out[parent] + length * turn[child] @ (joints[child] - joints[parent])
    scale = noise.scale_mean * np.exp(noise.scale_sigma * rng.standard_normal())
    return scale * out @ _random_turns(rng, 1, noise.rotation_sigma)[0].T


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Square uint8 RGB crop resized to ``size`` (area interpolation when shrinking)."""
    import cv2

    if image.shape[0] == size:
        return np.ascontiguousarray(image)
    interpolation = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)
