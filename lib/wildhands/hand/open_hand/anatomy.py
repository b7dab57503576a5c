"""The open hand's anatomy: published proportions and the rest skeleton built from them.

Rest frame (metres, right hand): the flat hand, fingers along +x, the back of the hand facing +y
(the palm faces -y), the thumb on the -z side (radial) and the little finger on +z (ulnar); the
wrist keypoint, the centre of the wrist crease, is the origin. The rest pose has the fingers
straight and slightly spread and the thumb in its natural rest position (about 40 degrees from
the middle finger, a little palmar, its nail turned radially).

Skeleton: MANO's 16 joints and kinematic tree (``keypoints.MANO_JOINT_NAMES``). Joint centres
follow Buchholz, Armstrong & Goldstein (1992): segment lengths and joint locations as fractions
of hand length (HL) and hand breadth (HB), scaled so that the wrist crease to the middle fingertip
is 0.185 m; the thumb's CMC and the index MCP sit where annotators put them (``BASE_SHIFT``).
The palm is about 85 mm broad across the knuckles. Also owns each digit's cross-sections
(``DIGIT_SECTIONS``), which the surface and the measurements read.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wildhands.hand import keypoints as kp
from wildhands.hand.camera import rotate_vector

MM = 1e-3


HAND_LENGTH = 0.185    # wrist crease to middle fingertip (adults: men 188.5 mm, women 170 mm; Zafar 2017)
HAND_BREADTH = 0.085   # palm breadth at the MCPs (Buchholz's HB)
# Buchholz et al. 1992, segment lengths as fractions of HL: metacarpal (CMC to MCP, along the hand
# axis), proximal, middle and distal phalanx; the thumb's metacarpal, proximal and distal phalanx.
SEGMENT_RATIOS = {
    "thumb": (0.251, 0.196, 0.158),
    "index": (0.374, 0.245, 0.143, 0.097),
    "middle": (0.373, 0.266, 0.170, 0.108),
    "ring": (0.336, 0.244, 0.165, 0.107),
    "pinky": (0.295, 0.204, 0.117, 0.093),
}
CMC_RATIO = 0.073      # the CMC joints lie 0.073 HL distal of the wrist crease (Buchholz)
# Buchholz's hand length reaches the middle fingertip at 0.99 of HL: scale HL so that it is HAND_LENGTH.
_HL = HAND_LENGTH / (CMC_RATIO + sum(SEGMENT_RATIOS["middle"]))
# Lateral joint positions in HB, radial positive (Buchholz): MCPs, and the thumb's CMC.
MCP_LATERAL = {"index": 0.251, "middle": 0.0, "ring": -0.206, "pinky": -0.402}
THUMB_CMC_LATERAL = 0.196
# Dorsal offsets of the MCP centres (transverse metacarpal arch) and of the thumb's CMC, metres.
MCP_DORSAL = {"index": 1.0 * MM, "middle": 1.5 * MM, "ring": 0.0, "pinky": -3.0 * MM}
THUMB_CMC_DORSAL = -9.0 * MM
# Rest directions: fingers spread in the palm plane (degrees towards the little finger), the thumb
# turned radially, tilted palmar, and pronated about its axis (its nail faces radially).
FINGER_SPREAD_DEG = {"index": -8.0, "middle": 0.0, "ring": 7.0, "pinky": 15.0}
THUMB_AZIMUTH_DEG = 42.0
THUMB_ELEVATION_DEG = 12.0
THUMB_PRONATION_DEG = 70.0
# Where annotators put two keypoints relative to Buchholz's joint centres (systematic 2D-fit
# residuals on labelled photos of four data sets, 13 distinct hands): the thumb's CMC at the
# visible base of the thumb, 4 mm distal along it, and the index MCP 2.5 mm proximal. The base
# joint moves along its digit; the next joint stays.
BASE_SHIFT = {"index": -2.5 * MM, "thumb": 4.0 * MM}

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
    ``finger_lengths`` per digit scale its phalanges ("thumb": its metacarpal too)."""
    finger_lengths = finger_lengths or {}
    hl, hb = _HL * size, HAND_BREADTH * size * palm_breadth
    up = np.array([0.0, 1.0, 0.0])
    digits = {}
    for name in FINGERS4:
        metacarpal, *phalanges = SEGMENT_RATIOS[name]
        base = np.array([(CMC_RATIO + metacarpal) * hl * palm_length, MCP_DORSAL[name] * size * palm_thickness,
                         -MCP_LATERAL[name] * hb])
        direction = rotate_vector(np.array([1.0, 0.0, 0.0]), up, -FINGER_SPREAD_DEG[name])
        lengths = [r * hl * finger_lengths.get(name, 1.0) for r in phalanges]
        digits[name] = _shift_base(Digit(name, base, direction, up.copy(), tuple(lengths)), size)
    scale = finger_lengths.get("thumb", 1.0)
    base = np.array([CMC_RATIO * hl * palm_length, THUMB_CMC_DORSAL * size * palm_thickness,
                     -THUMB_CMC_LATERAL * hb])
    direction = rotate_vector(np.array([1.0, 0.0, 0.0]), up, THUMB_AZIMUTH_DEG)    # towards -z
    side = unit(np.cross(direction, up))                                             # palm-plane normal side
    direction = rotate_vector(direction, side, -THUMB_ELEVATION_DEG)                 # tilt palmar (-y)
    dorsal = unit(up - (up @ direction) * direction)
    dorsal = rotate_vector(dorsal, direction, -THUMB_PRONATION_DEG)                  # nail turns radially
    lengths = tuple(r * hl * scale for r in SEGMENT_RATIOS["thumb"])
    digits["thumb"] = _shift_base(Digit("thumb", base, direction, dorsal, lengths), size)
    return Skeleton(digits)


def _shift_base(digit: Digit, size: float) -> Digit:
    shift = BASE_SHIFT.get(digit.name, 0.0) * size
    lengths = (digit.lengths[0] - shift,) + tuple(digit.lengths[1:])
    return Digit(digit.name, digit.base + shift * digit.direction, digit.direction, digit.dorsal, lengths)

