"""The paper's hand crops: a square of 2.2 l around the hand, resized to 320, left hands mirrored.

l is the edge of the tightest square box around the visible 2D keypoints; the crop is a
square of ``scale * l`` (2.2, or 1.5 for the STB experiment) with the same centre, resized
to ``out_size`` (320) and padded where it leaves the image. Left hands are mirrored first
(x' = W - 1 - x), folded into the same transform, so the network only sees right hands.
``CropTransform`` maps points both ways, exactly.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from . import keypoints as kp

PAD_VALUE = 0  # black padding outside the image, for images and masks alike
MIN_BOX_PX = 8.0  # a box around fewer pixels than this is not a hand at any usable size


@dataclass(frozen=True)
class CropTransform:
    """Original-image pixels <-> crop pixels (pixel centres at integers, y down)."""
    center_x: float
    center_y: float
    size: float            # edge of the square box in original pixels
    out_size: int          # edge of the crop in pixels
    mirrored: bool         # True for left hands: the crop shows the mirrored (right) hand
    image_width: int
    image_height: int

    @property
    def zoom(self) -> float:
        """Crop pixels per original pixel."""
        return self.out_size / self.size

    @property
    def matrix(self) -> np.ndarray:
        """2x3 affine matrix from original pixels to crop pixels."""
        flip = np.array([[-1.0, 0.0, self.image_width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) \
            if self.mirrored else np.eye(3)
        cx = self.image_width - 1.0 - self.center_x if self.mirrored else self.center_x
        # The box's left pixel edge (cx - size/2) maps to the crop's left pixel edge, -0.5.
        z = self.zoom
        scale_shift = np.array([[z, 0.0, -(cx - self.size / 2) * z - 0.5],
                                [0.0, z, -(self.center_y - self.size / 2) * z - 0.5],
                                [0.0, 0.0, 1.0]])
        return (scale_shift @ flip)[:2]

    def to_crop(self, points) -> np.ndarray:
        """(…, 2) original pixels -> crop pixels."""
        pts = np.asarray(points, dtype=np.float64)
        m = self.matrix
        return pts @ m[:, :2].T + m[:, 2]

    def to_image(self, points) -> np.ndarray:
        """(…, 2) crop pixels -> original pixels."""
        pts = np.asarray(points, dtype=np.float64)
        m = np.vstack([self.matrix, [0.0, 0.0, 1.0]])
        inv = np.linalg.inv(m)[:2]
        return pts @ inv[:, :2].T + inv[:, 2]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CropTransform":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def crop_box(keypoints_2d, visible=None, scale: float = 2.2) -> tuple[float, float, float]:
    """(cx, cy, size): the square of ``scale`` times the tightest square box around visible keypoints."""
    points = kp.check_keypoints(keypoints_2d, "keypoints_2d", dims=(2, 3))[..., :2]
    if points.ndim != 2:
        raise ValueError(f"keypoints_2d: expected one hand (21, 2), got shape {points.shape}")
    vis = np.ones(len(points), bool) if visible is None else np.asarray(visible, dtype=float) > 0
    vis &= np.isfinite(points).all(axis=1)
    if not vis.any():
        raise ValueError("keypoints_2d: no visible, finite keypoint to place the crop around")
    low, high = points[vis].min(axis=0), points[vis].max(axis=0)
    edge = max(float((high - low).max()), MIN_BOX_PX)
    centre = (low + high) / 2
    if not scale > 0:
        raise ValueError(f"scale: expected a positive crop scale, got {scale}")
    return float(centre[0]), float(centre[1]), edge * float(scale)


def make_transform(image_shape, box, out_size: int = 320, mirror: bool = False) -> CropTransform:
    """The ``CropTransform`` for ``box`` = (cx, cy, size) in an image of ``image_shape`` (H, W, …)."""
    height, width = int(image_shape[0]), int(image_shape[1])
    cx, cy, size = (float(v) for v in box)
    if not (np.isfinite([cx, cy, size]).all() and size > 0):
        raise ValueError(f"box: expected finite (cx, cy, size > 0), got {box}")
    return CropTransform(cx, cy, size, int(out_size), bool(mirror), width, height)


def crop_image(image: np.ndarray, transform: CropTransform, interpolation=cv2.INTER_LINEAR) -> np.ndarray:
    """Warp ``image`` (H, W[, C]) into the crop; outside the image is ``PAD_VALUE``."""
    flags = interpolation
    if transform.zoom < 1 and interpolation == cv2.INTER_LINEAR:
        flags = cv2.INTER_AREA  # shrinking: average instead of aliasing (warpAffine falls back to linear)
    return cv2.warpAffine(image, transform.matrix, (transform.out_size, transform.out_size), flags=flags,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=PAD_VALUE)


def crop_mask(mask: np.ndarray, transform: CropTransform) -> np.ndarray:
    """Crop a label mask the same way, with nearest-neighbour interpolation."""
    return crop_image(np.ascontiguousarray(mask), transform, interpolation=cv2.INTER_NEAREST)


def crop_hand(image: np.ndarray, keypoints_2d, visible=None, scale: float = 2.2, out_size: int = 320,
              mirror: bool = False) -> tuple[np.ndarray, CropTransform]:
    """Crop around a hand's keypoints as the paper does; returns (crop, transform)."""
    from .images import check_image

    image = check_image(image)
    transform = make_transform(image.shape, crop_box(keypoints_2d, visible, scale), out_size, mirror)
    return crop_image(image, transform), transform
