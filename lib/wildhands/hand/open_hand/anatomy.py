"""The open hand's anatomy: the rest skeleton, with joints where real hands have them.

Rest frame (metres, right hand): the flat hand, fingers along +x, the back of the hand facing +y
(the palm faces -y), the thumb on the -z side (radial) and the little finger on +z (ulnar); the
wrist keypoint is the origin and the middle finger's MCP lies on +x. The rest pose has the fingers
straight and slightly spread and the thumb in its natural rest position (about 40 degrees from
the middle finger, a little palmar, its nail turned radially).

Skeleton: MANO's 16 joints and kinematic tree (``keypoints.MANO_JOINT_NAMES``). The palm's joints
and each digit's bone lengths are the medians of real captured hands (DexYCB's training
subjects, ``PALM_JOINTS_MM``, ``BONE_LENGTHS_MM``), in the keypoint convention that MANO-based
data sets and 2D annotators share: wrist to middle fingertip about 169 mm, the MCPs 66 mm apart
(index to little finger), the palm about 85 mm broad across the knuckles. Also owns each digit's
cross-sections (``DIGIT_SECTIONS``), which the surface and the measurements read.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wildhands.hand import keypoints as kp
from wildhands.hand.camera import rotate_vector

MM = 1e-3


# The skeleton's joints follow real captured hands: the medians over DexYCB's training subjects
# 01-08 (Chao et al., CVPR 2021, CC BY-NC 4.0; 29k poses, mirrored to right hands), as
# ``data.real_pose_space.real_proportions`` measures them (tests/test_real_poses.py checks these
# numbers against it). Millimetres. Each digit's base joint (thumb CMC, finger MCP) in the rest
# frame above, the middle MCP on the x axis; the palm's joints are rigid, so these are exact per hand.
PALM_JOINTS_MM = {
    "thumb": (22.7, -17.7, -25.1),
    "index": (84.9, -6.0, -23.9),
    "middle": (92.2, 0.0, 0.0),
    "ring": (80.7, -0.4, 24.4),
    "pinky": (68.5, -4.9, 42.2),
}
# Each digit's three bones, base joint to tip: proximal, middle, distal phalanx (the thumb's
# metacarpal, proximal, distal phalanx); the tip is the end of the pad.
BONE_LENGTHS_MM = {
    "thumb": (31.0, 26.8, 34.0),
    "index": (31.7, 21.3, 22.3),
    "middle": (30.6, 22.4, 23.8),
    "ring": (28.0, 23.9, 23.1),
    "pinky": (20.9, 18.7, 19.8),
}
# Rest directions: fingers spread in the palm plane (degrees towards the little finger), the thumb
# turned radially, tilted palmar, and pronated about its axis (its nail faces radially).
FINGER_SPREAD_DEG = {"index": -8.0, "middle": 0.0, "ring": 7.0, "pinky": 15.0}
THUMB_AZIMUTH_DEG = 42.0
THUMB_ELEVATION_DEG = 12.0
THUMB_PRONATION_DEG = 70.0

FINGERS4 = ("index", "middle", "ring", "pinky")
# MANO joint ids per digit, base to distal.
DIGIT_JOINTS = {"index": (1, 2, 3), "middle": (4, 5, 6), "pinky": (7, 8, 9), "ring": (10, 11, 12),
                "thumb": (13, 14, 15)}

# Cross-section of each digit (half-breadth, dorsal half-depth, palmar half-depth, metres) at the
# base, the proximal and the distal interphalangeal joints and the pad; Buchholz & Armstrong 1991,
# Vergara et al. 2017 (index: breadth 19.5 / 16.8 / 14.9 mm along the phalanges).
DIGIT_SECTIONS = {
    #          base                PIP (thumb: MCP)    DIP (thumb: IP)     pad
    "index": ((10.2, 8.4, 9.4), (9.5, 7.6, 8.0), (8.3, 6.6, 7.0), (7.8, 5.2, 7.0)),
    "middle": ((10.3, 8.6, 9.6), (9.7, 7.8, 8.2), (8.5, 6.8, 7.1), (8.0, 5.3, 7.2)),
    "ring": ((9.6, 8.2, 9.2), (9.1, 7.3, 7.7), (8.1, 6.4, 6.8), (7.6, 5.0, 6.8)),
    "pinky": ((8.6, 7.4, 8.2), (8.0, 6.5, 6.9), (7.2, 5.8, 6.1), (6.8, 4.6, 6.0)),
    "thumb": ((12.5, 10.5, 12.0), (11.2, 9.0, 10.0), (10.7, 7.8, 8.8), (10.0, 5.9, 9.0)),
}


# Where each digit's cylinder starts, along its axis from the base joint (inside the palm).
DIGIT_START = {"index": -14 * MM, "middle": -14 * MM, "ring": -14 * MM, "pinky": -14 * MM, "thumb": -6 * MM}


@dataclass
class Digit:
    """One digit's rest geometry: a straight bone axis from ``base`` (MCP, or the thumb's CMC)
    along ``direction``, with dorsal (nail-side) direction ``dorsal``."""
    name: str
    base: np.ndarray
    direction: np.ndarray
    dorsal: np.ndarray
    lengths: tuple          # the three segments from the base joint to the tip, metres

    @property
    def lateral(self) -> np.ndarray:
        return np.cross(self.direction, self.dorsal)

    @property
    def joint_offsets(self) -> np.ndarray:
        """Distances of the base, middle, distal joint and the tip from the base, along the axis."""
        return np.concatenate([[0.0], np.cumsum(self.lengths)])

    @property
    def points(self) -> np.ndarray:
        """(4, 3) the three joints and the tip."""
        return self.base + self.joint_offsets[:, None] * self.direction


@dataclass
class Skeleton:
    digits: dict             # name -> Digit
    wrist: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @property
    def joints(self) -> np.ndarray:
        """(16, 3) MANO order."""
        out = np.zeros((16, 3))
        out[0] = self.wrist
        for name, ids in DIGIT_JOINTS.items():
            out[list(ids)] = self.digits[name].points[:3]
        return out

    @property
    def tips(self) -> np.ndarray:
        """(5, 3) fingertips in MANO's tip order (thumb, index, middle, ring, pinky)."""
        return np.stack([self.digits[f].points[3] for f in kp.MANO_TIP_ORDER])


def unit(v) -> np.ndarray:
    """``v`` (..., 3) scaled to unit length along its last axis."""
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def rest_skeleton(size: float = 1.0, palm_breadth: float = 1.0, palm_length: float = 1.0,
                  palm_thickness: float = 1.0, finger_lengths: dict | None = None) -> Skeleton:
    """The flat rest hand's skeleton, with optional anatomical variation (ratios to the average):
    overall ``size``; ``palm_breadth``, ``palm_length`` and ``palm_thickness`` stretch the palm
    about the wrist across, along and through it (moving the MCPs and the thumb's CMC);
    ``finger_lengths`` per digit scale its bones ("thumb": its metacarpal too)."""
    finger_lengths = finger_lengths or {}
    stretch = size * MM * np.array([palm_length, palm_thickness, palm_breadth])
    up = np.array([0.0, 1.0, 0.0])
    digits = {}
    for name in FINGERS4:
        direction = rotate_vector(np.array([1.0, 0.0, 0.0]), up, -FINGER_SPREAD_DEG[name])
        digits[name] = Digit(name, np.array(PALM_JOINTS_MM[name]) * stretch, direction, up.copy(),
                             _bones(name, size, finger_lengths))
    direction = rotate_vector(np.array([1.0, 0.0, 0.0]), up, THUMB_AZIMUTH_DEG)    # towards -z
    side = unit(np.cross(direction, up))                                             # palm-plane normal side
    direction = rotate_vector(direction, side, -THUMB_ELEVATION_DEG)                 # tilt palmar (-y)
    dorsal = unit(up - (up @ direction) * direction)
    dorsal = rotate_vector(dorsal, direction, -THUMB_PRONATION_DEG)                  # nail turns radially
    digits["thumb"] = Digit("thumb", np.array(PALM_JOINTS_MM["thumb"]) * stretch, direction, dorsal,
                            _bones("thumb", size, finger_lengths))
    return Skeleton(digits)


def _bones(name: str, size: float, finger_lengths: dict) -> tuple:
    return tuple(length * MM * size * finger_lengths.get(name, 1.0) for length in BONE_LENGTHS_MM[name])


def hand_length(skeleton: Skeleton | None = None) -> float:
    """Wrist to the middle fingertip of the flat rest hand, metres (anthropometry's hand length)."""
    skeleton = skeleton or rest_skeleton()
    return float(np.linalg.norm(skeleton.digits["middle"].points[3] - skeleton.wrist))
