"""Keypoint orders, skeleton and the MANO-to-OpenPose mapping: the single source of truth.

Public boundaries use the 21-keypoint OpenPose / MediaPipe / FreiHAND order
(0 wrist; 1-4 thumb CMC, MCP, IP, tip; 5-8 index MCP, PIP, DIP, tip; 9-12 middle;
13-16 ring; 17-20 pinky). MANO's own 16-joint order (wrist, index x3, middle x3,
pinky x3, ring x3, thumb x3) is used only inside the hand model, through
``MANO_TO_OPENPOSE``.
"""
from __future__ import annotations

import numpy as np

FINGERS = ("thumb", "index", "middle", "ring", "pinky")

KEYPOINT_NAMES = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
ROOT = 0
# Keypoint ids per finger, base to tip (OpenPose order).
FINGER_KEYPOINTS = {f: tuple(range(1 + 4 * i, 5 + 4 * i)) for i, f in enumerate(FINGERS)}
FINGERTIPS = tuple(FINGER_KEYPOINTS[f][-1] for f in FINGERS)  # 4, 8, 12, 16, 20
# Parent of each keypoint in the kinematic skeleton (wrist has none).
PARENTS = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)
BONES = tuple((PARENTS[k], k) for k in range(1, NUM_KEYPOINTS))
# Horizontal mirroring keeps keypoint identity (a mirrored right hand is a left hand).

MANO_JOINT_NAMES = (
    "wrist",
    "index_mcp", "index_pip", "index_dip",
    "middle_mcp", "middle_pip", "middle_dip",
    "pinky_mcp", "pinky_pip", "pinky_dip",
    "ring_mcp", "ring_pip", "ring_dip",
    "thumb_cmc", "thumb_mcp", "thumb_ip",
)
NUM_MANO_JOINTS = len(MANO_JOINT_NAMES)
MANO_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)
# Fingertip vertices are appended after MANO's 16 joints in this finger order.
MANO_TIP_ORDER = FINGERS
_MANO_EXTENDED_NAMES = MANO_JOINT_NAMES + tuple(f"{f}_tip" for f in MANO_TIP_ORDER)
# OpenPose keypoint k is row MANO_TO_OPENPOSE[k] of (16 MANO joints + 5 tips).
MANO_TO_OPENPOSE = tuple(_MANO_EXTENDED_NAMES.index(n) for n in KEYPOINT_NAMES)

# Colours per finger for drawing (RGB in [0, 1]).
FINGER_COLORS = {
    "thumb": (0.90, 0.25, 0.20),
    "index": (0.95, 0.65, 0.10),
    "middle": (0.20, 0.70, 0.30),
    "ring": (0.15, 0.50, 0.90),
    "pinky": (0.60, 0.30, 0.85),
}


def bone_color(child: int) -> tuple:
    """Colour of the bone that ends at keypoint ``child``."""
    return FINGER_COLORS[FINGERS[(child - 1) // 4]]


def check_keypoints(keypoints, name: str = "keypoints", dims=(2, 3)) -> np.ndarray:
    """Return ``keypoints`` as a float array of shape (..., 21, d), d in ``dims``, or raise naming it."""
    try:
        arr = np.asarray(keypoints, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected numbers of shape (..., {NUM_KEYPOINTS}, 2 or 3), "
                         f"got {type(keypoints).__name__}") from None
    if arr.ndim < 2 or arr.shape[-2] != NUM_KEYPOINTS or arr.shape[-1] not in dims:
        raise ValueError(
            f"{name}: expected shape (..., {NUM_KEYPOINTS}, {'|'.join(map(str, dims))}) "
            f"in the OpenPose order, got {arr.shape}")
    return arr
