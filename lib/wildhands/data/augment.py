"""Training-time jitter and detector-like keypoints.

- ``augment_sample``: colour, scale, in-plane rotation and translation jitter (``AugmentSettings``,
  the ``[augment]`` table), applied consistently to the image, mask, 2D and 3D keypoints and the
  camera (an in-plane rotation by a turns R into Rz(a) R and moves t; a zoom by k multiplies s by k);
- ``DetectorNoise`` / ``detector_keypoints``: 2D keypoints that look like MediaPipe's
  (per-keypoint jitter from measured errors, a per-hand offset and zoom, occasional
  hallucinated keypoints, swapped fingers and mirrored hands), from which the heat-map
  channels are drawn at training time, so the 2D variants work on detector-fed photos;
  its per-keypoint sigma is also the refinement's fallback expected error of a detector keypoint
  (``DetectorNoise.from_config``: the ``[noise]`` table).

Pixel coordinates: x right, y down, pixel centres at integers, in the crop.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wildhands.config import TableSettings, setting
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import CROP_SIZE, rotation_z, tight_square
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


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Square uint8 RGB crop resized to ``size`` (area interpolation when shrinking)."""
    import cv2

    if image.shape[0] == size:
        return np.ascontiguousarray(image)
    interpolation = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)
