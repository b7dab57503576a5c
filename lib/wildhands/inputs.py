"""Network inputs from samples: augmentation, detector-like keypoints, resizing and heat-maps.

Owns everything between a training sample (the common sample format: a 320 crop, its labels
and, for synthetic samples, its parameters) and the tensor the encoder reads:

- ``augment_sample``: colour, scale, in-plane rotation and translation jitter, applied
  consistently to the image, mask, 2D and 3D keypoints and the camera (an in-plane rotation
  by a turns R into Rz(a) R and moves t; a zoom by k multiplies s by k);
- ``DetectorNoise`` / ``detector_keypoints``: 2D keypoints that look like MediaPipe's
  (per-keypoint jitter from measured errors, a per-hand offset and zoom, occasional
  hallucinated keypoints, swapped fingers and mirrored hands), from which the heat-map
  channels are drawn at training time, so the 2D variants work on detector-fed photos;
- ``TrainingSamples``: a dataset wrapper doing the above per draw, seeded by (run seed, stage,
  draw number), so worker count, sharding and resuming change nothing;
- ``network_input``: the batched tensor for a variant (ImageNet-normalised RGB, and/or one
  Gaussian heat-map per keypoint rendered in torch on the batch).

Pixel coordinates: x right, y down, pixel centres at integers; the crop is 320 pixels.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import keypoints as kp
from .encoder import VARIANTS, check_variant
from .heatmaps import keypoint_heatmaps
from .losses import soft_mask
from .paths import PROJECT_ROOT

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STAGES = ("pretrain", "finetune", "eval")

# Fallback mean Euclidean error (px at the 320 crop) of a MediaPipe keypoint by joint level,
# used when no measured statistics file exists: wrist, CMC/MCP, PIP, DIP/IP, tip.
DEFAULT_ERROR_BY_LEVEL_PX = (6.0, 5.0, 5.5, 6.5, 7.5)
# Adjacent non-thumb fingers, the pairs a detector confuses.
SWAPPABLE_FINGERS = (("index", "middle"), ("middle", "ring"), ("ring", "pinky"))


# ----------------------------------------------------------------------------- augmentation

def similarity_matrix(angle_rad: float, zoom: float, shift, crop_size: int) -> np.ndarray:
    """2x3 map p' = zoom * Rot(angle) (p - c) + c + shift, c the crop centre (pixels, y down)."""
    c = (crop_size - 1) / 2.0
    cos, sin = np.cos(angle_rad) * zoom, np.sin(angle_rad) * zoom
    linear = np.array([[cos, -sin], [sin, cos]])
    offset = np.array([c, c]) + np.asarray(shift, float) - linear @ np.array([c, c])
    return np.hstack([linear, offset[:, None]])


def _rotation_z(angle_rad: float) -> np.ndarray:
    cos, sin = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])


def augment_sample(sample: dict, rng: np.random.Generator, augment: dict, crop_size: int = 320,
                   image_size: int | None = None) -> dict:
    """A jittered copy of ``sample`` (the ``[augment]`` table: color, scale, rotation_deg, translation).

    Geometry: rotation uniform in +-rotation_deg, zoom log-uniform in [1/(1+scale), 1+scale],
    shift uniform in +-translation * crop_size per axis, about the crop centre. Colour:
    brightness, contrast and saturation factors uniform in [1 - color, 1 + color]. The image is
    returned at ``image_size`` (default: the crop size), colour-jittered after resizing.
    """
    import cv2

    out = dict(sample)
    angle = np.deg2rad(rng.uniform(-1, 1) * augment.get("rotation_deg", 0.0))
    zoom = float(np.exp(rng.uniform(-1, 1) * np.log1p(augment.get("scale", 0.0))))
    shift = rng.uniform(-1, 1, size=2) * augment.get("translation", 0.0) * crop_size
    color = rng.uniform(-1, 1, size=3) * augment.get("color", 0.0)
    matrix = similarity_matrix(angle, zoom, shift, crop_size)
    linear = matrix[:, :2]

    out["keypoints_2d"] = (sample["keypoints_2d"] @ linear.T + matrix[:, 2]).astype(np.float32)
    rot = _rotation_z(angle)
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


# ----------------------------------------------------------------------------- detector noise

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
        """From the profile's ``[noise]`` table and, when present, the measured statistics file."""
        section = dict(config.get("noise", {}))
        stats_path = section.pop("stats", "")
        noise = cls(**{k: v for k, v in section.items() if k in cls.__dataclass_fields__})
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
    low, high = points.min(0), points.max(0)
    centre, extent = (low + high) / 2, max(float((high - low).max()), 1.0)
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


KEYPOINT_SOURCES = ("detector", "labels")


def refinement_weights(config: dict, source: str, confidence=None, sigma_px=None) -> np.ndarray:
    """Per-keypoint weights p_i of eq. 10 when refining a prediction from keypoints of ``source``.

    The fit's residuals are taken in units of each keypoint's expected error sigma_i (the MAP
    estimate under Gaussian keypoint noise with eq. 10's priors): p_i = confidence_i / sigma_i^2.
    "detector": sigma_i this photo's (``sigma_px``, px at 320: the detector's passes' spread,
    ``detector.KeypointSigmaRule``) when given, else from the measured MediaPipe errors
    (``DetectorNoise``, 4-16 px at 320), so noisy keypoints no longer drag the hand into
    implausible shapes; "labels": annotated keypoints, ``[refine] label_sigma_px`` (default
    1 px, eq. 10 as the paper weights it).
    """
    if source not in KEYPOINT_SOURCES:
        raise ValueError(f"keypoint source: expected one of {', '.join(KEYPOINT_SOURCES)}, got {source!r}")
    if source == "detector" and sigma_px is not None:
        sigma = np.asarray(sigma_px, np.float64)
        if sigma.shape != (kp.NUM_KEYPOINTS,) or not (np.isfinite(sigma) & (sigma > 0)).all():
            raise ValueError(f"sigma_px: expected {kp.NUM_KEYPOINTS} finite values > 0, got {sigma}")
    elif source == "detector":
        sigma = DetectorNoise.from_config(config).keypoint_sigma_px
    else:
        sigma = np.full(kp.NUM_KEYPOINTS, float(config.get("refine", {}).get("label_sigma_px", 1.0)))
    weights = 1.0 / np.square(np.asarray(sigma, np.float64))
    return weights if confidence is None else np.asarray(confidence, np.float64) * weights


def refinement_anchor(config: dict) -> dict | None:
    """``Fit2D.fit``'s ``anchor_sigma`` from ``[refine]`` (None unless ``anchor = true``).

    The refinement's energy is in units of each keypoint's expected error (``refinement_weights``),
    so these sigmas weigh the network's prediction against the keypoints on the same scale.
    """
    refine = config.get("refine", {})
    if not refine.get("anchor", False):
        return None
    keys = {"rotation": "anchor_rotation_rad", "betas": "anchor_betas", "pose": "anchor_pose"}
    missing = [key for key in keys.values() if key not in refine]
    if missing:
        raise ValueError(f"[refine]: anchor = true needs {', '.join(missing)}")
    return {name: float(refine[key]) for name, key in keys.items()}


REFINE_MODEL_KEYS = ("pose_space", "w_theta", "alpha_beta", "pose_std_floor")


def refinement_model_settings(config: dict, with_3d: bool = False) -> dict:
    """``Fit2D`` keywords of the refinement: ``[fit2d]``'s, with ``REFINE_MODEL_KEYS`` taken from
    ``[refine]`` where it sets them (the refinement of a prediction need not share the 2D-fit
    baseline's pose space and priors), and from ``[refine.with_3d]`` for hands whose detector's 3D
    keypoints join the fit (depth then observed, the pose can leave the 10-D space)."""
    from .fitting import fit_settings

    refine = config.get("refine", {})
    tables = [refine] + ([refine.get("with_3d", {})] if with_3d else [])
    settings = fit_settings(config)["model"]
    for table in tables:
        unknown = sorted(set(table) - set(REFINE_MODEL_KEYS)) if table is not refine else []
        if unknown:
            raise ValueError(f"[refine.with_3d]: unknown settings {', '.join(unknown)} (known: "
                             f"{', '.join(REFINE_MODEL_KEYS)})")
        settings.update({key: table[key] for key in REFINE_MODEL_KEYS if key in table})
    return settings


def refinement_options(config: dict, sources="detector") -> dict:
    """``Fit2D.fit`` keywords of a refinement from ``[refine]``: ``anchor_sigma``
    (``refinement_anchor``), ``robust``, ``robust_rounds``, ``extra_starts`` and, when set,
    ``iterations`` (else ``[fit2d]``'s).

    ``robust`` (Geman-McClure scale in expected keypoint errors) applies to detector keypoints,
    whose errors have outliers (hallucinations, swapped fingers); annotated keypoints ("labels")
    are fitted with squared residuals, so that a far-off start is not read as all-outliers.
    ``sources``: one source (``robust`` a float) or one per hand (an array).
    """
    refine = config.get("refine", {})
    robust, rounds = float(refine.get("robust", 0.0)), int(refine.get("robust_rounds", 3))
    if robust < 0 or rounds < 0:
        raise ValueError(f"[refine]: robust and robust_rounds must be >= 0, got {robust}, {rounds}")
    for source in [sources] if isinstance(sources, str) else sources:
        if source not in KEYPOINT_SOURCES:
            raise ValueError(f"keypoint source: expected one of {', '.join(KEYPOINT_SOURCES)}, got {source!r}")
    scale = (robust if sources == "detector" else 0.0) if isinstance(sources, str) else \
        np.array([robust if s == "detector" else 0.0 for s in sources])
    options = {"anchor_sigma": refinement_anchor(config), "robust": scale, "robust_rounds": rounds,
               "extra_starts": int(refine.get("extra_starts", 0))}
    if "iterations" in refine:  # a prediction starts near its optimum: fewer than the 2D fit's
        options["iterations"] = int(refine["iterations"])
    return options


# ----------------------------------------------------------------------------- datasets

def draw_rng(seed: int, stage: str, draw: int) -> np.random.Generator:
    """The random generator of one draw of a sample: a function of (run seed, stage, draw number) only."""
    return np.random.default_rng([int(seed), STAGES.index(stage), int(draw)])


class TrainingSamples(torch.utils.data.Dataset):
    """Samples of ``base`` made ready for a variant: augmented, detector-noised, resized, soft-masked.

    Indexed by ``(index, draw)``: ``index`` picks the base sample and ``draw`` (the sample's
    position in the run's stream) seeds its randomness. Returns a dict of arrays: the labels,
    ``input_keypoints_2d`` (what the heat-maps are drawn from; with ``noise`` also for RGB, as the
    keypoints a detector would give the 2D-fit refinement), ``image`` (uint8, at the input
    size, for RGB variants) and ``soft_mask`` (float32 at 320, when ``with_masks``).
    """

    def __init__(self, base, config: dict, variant: str, seed: int, stage: str = "pretrain",
                 augment: bool = True, noise: bool = True, with_masks: bool = False):
        self.base = base
        self.variant = check_variant(variant)
        self.seed, self.stage = int(seed), stage
        self.crop_size = int(config["preprocess"]["crop_size"])
        self.input_size = int(config["model"]["input_size"])
        self.augment = dict(config.get("augment", {})) if augment else None
        self.noise = DetectorNoise.from_config(config) if noise else None
        if self.noise is not None and stage == "eval":
            self.noise.clean_probability = 0.0  # evaluating with noise: every hand gets detector-like keypoints
        self.with_masks = with_masks
        loss = config.get("loss", {})
        self.mask_margin, self.mask_decay = loss.get("mask_margin_px", 2.0), loss.get("mask_decay_px", 20.0)
        hand = config.get("hand_model", {})
        # Labels a sample may lack (a 2D-only set has no 3D keypoints or parameters): zeros, flagged absent.
        self.missing = {"keypoints_3d": np.zeros((kp.NUM_KEYPOINTS, 3), np.float32), "has_3d": np.float32(0),
                        "has_params": np.float32(0), "betas": np.zeros(int(hand.get("num_betas", 10)), np.float32),
                        "pose": np.zeros(int(hand.get("num_pca_comps", 10)), np.float32),
                        "global_orient": np.zeros(3, np.float32), "scale": np.ones(1, np.float32),
                        "trans": np.zeros(2, np.float32)}

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, item) -> dict:
        index, draw = item if isinstance(item, tuple) else (item, item)
        return self._prepare(self.base[int(index)], index, draw)

    def __getitems__(self, items) -> list[dict]:
        """A batch at once, the base set's samples fetched together when it can (``SampledHands``)."""
        pairs = [item if isinstance(item, tuple) else (item, item) for item in items]
        fetch = getattr(self.base, "__getitems__", None)
        bases = fetch([int(i) for i, _ in pairs]) if fetch else [self.base[int(i)] for i, _ in pairs]
        return [self._prepare(base, index, draw) for base, (index, draw) in zip(bases, pairs)]

    def _prepare(self, base: dict, index, draw) -> dict:
        sample = {**self.missing, **base}
        rng = draw_rng(self.seed, self.stage, draw)
        if "rgb" not in self.variant:
            sample = {k: v for k, v in sample.items() if k != "image"}
        if not self.with_masks:
            sample = {k: v for k, v in sample.items() if k != "mask"}
        if self.augment:
            sample = augment_sample(sample, rng, self.augment, self.crop_size, self.input_size)
        out = {key: _as_array(sample[key]) for key in LABEL_KEYS}
        if "2d" in self.variant or self.noise:  # RGB: what a detector would give, for the 2D-fit refinement
            clean = np.asarray(sample["keypoints_2d"], np.float32)
            out["input_keypoints_2d"] = detector_keypoints(clean, rng, self.noise) if self.noise else clean
        if "rgb" in self.variant:
            out["image"] = resize_image(sample["image"], self.input_size)
        if self.with_masks:
            mask = sample.get("mask")
            has = mask is not None and float(sample.get("has_mask", 1.0)) > 0
            out["soft_mask"] = (soft_mask(mask, self.mask_margin, self.mask_decay) if has
                                else np.zeros((self.crop_size, self.crop_size), np.float32))
            out["has_mask"] = np.float32(has)
        out["index"] = np.int64(index)
        return out


# Labels that travel with a training sample (flags say which are real).
LABEL_KEYS = ("keypoints_2d", "visible", "keypoints_3d", "has_3d", "has_params", "betas", "pose",
              "global_orient", "scale", "trans")


def _as_array(value) -> np.ndarray:
    return np.asarray(value, np.float32)


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Square uint8 RGB crop resized to ``size`` (area interpolation when shrinking)."""
    import cv2

    if image.shape[0] == size:
        return np.ascontiguousarray(image)
    interpolation = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


# ----------------------------------------------------------------------------- network input

def heatmaps(keypoints_2d: torch.Tensor, confidence: torch.Tensor | None, input_size: int, sigma: float,
             crop_size: int = 320) -> torch.Tensor:
    """(B, 21, S, S) Gaussian heat-maps at the input size from keypoints in pixels of the crop."""
    points = (keypoints_2d + 0.5) * (input_size / crop_size) - 0.5  # pixel centres stay at integers
    return keypoint_heatmaps(points, input_size, sigma, confidence)


def network_input(variant: str, input_size: int, heatmap_sigma: float, images: torch.Tensor | None = None,
                  keypoints_2d: torch.Tensor | None = None, confidence: torch.Tensor | None = None,
                  crop_size: int = 320) -> torch.Tensor:
    """The encoder's input for ``variant``: (B, C, S, S) float.

    ``images`` (B, S, S, 3) uint8 RGB at the input size (``resize_image``); ``keypoints_2d``
    (B, 21, 2) pixels of the 320 crop (detector output or labels); ``confidence`` (B, 21)
    scales each heat-map (None: 1).
    """
    check_variant(variant)
    channels = []
    if "rgb" in variant:
        if images is None or images.ndim != 4 or images.shape[1:] != (input_size, input_size, 3):
            raise ValueError(f"images: variant {variant!r} needs (B, {input_size}, {input_size}, 3) uint8 RGB, "
                             f"got {None if images is None else tuple(images.shape)}")
        x = images.permute(0, 3, 1, 2).float() / 255.0
        mean = x.new_tensor(IMAGENET_MEAN)[:, None, None]
        std = x.new_tensor(IMAGENET_STD)[:, None, None]
        channels.append((x - mean) / std)
    if "2d" in variant:
        if keypoints_2d is None or keypoints_2d.ndim != 3 or keypoints_2d.shape[1:] != (kp.NUM_KEYPOINTS, 2):
            raise ValueError(f"keypoints_2d: variant {variant!r} needs (B, 21, 2) pixels, "
                             f"got {None if keypoints_2d is None else tuple(keypoints_2d.shape)}")
        channels.append(heatmaps(keypoints_2d.float(), confidence, input_size, heatmap_sigma, crop_size))
    x = torch.cat(channels, dim=1)
    assert x.shape[1] == VARIANTS[variant]
    return x


def batch_input(batch: dict, variant: str, config: dict) -> torch.Tensor:
    """``network_input`` for a collated batch of ``TrainingSamples``."""
    return network_input(variant, int(config["model"]["input_size"]), heatmap_sigma(config),
                         images=batch.get("image"), keypoints_2d=batch.get("input_keypoints_2d"),
                         crop_size=int(config["preprocess"]["crop_size"]))


def heatmap_sigma(config: dict) -> float:
    """Heat-map sigma in pixels at the network input (``[preprocess] heatmap_sigma``)."""
    return float(config["preprocess"]["heatmap_sigma"])
