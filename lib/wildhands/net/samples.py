"""Network inputs from samples: training draws, resizing and heat-maps.

Owns everything between a training sample (the common sample format: a 320 crop, its labels
and, for synthetic samples, its parameters) and the tensor the encoder reads:

- ``TrainingSamples``: a dataset wrapper that augments and detector-noises each draw
  (``data.augment``), seeded by (run seed, stage, draw number), so worker count, sharding and
  resuming change nothing;
- ``network_input``: the batched tensor for a variant (ImageNet-normalised RGB, and/or one
  Gaussian heat-map per keypoint rendered in torch on the batch, and for ``2d+depth`` those
  heat-maps times each keypoint's ``depth_cue``, the detector's world landmarks' z);
- the typed settings of the tables it reads (``InputSettings``: ``[model]`` and
  ``[preprocess]``; ``data.augment.AugmentSettings``: ``[augment]``; ``losses.LossSettings``: ``[loss]``'s soft mask).

Pixel coordinates: x right, y down, pixel centres at integers; the crop is 320 pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from wildhands.config import setting
from wildhands.data.augment import (AugmentSettings, DetectorNoise, WorldLandmarkNoise, augment_sample,
                                    detector_keypoints, resize_image, world_landmarks)
from wildhands.data.heatmaps import keypoint_heatmaps
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import CROP_SIZE
from wildhands.net.encoder import VARIANTS, check_variant
from wildhands.net.losses import LossSettings, soft_mask

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STAGES = ("pretrain", "finetune", "eval")
DEPTH_VARIANTS = tuple(v for v in VARIANTS if "depth" in v)


# ----------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class InputSettings:
    """How a crop becomes the encoder's input: ``[model] input_size`` (pixels), ``[preprocess]
    crop_size`` (the crop's pixels, the unit of keypoints) and ``heatmap_sigma`` (pixels at the input)."""
    input_size: int
    crop_size: int
    heatmap_sigma: float

    @classmethod
    def from_config(cls, config: dict) -> "InputSettings":
        return cls(int(setting(config, "model", "input_size")), int(setting(config, "preprocess", "crop_size")),
                   heatmap_sigma(config))

    def batch_input(self, batch: dict, variant: str) -> torch.Tensor:
        """``network_input`` for a collated batch of ``TrainingSamples``."""
        return network_input(variant, self.input_size, self.heatmap_sigma, images=batch.get("image"),
                             keypoints_2d=batch.get("input_keypoints_2d"), crop_size=self.crop_size,
                             depth=batch.get("input_depth"))


def depth_dropout(config: dict) -> float:
    """``[model] depth_dropout``: the fraction of training draws of a depth variant whose depth cue is
    zeroed, as a hand without the detector's world landmarks gives it."""
    value = float(setting(config, "model", "depth_dropout"))
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"model.depth_dropout: expected a fraction in [0, 1], got {value}")
    return value


# ----------------------------------------------------------------------------- depth cue

# The hand-size normaliser of the depth cue: wrist to middle-finger MCP, the palm's length, which a
# detector's world landmarks get right more often than a finger's.
DEPTH_SCALE_BONE = (kp.ROOT, kp.KEYPOINT_NAMES.index("middle_mcp"))
# Below this palm length (in the landmarks' units) the landmarks carry no usable depth.
MIN_DEPTH_SCALE = 1e-6


def depth_cue(world: np.ndarray | None) -> np.ndarray:
    """(21,) float32 per-keypoint depth cue of a hand's (21, 3) world landmarks (the crop's view of the
    hand, z away from the camera; any units and origin): (z_i - z_root) / |wrist -> middle MCP|, so 0 at
    the root, unchanged by the landmarks' size, by in-plane turns and by mirroring x. None, non-finite or
    degenerate landmarks (a palm shorter than ``MIN_DEPTH_SCALE``): zeros, the network's "no depth"."""
    if world is None:
        return np.zeros(kp.NUM_KEYPOINTS, np.float32)
    world = np.asarray(world, np.float64)
    if world.shape != (kp.NUM_KEYPOINTS, 3):
        raise ValueError(f"world landmarks: expected ({kp.NUM_KEYPOINTS}, 3) points, got shape {world.shape}")
    size = np.linalg.norm(world[DEPTH_SCALE_BONE[1]] - world[DEPTH_SCALE_BONE[0]])
    if not np.isfinite(world).all() or not size > MIN_DEPTH_SCALE:
        return np.zeros(kp.NUM_KEYPOINTS, np.float32)
    return ((world[:, 2] - world[kp.ROOT, 2]) / size).astype(np.float32)


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
    size, for RGB variants), ``soft_mask`` (float32 at 320, when ``with_masks``) and, for depth
    variants, ``input_depth`` (21,): the ``depth_cue`` of the sample's ``world_landmarks`` when it
    has them (the evaluation's simulated or a detector's), else of world landmarks simulated from
    its 3D keypoints (``data.augment.world_landmarks``; with ``noise`` off, the keypoints themselves),
    zeros without 3D labels; at training a ``[model] depth_dropout`` of the draws get zeros.
    """

    def __init__(self, base, config: dict, variant: str, seed: int, stage: str = "pretrain",
                 augment: bool = True, noise: bool = True, with_masks: bool = False):
        self.base = base
        self.variant = check_variant(variant)
        self.seed, self.stage = int(seed), stage
        inputs = InputSettings.from_config(config)
        self.crop_size, self.input_size = inputs.crop_size, inputs.input_size
        self.augment = AugmentSettings.from_config(config) if augment else None
        self.noise = DetectorNoise.from_config(config) if noise else None
        if self.noise is not None and stage == "eval":
            self.noise.clean_probability = 0.0  # evaluating with noise: every hand gets detector-like keypoints
        self.with_masks = with_masks
        self.masks = LossSettings.from_config(config) if with_masks else None   # the soft mask's margin, decay
        self.depth_dropout = depth_dropout(config) if "depth" in variant and stage != "eval" else 0.0
        self.world_noise = WorldLandmarkNoise()
        # Labels a sample may lack (a 2D-only set has no 3D keypoints or parameters): zeros, flagged absent.
        num_betas, num_pose = (int(setting(config, "hand_model", key)) for key in ("num_betas", "num_pca_comps"))
        self.missing = {"keypoints_3d": np.zeros((kp.NUM_KEYPOINTS, 3), np.float32), "has_3d": np.float32(0),
                        "has_params": np.float32(0), "betas": np.zeros(num_betas, np.float32),
                        "pose": np.zeros(num_pose, np.float32),
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
        if "depth" in self.variant:  # drawn after the keypoints: a 2d run's draws stay the same
            out["input_depth"] = self._depth(sample, rng)
        if "rgb" in self.variant:
            out["image"] = resize_image(sample["image"], self.input_size)
        if self.with_masks:
            mask = sample.get("mask")
            has = mask is not None and float(sample.get("has_mask", 1.0)) > 0
            out["soft_mask"] = (soft_mask(mask, self.masks.mask_margin_px, self.masks.mask_decay_px) if has
                                else np.zeros((self.crop_size, self.crop_size), np.float32))
            out["has_mask"] = np.float32(has)
        out["index"] = np.int64(index)
        return out

    def _depth(self, sample: dict, rng: np.random.Generator) -> np.ndarray:
        """The (21,) depth cue a depth variant reads with this draw (see the class docstring)."""
        if rng.random() < self.depth_dropout:
            return depth_cue(None)
        if sample.get("world_landmarks") is not None:
            return depth_cue(sample["world_landmarks"])
        if not float(sample["has_3d"]) > 0:
            return depth_cue(None)
        # Camera-frame joints (augment_sample's in-plane turn leaves z as it is), root-relative.
        joints = np.asarray(sample["keypoints_3d"], np.float64)
        joints = joints - joints[kp.ROOT]
        return depth_cue(world_landmarks(joints, rng, self.world_noise) if self.noise else joints)


# Labels that travel with a training sample (flags say which are real).
LABEL_KEYS = ("keypoints_2d", "visible", "keypoints_3d", "has_3d", "has_params", "betas", "pose",
              "global_orient", "scale", "trans")


def _as_array(value) -> np.ndarray:
    return np.asarray(value, np.float32)


# ----------------------------------------------------------------------------- network input

def heatmaps(keypoints_2d: torch.Tensor, confidence: torch.Tensor | None, input_size: int, sigma: float,
             crop_size: int = CROP_SIZE) -> torch.Tensor:
    """(B, 21, S, S) Gaussian heat-maps at the input size from keypoints in pixels of the crop."""
    points = (keypoints_2d + 0.5) * (input_size / crop_size) - 0.5  # pixel centres stay at integers
    return keypoint_heatmaps(points, input_size, sigma, confidence)


def network_input(variant: str, input_size: int, heatmap_sigma: float, images: torch.Tensor | None = None,
                  keypoints_2d: torch.Tensor | None = None, confidence: torch.Tensor | None = None,
                  crop_size: int = CROP_SIZE, depth: torch.Tensor | None = None) -> torch.Tensor:
    """The encoder's input for ``variant``: (B, C, S, S) float.

    ``images`` (B, S, S, 3) uint8 RGB at the input size (``resize_image``); ``keypoints_2d``
    (B, 21, 2) pixels of the 320 crop (detector output or labels); ``confidence`` (B, 21)
    scales each heat-map (None: 1); ``depth`` (B, 21) each keypoint's ``depth_cue``, for depth
    variants only (None, or a hand's row of zeros: no depth, the depth channels are zero).
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
    if "depth" in variant:
        batch = keypoints_2d.shape[0]
        if depth is None:
            depth = channels[-1].new_zeros(batch, kp.NUM_KEYPOINTS)
        if depth.shape != (batch, kp.NUM_KEYPOINTS):
            raise ValueError(f"depth: variant {variant!r} needs ({batch}, 21) depth cues, got {tuple(depth.shape)}")
        channels.append(channels[-1] * depth.to(channels[-1])[:, :, None, None])
    elif depth is not None:
        raise ValueError(f"depth: variant {variant!r} takes no depth input; only {DEPTH_VARIANTS} do")
    x = torch.cat(channels, dim=1)
    assert x.shape[1] == VARIANTS[variant]
    return x


def batch_input(batch: dict, variant: str, config: dict) -> torch.Tensor:
    """``network_input`` for a collated batch of ``TrainingSamples``, with a profile's ``InputSettings``."""
    return InputSettings.from_config(config).batch_input(batch, variant)


def heatmap_sigma(config: dict) -> float:
    """Heat-map sigma in pixels at the network input (``[preprocess] heatmap_sigma``)."""
    return float(setting(config, "preprocess", "heatmap_sigma"))
