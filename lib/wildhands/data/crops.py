"""The paper's hand crops: a square of 2.2 l around the hand, resized to 320, left hands mirrored.

l is the edge of the tightest square box around the visible 2D keypoints (the larger side of
their bounding box); the crop is a square of ``scale * l`` (``camera.CROP_SCALE``, 2.2, or 1.5
for the STB experiment) with the same centre, resized to ``out_size`` (``camera.CROP_SIZE``,
320); ``hand_transform`` places a hand's crop so. Where it leaves the image it
is padded with ``PAD_VALUE`` (black, 0: for images and masks alike). Left hands are mirrored
first (x' = W - 1 - x in original pixels), folded into the same transform, so the network only
sees right hands. ``CropTransform`` maps points both ways, exactly; pixel centres are at
integer coordinates, y down.

Images of any size are cropped from the region the box covers only, so huge photos cost no
more than small ones (and stay within OpenCV's 32767-pixel warp limit); when the crop shrinks
the hand, that region is first downscaled with area averaging, so the crop does not alias.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import cv2
import numpy as np

from wildhands.data.images import check_image
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import CROP_SCALE, CROP_SIZE, tight_square

PAD_VALUE = 0       # black padding outside the image, for images and masks alike
MIN_BOX_PX = 8.0    # l never falls below this (one keypoint visible, or all at one pixel)
_MARGIN_PX = 2      # source pixels kept around the box for interpolation
_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)  # OpenCV interpolates these


@dataclass(frozen=True)
class CropTransform:
    """Original-image pixels <-> crop pixels (pixel centres at integers, y down).

    The box (``center_x``, ``center_y``, ``size``) is in original (unmirrored) pixels; with
    ``mirrored`` the crop shows the image flipped left-right (x' = W - 1 - x), as done for left
    hands.
    """
    center_x: float
    center_y: float
    size: float            # edge of the square box in original pixels
    out_size: int          # edge of the crop in pixels
    mirrored: bool
    image_width: int
    image_height: int

    def __post_init__(self):
        if not (math.isfinite(self.center_x) and math.isfinite(self.center_y)
                and math.isfinite(self.size) and self.size > 0):
            raise ValueError(f"crop box: expected finite (center_x, center_y, size > 0), got "
                             f"({self.center_x}, {self.center_y}, {self.size})")
        if self.out_size < 1 or self.image_width < 1 or self.image_height < 1:
            raise ValueError(f"crop transform: out_size, image_width and image_height must be positive, got "
                             f"{self.out_size}, {self.image_width}, {self.image_height}")

    @property
    def box(self) -> tuple[float, float, float]:
        return self.center_x, self.center_y, self.size

    @property
    def zoom(self) -> float:
        """Crop pixels per original pixel."""
        return self.out_size / self.size

    @property
    def matrix(self) -> np.ndarray:
        """2x3 affine matrix from original pixels to crop pixels (mirroring included)."""
        z = self.zoom
        # The box's left pixel edge (cx - size/2) maps to the crop's left pixel edge, -0.5.
        ty = -(self.center_y - self.size / 2) * z - 0.5
        if self.mirrored:
            cx = self.image_width - 1.0 - self.center_x
            tx = -(cx - self.size / 2) * z - 0.5
            return np.array([[-z, 0.0, z * (self.image_width - 1.0) + tx], [0.0, z, ty]])
        tx = -(self.center_x - self.size / 2) * z - 0.5
        return np.array([[z, 0.0, tx], [0.0, z, ty]])

    @property
    def inverse_matrix(self) -> np.ndarray:
        """2x3 affine matrix from crop pixels to original pixels."""
        return cv2.invertAffineTransform(self.matrix)

    def to_crop(self, points) -> np.ndarray:
        """(..., 2) original pixels -> crop pixels."""
        return _apply(self.matrix, points)

    def to_image(self, points) -> np.ndarray:
        """(..., 2) crop pixels -> original pixels."""
        return _apply(self.inverse_matrix, points)

    def pinhole(self, focal_px: float, principal_point) -> np.ndarray:
        """(3,) the photo's pinhole camera (focal length ``focal_px`` and ``principal_point`` (x, y), in
        original pixels) in crop pixels: focal, principal point x, y (``camera.pinhole_project``'s). The
        crop is a similarity of the photo, so its pinhole is the photo's, scaled and moved; a mirrored
        crop mirrors the principal point with the hand."""
        if not (math.isfinite(focal_px) and focal_px > 0):
            raise ValueError(f"focal_px: expected a focal length > 0 in pixels, got {focal_px}")
        return np.concatenate([[focal_px * self.zoom], self.to_crop(np.asarray(principal_point, np.float64))])

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (``from_dict`` reads it back)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CropTransform":
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in data]
        if missing:
            raise ValueError(f"crop transform: missing {', '.join(missing)} (expected keys {', '.join(names)})")
        return cls(float(data["center_x"]), float(data["center_y"]), float(data["size"]), int(data["out_size"]),
                   bool(data["mirrored"]), int(data["image_width"]), int(data["image_height"]))


def _apply(matrix: np.ndarray, points) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim < 1 or pts.shape[-1] != 2:
        raise ValueError(f"points: expected shape (..., 2), got {pts.shape}")
    return pts @ matrix[:, :2].T + matrix[:, 2]


def visible_mask(visible, count: int = kp.NUM_KEYPOINTS, name: str = "visible") -> np.ndarray:
    """``visible`` (flags or confidences, > 0 means visible; None: all) as a boolean (count,) array."""
    if visible is None:
        return np.ones(count, bool)
    vis = np.asarray(visible, dtype=np.float64)
    if vis.shape != (count,):
        raise ValueError(f"{name}: expected {count} flags or confidences, got shape {vis.shape}")
    return np.nan_to_num(vis) > 0


def crop_box(keypoints_2d, visible=None, scale: float = CROP_SCALE) -> tuple[float, float, float]:
    """(cx, cy, size): ``scale`` times the tightest square box around the visible keypoints.

    ``keypoints_2d`` (21, 2) or (21, 3) image pixels (a third column is ignored); ``visible``
    (21,) flags or confidences (> 0 visible; None: all). Every visible keypoint must be finite.
    l is at least ``MIN_BOX_PX``.
    """
    if not (np.isscalar(scale) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale: expected a positive crop scale, got {scale}")
    points = kp.check_keypoints(keypoints_2d, "keypoints_2d", dims=(2, 3))[..., :2]
    if points.ndim != 2:
        raise ValueError(f"keypoints_2d: expected one hand (21, 2), got shape {points.shape}")
    vis = visible_mask(visible)
    bad = np.flatnonzero(vis & ~np.isfinite(points).all(axis=1))
    if bad.size:
        raise ValueError(f"keypoints_2d: visible keypoints {bad.tolist()} are not finite (NaN or inf); "
                         "mark them invisible")
    if not vis.any():
        raise ValueError("keypoints_2d: no visible keypoint to place the crop around")
    centre, edge = tight_square(points[vis])
    edge = max(edge, MIN_BOX_PX)
    return float(centre[0]), float(centre[1]), edge * float(scale)


def make_transform(image_shape, box, out_size: int = CROP_SIZE, mirror: bool = False) -> CropTransform:
    """The ``CropTransform`` for ``box`` = (cx, cy, size) in an image of ``image_shape`` (H, W, ...)."""
    if len(image_shape) < 2:
        raise ValueError(f"image_shape: expected (H, W, ...), got {tuple(image_shape)}")
    try:
        cx, cy, size = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"box: expected (cx, cy, size), got {box!r}") from None
    return CropTransform(cx, cy, size, int(out_size), bool(mirror), int(image_shape[1]), int(image_shape[0]))


def hand_transform(image_shape, keypoints_2d, visible=None, scale: float = CROP_SCALE, out_size: int = CROP_SIZE,
                   mirror: bool = False) -> CropTransform:
    """The crop of ``scale`` l around a hand's visible keypoints (``crop_box``) at ``out_size``
    pixels, in an image of ``image_shape``, mirrored for a left hand (``mirror``)."""
    return make_transform(image_shape, crop_box(keypoints_2d, visible, scale), out_size, mirror)


def crop_image(image: np.ndarray, transform: CropTransform, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Warp ``image`` (H, W) or (H, W, C <= 4) into the crop of ``transform``; dtype kept.

    Outside the image the crop is ``PAD_VALUE``. Only the region the box covers is read, so
    images of any size work. A shrinking crop (zoom < 1) first downsizes that region to the
    crop's scale, area-averaged (no aliasing), or nearest-neighbour for ``cv2.INTER_NEAREST``.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and not 1 <= image.shape[2] <= 4):
        raise ValueError(f"image: expected (H, W) or (H, W, 1-4 channels), got shape {image.shape}")
    if image.shape[:2] != (transform.image_height, transform.image_width):
        raise ValueError(f"image: {image.shape[1]}x{image.shape[0]} is not the "
                         f"{transform.image_width}x{transform.image_height} image of the crop transform")
    if image.dtype == bool:
        return crop_image(image.astype(np.uint8), transform, interpolation).astype(bool)
    if image.dtype not in _DTYPES:
        raise ValueError(f"image: dtype {image.dtype} cannot be warped; use one of "
                         f"{', '.join(np.dtype(d).name for d in _DTYPES)} or bool")
    out_shape = (transform.out_size, transform.out_size) + image.shape[2:]
    x0, y0, x1, y1 = _source_region(transform)
    if x0 >= x1 or y0 >= y1:  # the box lies wholly outside the image
        return np.full(out_shape, PAD_VALUE, image.dtype)
    region = np.ascontiguousarray(image[y0:y1, x0:x1])
    # region pixels -> original pixels, then the crop's matrix
    to_region = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
    if transform.zoom < 1:
        width = max(1, round((x1 - x0) * transform.zoom))
        height = max(1, round((y1 - y0) * transform.zoom))
        fx, fy = width / (x1 - x0), height / (y1 - y0)
        shrink = cv2.INTER_NEAREST_EXACT if interpolation == cv2.INTER_NEAREST else cv2.INTER_AREA
        region = cv2.resize(region, (width, height), interpolation=shrink)
        # cv2.resize keeps pixel-centre alignment: p' = (p + 0.5) * f - 0.5
        to_region = np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5], [0.0, 0.0, 1.0]]) @ to_region
    matrix = transform.matrix @ np.linalg.inv(to_region)
    crop = cv2.warpAffine(region, matrix, (transform.out_size, transform.out_size), flags=interpolation,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=PAD_VALUE)
    return crop.reshape(out_shape)


def _source_region(transform: CropTransform) -> tuple[int, int, int, int]:
    """Integer (x0, y0, x1, y1) of the image pixels the box covers, with a margin, clipped to the image."""
    half = transform.size / 2 + 0.5 + _MARGIN_PX
    x0 = max(0, math.floor(transform.center_x - half))
    y0 = max(0, math.floor(transform.center_y - half))
    x1 = min(transform.image_width, math.ceil(transform.center_x + half) + 1)
    y1 = min(transform.image_height, math.ceil(transform.center_y + half) + 1)
    return x0, y0, x1, y1


def crop_mask(mask: np.ndarray, transform: CropTransform) -> np.ndarray:
    """Crop a label mask (H, W) the same way, nearest-neighbour, padded with 0; dtype kept."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask: expected an (H, W) mask, got shape {mask.shape}")
    return crop_image(mask, transform, interpolation=cv2.INTER_NEAREST)


def crop_hand(image: np.ndarray, keypoints_2d, visible=None, scale: float = CROP_SCALE, out_size: int = CROP_SIZE,
              mirror: bool = False) -> tuple[np.ndarray, CropTransform]:
    """Crop around a hand's keypoints as the paper does; returns (RGB crop, transform).

    ``image`` goes through ``images.check_image``: (H, W) grayscale becomes 3 channels, RGBA
    loses its alpha, floats in [0, 1] become uint8; sides under 16 pixels are an error.
    """
    image = check_image(image)
    transform = hand_transform(image.shape, keypoints_2d, visible, scale, out_size, mirror)
    return crop_image(image, transform), transform
