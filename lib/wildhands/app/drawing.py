"""Drawing on images with OpenCV: 2D skeletons, masks and GrabCut seeds, shaded meshes over photographs.

Images are RGB uint8 arrays; coordinates are pixels with centres at integers.
"""
from __future__ import annotations

import cv2
import numpy as np

from wildhands.hand import keypoints as kp
from wildhands.hand.camera import rotation_y

SKIN_RGB = np.array([224.0, 176.0, 150.0])
LIGHT = np.array([0.0, -0.3, -1.0]) / np.linalg.norm([0.0, -0.3, -1.0])  # towards the camera, from above


def _rgb255(color) -> tuple:
    return tuple(int(round(255 * c)) for c in color)


def draw_skeleton(image: np.ndarray, keypoints_2d, visible=None, thickness: int | None = None) -> np.ndarray:
    """A copy of ``image`` with the 21-keypoint skeleton drawn (bones coloured per finger)."""
    out = np.ascontiguousarray(image.copy())
    pts = np.asarray(keypoints_2d, np.float64)[:, :2]
    vis = np.isfinite(pts).all(axis=1) & (np.ones(len(pts), bool) if visible is None else np.asarray(visible) > 0)
    extent = np.ptp(pts[vis], axis=0).max() if vis.sum() > 1 else 50.0
    thickness, radius = skeleton_sizes(extent, thickness)
    shift = 4  # sub-pixel precision for cv2 drawing
    ip = np.round(np.nan_to_num(pts) * (1 << shift)).astype(np.int64)
    for parent, child in kp.BONES:
        if vis[parent] and vis[child]:
            cv2.line(out, tuple(ip[parent]), tuple(ip[child]), _rgb255(kp.bone_color(child)), thickness,
                     cv2.LINE_AA, shift)
    sub_radius = max(1, int(round(radius * (1 << shift))))
    for i in np.flatnonzero(vis):
        cv2.circle(out, tuple(ip[i]), sub_radius, (255, 255, 255), -1, cv2.LINE_AA, shift)
        if radius >= 2:  # an outline on a small hand's dots would hide the hand
            cv2.circle(out, tuple(ip[i]), sub_radius, (30, 30, 30), 1, cv2.LINE_AA, shift)
    return out


def skeleton_sizes(extent_px: float, thickness: int | None = None) -> tuple[int, float]:
    """Bone line width (whole pixels, at least 1) and keypoint dot radius (pixels, sub-pixel) for
    a hand ``extent_px`` across: both follow the hand's size, so a 30-pixel hand stays visible
    under its skeleton and a 1000-pixel one gets lines that can be seen."""
    thickness = thickness or max(1, int(round(extent_px / 80)))
    radius = float(np.clip(extent_px / 90, 0.6, 3 * thickness))
    return thickness, radius


# Colours (RGB) of GrabCut's labels in figure 3(b): background, sure hand, undecided band.
SEED_COLORS = {0: (40, 40, 40), 1: (230, 60, 50), 2: (70, 110, 200), 3: (250, 200, 60)}


def draw_mask(image: np.ndarray, mask, color=(230, 60, 50), alpha: float = 0.5) -> np.ndarray:
    """A copy of ``image`` with the nonzero pixels of ``mask`` (H, W) tinted by ``color`` (RGB 0-255)."""
    mask = np.asarray(mask) > 0
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask: shape {mask.shape} is not the image's {image.shape[:2]}")
    out = image.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(color, np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def draw_seed_regions(image: np.ndarray, labels, alpha: float = 0.6) -> np.ndarray:
    """Figure 3(b): GrabCut's seed labels (``masks.seed_regions``, cv2.GC_*) over ``image``:
    sure hand red, undecided band blue (probable background) or yellow (probable hand),
    background darkened."""
    out = image
    for value, color in SEED_COLORS.items():
        out = draw_mask(out, np.asarray(labels) == value, color, alpha)
    return out


def draw_mesh(image: np.ndarray, vertices_2d, vertices_3d, faces, color=SKIN_RGB, alpha: float = 0.65) -> np.ndarray:
    """A copy of ``image`` with a mesh drawn over it: faces filled far to near (painter's algorithm),
    Lambert-shaded from their normals. ``vertices_3d``: camera frame (x right, y down, z away)."""
    out = image.astype(np.float32).copy()
    layer = np.zeros_like(out)
    cover = np.zeros(image.shape[:2], np.uint8)
    v2 = np.asarray(vertices_2d, np.float64)
    v3 = np.asarray(vertices_3d, np.float64)
    faces = np.asarray(faces)
    tri = v3[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    shade = 0.35 + 0.65 * np.abs(normals @ LIGHT)  # two-sided: mirrored meshes keep their look
    order = np.argsort(-tri[:, :, 2].mean(axis=1))  # farthest first
    shift = 4
    pts = np.round(v2[faces] * (1 << shift)).astype(np.int32)
    for f in order:
        c = tuple(float(v) for v in np.clip(np.asarray(color) * shade[f], 0, 255))
        cv2.fillConvexPoly(layer, pts[f], c, cv2.LINE_AA, shift)
        cv2.fillConvexPoly(cover, pts[f], 1, cv2.LINE_8, shift)
    mask = (cover > 0)[..., None]
    out = np.where(mask, (1 - alpha) * out + alpha * layer, out)
    return np.clip(out, 0, 255).astype(np.uint8)


def draw_hand_overlay(image: np.ndarray, hands) -> np.ndarray:
    """``hands``: (vertices_2d, vertices_3d, faces, keypoints_2d) per hand; meshes first, then skeletons."""
    out = image
    for vertices_2d, vertices_3d, faces, _ in hands:
        out = draw_mesh(out, vertices_2d, vertices_3d, faces)
    for *_, keypoints_2d in hands:
        out = draw_skeleton(out, keypoints_2d)
    return out


# Views of a camera-frame mesh as in figure 9 of the paper: rotations about the vertical axis.
FIGURE9_VIEWS = {"front": 0.0, "side": 90.0, "back": 180.0}


def render_view(vertices_3d, faces, keypoints_3d=None, angle_deg: float = 0.0, size: int = 320,
                background=(255, 255, 255)) -> np.ndarray:
    """The mesh (camera frame, metres) turned by ``angle_deg`` about the image's vertical axis,
    fitted into a ``size`` square canvas, shaded, with its skeleton."""
    turn = rotation_y(np.deg2rad(angle_deg))
    v = np.asarray(vertices_3d, np.float64) @ turn.T
    centre = (v.max(axis=0) + v.min(axis=0)) / 2
    scale = 0.85 * size / max(np.ptp(v[:, :2], axis=0).max(), 1e-9)
    to_px = lambda p: (p[:, :2] - centre[:2]) * scale + (size - 1) / 2  # noqa: E731
    canvas = np.full((size, size, 3), background, np.uint8)
    out = draw_mesh(canvas, to_px(v), v, faces, alpha=1.0)
    if keypoints_3d is not None:
        out = draw_skeleton(out, to_px(np.asarray(keypoints_3d, np.float64) @ turn.T))
    return out
