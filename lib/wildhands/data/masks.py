"""Hand masks for the mask loss: GrabCut initialised from 2D joints (paper section 7, figure 3).

Seeds (figure 3b): 1-pixel lines along the skeleton (``keypoints.BONES``) and the palm
triangles spanned by joints on the palm's surface (``PALM_TRIANGLES``) are sure foreground;
pixels within ``band`` pixels of them are undecided; the rest is sure background. ``band``
is 70 pixels of the 320 crop of 2.2 l around the hand (paper), converted to the image's own
pixels through the hand's size, so it means the same on a 320 crop, a 1.5 l STB crop or a
whole photograph.

The paper does not say which GrabCut label the undecided band gets. We label it *probable
background* (``band_label="probable_background"``): at 2.2 l the band is mostly background,
and labelling it probable foreground lets its background colours into GrabCut's foreground
model, which then keeps much of the band. Measured against the rendered silhouettes of 80
synthetic samples (the smoke profile's set; notebook 01 repeats it): mean IoU 0.95 with
probable background, 0.92 with ``"split"`` (probable foreground within a finger's half-width
of the skeleton, probable background beyond), 0.75 with probable foreground.

GrabCut's cost grows with the image: run it on the crop. ``MaskCache`` keeps the masks of
real data sets as PNG files, computed once.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from wildhands.data.crops import crop_box, visible_mask
from wildhands.data.images import check_image
from wildhands.fileio import write_bytes
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import CROP_SCALE, CROP_SIZE

# Triangles of joints on the palm's surface (wrist, thumb base, MCPs), filled as foreground:
# the palm fan from the wrist, the thenar web (thumb CMC, thumb MCP, index MCP) and the
# knuckle row.
PALM_TRIANGLES = ((0, 1, 5), (0, 5, 9), (0, 9, 13), (0, 13, 17), (1, 2, 5), (5, 9, 13), (5, 13, 17))
BAND_LABELS = ("probable_background", "split", "probable_foreground")
REFERENCE_CROP_SIZE = CROP_SIZE      # band widths are pixels of this crop ...
REFERENCE_CROP_SCALE = CROP_SCALE    # ... of this many times l around the hand
FINGER_HALF_WIDTH = 9          # pixels at the 320 crop (a finger is about 18 px wide at 2.2 l)


def seed_regions(shape, keypoints_2d, visible=None, band: float = 70,
                 band_label: str = "probable_background") -> np.ndarray:
    """GrabCut labels (``cv2.GC_*``, uint8 H x W) for an image of ``shape`` from its 2D joints (figure 3b).

    ``band`` is in pixels of the 320 crop of 2.2 l around the hand. Bones and triangles are
    drawn only between visible keypoints; at least two must be visible.
    """
    if band_label not in BAND_LABELS:
        raise ValueError(f"band_label: expected one of {BAND_LABELS}, got {band_label!r}")
    if not band >= 0:
        raise ValueError(f"band: expected a width >= 0 in pixels, got {band}")
    points = kp.check_keypoints(keypoints_2d, "keypoints_2d")[..., :2]
    vis = visible_mask(visible)
    if vis.sum() < 2:
        raise ValueError("keypoints_2d: GrabCut seeds need at least two visible keypoints")
    height, width = int(shape[0]), int(shape[1])
    # Image pixels per pixel of the reference crop, from the hand's own size.
    factor = crop_box(points, vis, REFERENCE_CROP_SCALE)[2] / REFERENCE_CROP_SIZE

    sure = np.zeros((height, width), np.uint8)
    limit = 4 * max(height, width)  # keeps far-off keypoints inside int32 for cv2's clipping
    pts = np.round(np.clip(points, -limit, limit)).astype(np.int32)
    for parent, child in kp.BONES:
        if vis[parent] and vis[child]:
            cv2.line(sure, tuple(pts[parent].tolist()), tuple(pts[child].tolist()), 1, thickness=1)
    for tri in PALM_TRIANGLES:
        if vis[list(tri)].all():
            cv2.fillConvexPoly(sure, pts[list(tri)], 1)
    if not sure.any():
        raise ValueError(f"keypoints_2d: no skeleton pixel falls inside the {width}x{height} image")

    distance = cv2.distanceTransform(1 - sure, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    labels = np.full((height, width), cv2.GC_BGD, np.uint8)
    labels[distance <= band * factor] = cv2.GC_PR_FGD if band_label == "probable_foreground" else cv2.GC_PR_BGD
    if band_label == "split":
        labels[distance <= FINGER_HALF_WIDTH * factor] = cv2.GC_PR_FGD
    labels[sure > 0] = cv2.GC_FGD
    return labels


def grabcut_hand_mask(image_rgb, keypoints_2d, visible=None, band: float = 70, iterations: int = 5,
                      band_label: str = "probable_background") -> np.ndarray:
    """Hand mask {0, 1} (uint8, H x W) of an RGB image from its 2D joints (figure 3c).

    ``image_rgb`` goes through ``images.check_image`` (grayscale to 3 channels, RGBA without
    alpha). When the band covers the whole image, its border rows and columns are taken as
    background so that GrabCut has a background to model.
    """
    image = check_image(image_rgb, "image_rgb")
    if int(iterations) != iterations or iterations < 1:
        raise ValueError(f"iterations: expected a positive integer, got {iterations}")
    labels = seed_regions(image.shape, keypoints_2d, visible, band, band_label)
    if not (labels == cv2.GC_BGD).any():
        border = np.zeros(labels.shape, bool)
        border[[0, -1], :] = border[:, [0, -1]] = True
        labels[border & (labels != cv2.GC_FGD)] = cv2.GC_BGD
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    # GrabCut's colour models do not depend on the channel order: RGB goes in as it is.
    cv2.grabCut(image, labels, None, background, foreground, int(iterations), cv2.GC_INIT_WITH_MASK)
    return ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).astype(np.uint8)


def mask_iou(a, b) -> float:
    """Intersection over union of two masks (nonzero = inside); 1.0 when both are empty."""
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    if a.shape != b.shape:
        raise ValueError(f"masks: cannot compare shapes {a.shape} and {b.shape}")
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


class MaskCache:
    """GrabCut masks computed once per (image id, keypoints, visibility) and kept as PNG files.

    ``directory`` holds one ``<key>.png`` (0/255) per mask, written atomically; the key hashes
    the image id, the keypoints (to 0.01 px), their visibility and the GrabCut settings.
    """

    def __init__(self, directory, band: float = 70, iterations: int = 5,
                 band_label: str = "probable_background"):
        if band_label not in BAND_LABELS:
            raise ValueError(f"band_label: expected one of {BAND_LABELS}, got {band_label!r}")
        self.directory = Path(directory)
        self.band, self.iterations, self.band_label = float(band), int(iterations), band_label
        self.computed = 0  # masks computed (not read from disk) by this instance

    def key(self, image_id: str, keypoints_2d, visible=None) -> str:
        points = kp.check_keypoints(keypoints_2d, "keypoints_2d")[..., :2]
        digest = hashlib.sha1(np.round(points, 2).astype(np.float64).tobytes())
        digest.update(visible_mask(visible).tobytes())
        digest.update(f"{image_id}|{self.band}|{self.iterations}|{self.band_label}".encode())
        return digest.hexdigest()[:24]

    def path(self, image_id: str, keypoints_2d, visible=None) -> Path:
        return self.directory / f"{self.key(image_id, keypoints_2d, visible)}.png"

    def get(self, image_id: str, image_rgb, keypoints_2d, visible=None) -> np.ndarray:
        """The cached mask of this image and hand, computing and storing it on first use."""
        path = self.path(image_id, keypoints_2d, visible)
        if path.is_file():
            cached = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if cached is not None and cached.shape == np.shape(image_rgb)[:2]:
                return (cached > 0).astype(np.uint8)
        mask = grabcut_hand_mask(image_rgb, keypoints_2d, visible, self.band, self.iterations, self.band_label)
        self.computed += 1
        ok, payload = cv2.imencode(".png", mask * 255)
        if not ok:
            raise RuntimeError(f"could not encode the mask of {image_id!r} as PNG")
        write_bytes(path, payload.tobytes())
        return mask


def grabcut_report(samples, band: float = 70, iterations: int = 5, band_labels=BAND_LABELS) -> dict:
    """GrabCut from each sample's 2D keypoints against its rendered silhouette, per band label.

    ``samples``: dicts with ``image``, ``keypoints_2d``, ``visible`` and ``mask`` (synthetic).
    Returns {band_label: {"iou": [...], "mean_iou": m, "median_iou": md}} and the masks of the
    first label under ``"masks"`` (for figures).
    """
    report, masks = {}, []
    for label in band_labels:
        ious = []
        for s in samples:
            mask = grabcut_hand_mask(s["image"], s["keypoints_2d"], s.get("visible"), band, iterations, label)
            ious.append(mask_iou(mask, s["mask"]))
            if label == band_labels[0]:
                masks.append(mask)
        report[label] = {"iou": ious, "mean_iou": float(np.mean(ious)), "median_iou": float(np.median(ious))}
    report["masks"] = masks
    return report
