"""The open hand model: a MANO-format right hand that the project builds itself, deterministically.

MANO's files are licensed and cannot ship, so this module builds a hand model in MANO's pickle
format that ``smplx`` loads unchanged (``wildhands.hand.hand_model.HandModel``); it is the default
when no MANO file is present. Everything derives from published anthropometry and joint ranges
(../shared/hand_anatomy.md):

Rest frame (metres, right hand): the flat hand, fingers along +x, the back of the hand facing +y
(the palm faces -y), the thumb on the -z side (radial) and the little finger on +z (ulnar); the
wrist keypoint, the centre of the wrist crease, is the origin. The rest pose has the fingers
straight and slightly spread and the thumb in its natural rest position (about 40 degrees from
the middle finger, a little palmar, its nail turned radially).

Skeleton: MANO's 16 joints and kinematic tree (``keypoints.MANO_JOINT_NAMES``). Joint centres
follow Buchholz, Armstrong & Goldstein (1992): segment lengths and joint locations as fractions
of hand length (HL) and hand breadth (HB), scaled so that the wrist crease to the middle fingertip
is 0.185 m; the thumb's CMC and the index MCP sit where annotators put them (``BASE_SHIFT``);
the fingertip keypoints are surface vertices at the end of each finger pad. The palm is about
85 mm broad across the knuckles.

Surface: an implicit function (negative inside): per digit an elliptic generalised cylinder along
its bone axis whose breadth, dorsal depth and palmar depth vary along it (knuckle bumps, palmar
creases and pads, a flat nail plate, a rounded tip), a palm slab with rounded edges, a transverse
arch and a hollow centre, thenar and hypothenar eminences, palmar pads at the finger bases, dorsal
knuckles and a short wrist stump, joined by smooth unions. It is polygonised with marching cubes,
decimated by quadric error to about MANO's resolution and relaxed onto the surface
(``wildhands.hand.mesh_ops``): a closed, consistently oriented, outward-facing triangle mesh.

Skinning: every vertex belongs to the palm and at most one digit; weights blend smoothly across
each joint along the digit, and the web between two fingers is shared between them with a
compactly supported partition (no weight reaches a finger that is not adjacent to the vertex).

Regressor: per joint, non-negative weights over a ring of vertices around it (rows sum to one)
that reproduce the joint exactly on the template, so joints follow shape changes.

Shape space: principal components of a population of anatomically varied hands (size, palm
breadth and length, finger lengths, finger and palm thickness), made by deforming the template
bone by bone and blending by the skinning weights; 10 directions ordered by variance, scaled to
unit variance per coefficient like MANO's betas.

Pose space: principal components of a corpus of plausible poses (published joint ranges, DIP
following PIP, fingers flexing together, abduction shrinking with flexion, thumb opposition by
inverse kinematics, named grasps and gestures); ``hands_mean`` is the corpus mean (a relaxed
hand: what theta = 0 means with smplx's default ``flat_hand_mean=False``); components are scaled
so that 10 coefficients drawn uniformly in [-2, 2] keep every joint inside its range (such a box
holds the relaxed middle of the corpus; a fist or a flat hand lies at 5-6 units). Corrective pose
blend shapes (``posedirs``) are zero.

The file's ``pose_prior`` (a dict of numpy arrays, MANO joints 1-15 in order): ``joint_names``;
``rest_directions``, ``flexion_directions``, ``abduction_directions`` (15, 3): each joint's bone
direction at rest and where positive flexion / abduction move it (``JointFrames``);
``flexion_axes``, ``abduction_axes`` (15, 3); ``flexion_range_deg``, ``abduction_range_deg``
(15, 2); ``axis_angle_limits`` (45, 2) radians, the corpus' extent per axis-angle component plus
5 degrees (a box for full-pose fitting); ``pca_scale``, ``pca_std`` (45,); ``named_poses``
(name -> (45,) axis-angle); ``corpus_coefficients`` (2000, 10), corpus poses as PCA coefficients,
for drawing realistic poses. ``joint_angles`` reads flexion and abduction back from a pose.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from wildhands.fileio import write_pickle
from wildhands.hand import keypoints as kp
from wildhands.hand import mesh_ops
from wildhands.paths import OPEN_HAND_PATH

MODEL_VERSION = "2.0"
MM = 1e-3

# ----------------------------------------------------------------------------- anatomy

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


def _unit(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _rotate(v, axis, degrees: float) -> np.ndarray:
    """Rodrigues rotation of ``v`` about unit ``axis``."""
    a, t = _unit(axis), np.radians(degrees)
    return v * np.cos(t) + np.cross(a, v) * np.sin(t) + a * (a @ v) * (1 - np.cos(t))


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
        direction = _rotate(np.array([1.0, 0.0, 0.0]), up, -FINGER_SPREAD_DEG[name])
        lengths = [r * hl * finger_lengths.get(name, 1.0) for r in phalanges]
        digits[name] = _shift_base(Digit(name, base, direction, up.copy(), tuple(lengths)), size)
    scale = finger_lengths.get("thumb", 1.0)
    base = np.array([CMC_RATIO * hl * palm_length, THUMB_CMC_DORSAL * size * palm_thickness,
                     -THUMB_CMC_LATERAL * hb])
    direction = _rotate(np.array([1.0, 0.0, 0.0]), up, THUMB_AZIMUTH_DEG)          # towards -z
    side = _unit(np.cross(direction, up))                                             # palm-plane normal side
    direction = _rotate(direction, side, -THUMB_ELEVATION_DEG)                       # tilt palmar (-y)
    dorsal = _unit(up - (up @ direction) * direction)
    dorsal = _rotate(dorsal, direction, -THUMB_PRONATION_DEG)                        # nail turns radially
    lengths = tuple(r * hl * scale for r in SEGMENT_RATIOS["thumb"])
    digits["thumb"] = _shift_base(Digit("thumb", base, direction, dorsal, lengths), size)
    return Skeleton(digits)


def _shift_base(digit: Digit, size: float) -> Digit:
    shift = BASE_SHIFT.get(digit.name, 0.0) * size
    lengths = (digit.lengths[0] - shift,) + tuple(digit.lengths[1:])
    return Digit(digit.name, digit.base + shift * digit.direction, digit.direction, digit.dorsal, lengths)


# ----------------------------------------------------------------------------- implicit surface

def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: a union whose seam is rounded over about ``k`` metres."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _profile(knots, values, u, blur: float) -> np.ndarray:
    """Piecewise-linear profile through (knots, values), smoothed by a Gaussian of width ``blur``
    (evaluated on a fine table, then interpolated at ``u``)."""
    table_u = np.arange(knots[0] - 4 * blur, knots[-1] + 4 * blur, 0.2 * MM)
    table = np.interp(table_u, knots, values)
    kernel = np.exp(-0.5 * (np.arange(-4 * blur, 4 * blur + 1e-12, 0.2 * MM) / blur) ** 2)
    smooth = np.convolve(np.pad(table, len(kernel) // 2, mode="edge"), kernel / kernel.sum(), mode="valid")
    return np.interp(u, table_u, smooth[:len(table_u)])


def _gauss(u, centre, width) -> np.ndarray:
    return np.exp(-0.5 * ((u - centre) / width) ** 2)


def digit_coordinates(points: np.ndarray, digit: Digit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points in a digit's frame: along its axis from the base joint, dorsal, lateral (metres)."""
    rel = points - digit.base
    return rel @ digit.direction, rel @ digit.dorsal, rel @ digit.lateral


def digit_sections(digit: Digit, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half-breadth, dorsal and palmar half-depth of a digit at axial positions ``u``: the
    published sections with knuckle bumps on the dorsal side of the joints, creases on the palmar
    side and pads between them (the fingertip pad the fullest)."""
    j0, j1, j2, tip = digit.joint_offsets
    sections = np.asarray(DIGIT_SECTIONS[digit.name]) * MM
    knots = [DIGIT_START[digit.name], j0, j1, j2, 0.5 * (j2 + tip), tip]
    rows = [sections[0], sections[0], sections[1], sections[2], sections[3], sections[3]]
    breadth, dorsal, palmar = (_profile(knots, [r[i] for r in rows], u, 2.5 * MM) for i in range(3))
    for joint, size in ((j1, 1.0), (j2, 0.8)):
        dorsal = dorsal + 0.7 * MM * size * _gauss(u, joint - 1.0 * MM, 3.0 * MM)
        breadth = breadth + 0.35 * MM * size * _gauss(u, joint, 3.5 * MM)
        palmar = palmar - 0.8 * MM * size * _gauss(u, joint + 0.5 * MM, 1.6 * MM)
    for lo, hi in ((j0, j1), (j1, j2)):
        palmar = palmar + 0.5 * MM * _gauss(u, 0.5 * (lo + hi), 0.22 * (hi - lo))
    palmar = palmar + 0.9 * MM * _gauss(u, j2 + 0.55 * (tip - j2), 0.22 * (tip - j2))
    return breadth, dorsal, palmar


def digit_field(points: np.ndarray, digit: Digit) -> np.ndarray:
    """Approximate signed distance to one digit: an elliptic generalised cylinder from inside the
    palm to the fingertip, with a flat nail plate and rounded ends."""
    u, v, w = digit_coordinates(points, digit)
    j0, j1, j2, tip = digit.joint_offsets
    breadth, dorsal, palmar = digit_sections(digit, u)
    # The nail: the dorsal section turns from an ellipse into a flatter superellipse.
    nail = _smoothstep(u, j2 + 0.15 * (tip - j2), j2 + 0.45 * (tip - j2))
    exponent = 2.0 + 0.8 * nail
    depth = np.where(v > 0, dorsal, palmar)
    radial = (np.abs(w / breadth) ** exponent + np.abs(v / depth) ** exponent) ** (1.0 / exponent)
    radial = np.where(v > 0, radial, np.hypot(w / breadth, v / depth))
    # Rounded ends: the tip cap is longer on the pad side, so the pad reaches round to the tip,
    # whose extreme point along the axis is the tip itself.
    cap = breadth * (1.05 - 0.1 * np.tanh(v / (2 * MM)))
    start = DIGIT_START[digit.name]
    axial = np.maximum(u - (tip - cap), 0.0) / cap + np.maximum(start + 4 * MM - u, 0.0) / (4 * MM)
    return (np.sqrt(radial ** 2 + axial ** 2) - 1.0) * np.minimum(breadth, depth)


def _ellipsoid(points, centre, axes, radii) -> np.ndarray:
    """Approximate signed distance to an ellipsoid with orthonormal ``axes`` (rows) and ``radii``."""
    local = (points - centre) @ np.asarray(axes).T
    return (np.linalg.norm(local / radii, axis=1) - 1.0) * np.min(radii)


def _triangle_distance(points: np.ndarray, a, b, c) -> tuple[np.ndarray, np.ndarray]:
    """Unsigned distance to the triangle (a, b, c), and each point's barycentric weight of ``a``
    at its closest point (1 at a, 0 on the opposite edge)."""
    ab, ac = b - a, c - a
    normal = _unit(np.cross(ab, ac))
    rel = points - a
    plane = rel - (rel @ normal)[:, None] * normal
    # Barycentric coordinates of the projection; points outside use the nearest edge.
    d00, d01, d11 = ab @ ab, ab @ ac, ac @ ac
    d20, d21 = plane @ ab, plane @ ac
    denom = d00 * d11 - d01 * d01
    wb = (d11 * d20 - d01 * d21) / denom
    wc = (d00 * d21 - d01 * d20) / denom
    inside = (wb >= 0) & (wc >= 0) & (wb + wc <= 1)
    best = np.where(inside, np.abs(rel @ normal), np.inf)
    weight_a = np.where(inside, 1 - wb - wc, 0.0)
    for p, q, wp, wq in ((a, b, 1.0, 0.0), (b, c, 0.0, 0.0), (c, a, 0.0, 1.0)):
        e = q - p
        t = np.clip(((points - p) @ e) / (e @ e), 0.0, 1.0)
        dist = np.linalg.norm(points - (p + t[:, None] * e), axis=1)
        closer = dist < best
        best = np.where(closer, dist, best)
        weight_a = np.where(closer, wp * (1 - t) + wq * t, weight_a)
    return best, weight_a


def _polygon_distance(xz: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Signed 2D distance to a closed polygon (negative inside)."""
    a = polygon
    b = np.roll(polygon, -1, axis=0)
    d = np.full(len(xz), np.inf)
    inside = np.zeros(len(xz), bool)
    for p, q in zip(a, b):
        e = q - p
        t = np.clip(((xz - p) @ e) / (e @ e), 0.0, 1.0)
        d = np.minimum(d, np.linalg.norm(xz - (p + t[:, None] * e), axis=1))
        crosses = (p[1] > xz[:, 1]) != (q[1] > xz[:, 1])
        x_at = p[0] + (xz[:, 1] - p[1]) * e[0] / np.where(e[1] == 0, 1e-30, e[1])
        inside ^= crosses & (xz[:, 0] < x_at)
    return np.where(inside, -d, d)


def palm_outline(skeleton: Skeleton) -> np.ndarray:
    """The palm's outline in the (x, z) plane, from the radial side of the wrist stump (cut 26 mm
    proximal of the wrist crease) round the knuckles to its ulnar side, metres."""
    d = skeleton.digits
    mcp = {f: d[f].base[[0, 2]] for f in FINGERS4}
    pts = [(-26 * MM, -25 * MM), (-2 * MM, -26 * MM), (30 * MM, -30 * MM),
           (mcp["index"][0] - 10 * MM, mcp["index"][1] - 17 * MM),
           (mcp["index"][0] + 1 * MM, mcp["index"][1] - 13 * MM),
           (mcp["index"][0] + 3 * MM, mcp["index"][1]),
           (mcp["middle"][0] + 3 * MM, mcp["middle"][1]),
           (mcp["ring"][0] + 3 * MM, mcp["ring"][1]),
           (mcp["pinky"][0] + 3 * MM, mcp["pinky"][1]),
           (mcp["pinky"][0] - 1 * MM, mcp["pinky"][1] + 13 * MM),
           (mcp["pinky"][0] - 10 * MM, mcp["pinky"][1] + 15.5 * MM),
           (35 * MM, 41 * MM), (-2 * MM, 28 * MM), (-26 * MM, 27 * MM)]
    return np.array(pts)


def palm_field(points: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """The palm and a short wrist stump: a rounded-edged slab over ``palm_outline`` whose thickness
    and mid-plane vary (thick at the wrist, thinner at the knuckles, dorsal transverse arch, hollow
    palm centre)."""
    x, y, z = points.T
    d = skeleton.digits
    mcp_x = np.interp(z, [d[f].base[2] for f in FINGERS4], [d[f].base[0] for f in FINGERS4])
    mcp_y = np.interp(z, [d[f].base[2] for f in FINGERS4], [d[f].base[1] for f in FINGERS4])
    t = np.clip(x / mcp_x, 0.0, 1.0)
    centre = t * mcp_y
    across = np.clip((z - 3 * MM) / (38 * MM), -1.0, 1.0)
    dorsal = (15.5 - 6.5 * t + 2.5 * (1 - across ** 2)) * MM
    palmar = (19.0 - 7.0 * t - 2.0 * np.exp(-0.5 * (((x - 0.6 * mcp_x) / (18 * MM)) ** 2
                                                 + ((z - 4 * MM) / (12 * MM)) ** 2))) * MM
    outline = _polygon_distance(points[:, [0, 2]], palm_outline(skeleton))
    height = np.where(y > centre, y - centre - dorsal, centre - y - palmar)
    rounding = 0.85 * np.where(y > centre, dorsal, palmar)
    a, b = outline + rounding, height + rounding
    return np.hypot(np.maximum(a, 0), np.maximum(b, 0)) + np.minimum(np.maximum(a, b), 0) - rounding


def hand_field(points: np.ndarray, skeleton: Skeleton | None = None) -> np.ndarray:
    """Approximate signed distance (metres, negative inside) to the rest hand's surface."""
    skeleton = skeleton or rest_skeleton()
    d = skeleton.digits
    up = np.array([0.0, 1.0, 0.0])
    palm = palm_field(points, skeleton)
    # Thenar eminence along the thumb's metacarpal, hypothenar along the ulnar edge of the palm.
    thumb = d["thumb"]
    along = _unit(thumb.direction * [1, 0, 1])
    centre = thumb.base + 0.42 * thumb.lengths[0] * thumb.direction + np.array([0, -3.5, 6.0]) * MM
    thenar = _ellipsoid(points, centre, [along, up, np.cross(along, up)], np.array([26, 12.5, 15]) * MM)
    palm = _smooth_min(palm, thenar, 9 * MM)
    # The first web space: muscle between the thumb's and the index finger's metacarpals, thick at
    # its base and thinning towards its free edge (thumb MCP to index MCP).
    index = d["index"]
    corner_base = thumb.base + 10 * MM * thumb.direction + np.array([0, 2, 4]) * MM
    corner_thumb = thumb.points[1] - 4 * MM * thumb.direction + 2 * MM * thumb.lateral
    corner_index = index.base - 14 * MM * index.direction - np.array([0, 0, 6]) * MM
    dist, base_weight = _triangle_distance(points, corner_base, corner_thumb, corner_index)
    web = dist - (5.5 + 4.5 * base_weight) * MM
    palm = _smooth_min(palm, web, 6 * MM)
    pinky = d["pinky"].base
    hypo_axis = _unit([pinky[0] - 8 * MM, 0, pinky[2] - 27 * MM])
    centre = np.array([0.45 * pinky[0], -8.5 * MM, 0.5 * (pinky[2] + 27 * MM) + 2 * MM])
    hypothenar = _ellipsoid(points, centre, [hypo_axis, up, np.cross(hypo_axis, up)],
                            np.array([30, 10, 10.5]) * MM)
    palm = _smooth_min(palm, hypothenar, 8 * MM)
    # Palmar pads under the finger bases, and dorsal knuckles (metacarpal heads).
    for name in FINGERS4:
        digit = d[name]
        axes = [digit.direction, up, digit.lateral]
        pad = _ellipsoid(points, digit.base + digit.direction * 9 * MM - up * 5.5 * MM, axes,
                         np.array([12, 7.5, 9.5]) * MM * (DIGIT_SECTIONS[name][0][0] / 10.2))
        palm = _smooth_min(palm, pad, 5 * MM)
        knuckle = _ellipsoid(points, digit.base - digit.direction * 3 * MM + up * 2.5 * MM, axes,
                             np.array([8.0, 7.0, 7.5]) * MM * (DIGIT_SECTIONS[name][0][0] / 10.2))
        palm = _smooth_min(palm, knuckle, 3 * MM)
    fingers = np.min([digit_field(points, d[name]) for name in FINGERS4], axis=0)
    hand = _smooth_min(palm, fingers, 4.5 * MM)
    return _smooth_min(hand, digit_field(points, thumb), 7 * MM)


# ----------------------------------------------------------------------------- mesh

TARGET_VERTICES = 1300
GRID_STEP = 2.0 * MM            # marching-cubes spacing before decimation
DIGIT_EDGE_RATIO = 0.65         # edges on the digits relative to the palm (finer where the hand bends)


def _field(skeleton: Skeleton):
    return lambda points: hand_field(points, skeleton)


def _edge_sizing(points: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """Relative edge length wanted at ``points``: finer on the digits and where the thumb's
    skinning reaches (thenar, first web space), where the surface bends."""
    reach = {name: DIGIT_REACH[_digit_kind(name)][1] - DIGIT_REACH["finger"][1] for name in skeleton.digits}
    near = np.min([digit_field(points, d) - reach[name] for name, d in skeleton.digits.items()], axis=0)
    return DIGIT_EDGE_RATIO + (1 - DIGIT_EDGE_RATIO) * _smoothstep(near, 2 * MM, 10 * MM)


def build_mesh(skeleton: Skeleton, target_vertices: int = TARGET_VERTICES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices, faces, fingertip vertex ids) of the rest hand: marching cubes, quadric decimation
    with finer triangles on the digits, edge flips and relaxation onto the surface. The fingertip
    vertices sit exactly at the digits' tips (the ends of the pads) and stay there."""
    field = _field(skeleton)
    points = np.vstack([skeleton.joints, skeleton.tips])
    low = np.minimum(points.min(0), [-26 * MM, -25 * MM, -30 * MM]) - 25 * MM
    high = np.maximum(points.max(0), [0, 20 * MM, 40 * MM]) + 25 * MM
    verts, faces = mesh_ops.polygonise(field, low, high, GRID_STEP)
    verts, faces = mesh_ops.decimate(verts, faces, target_vertices, length_weight=1.0,
                                     sizing=_edge_sizing(verts, skeleton))
    faces = mesh_ops.flip_edges(verts, faces)
    tip_ids = np.array([np.argmin(np.linalg.norm(verts - tip, axis=1)) for tip in skeleton.tips])
    verts[tip_ids] = skeleton.tips
    sizing = _edge_sizing(verts, skeleton)
    verts = mesh_ops.relax(verts, faces, field, iterations=12, fixed=tip_ids, sizing=sizing)
    faces = mesh_ops.flip_edges(verts, faces)
    verts = mesh_ops.relax(verts, faces, field, iterations=4, fixed=tip_ids, sizing=sizing)
    mesh_ops.check_closed(faces)
    if mesh_ops.signed_volume(verts, faces) <= 0:
        raise RuntimeError("open hand mesh: faces point inwards")
    return verts, faces, tip_ids


# ----------------------------------------------------------------------------- skinning, regressor

# Half-widths of the skinning blend across each joint along a digit: base joint, middle, distal.
BLEND_HALF_WIDTH = {"finger": (10 * MM, 8 * MM, 7 * MM), "thumb": (14 * MM, 9 * MM, 7 * MM)}
# Two digits share a vertex only where their surfaces are this close (the first web space is wide).
SHARE_WIDTH = {"finger": 6 * MM, "thumb": 20 * MM}
DIGIT_REACH = {"finger": (3 * MM, 9 * MM), "thumb": (4 * MM, 28 * MM)}   # fall-off of a digit's pull


def _digit_kind(name: str) -> str:
    return "thumb" if name == "thumb" else "finger"


def skinning_weights(verts: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """(V, 16) linear-blend-skinning weights, rows summing to one.

    Each vertex is split between the palm (the wrist joint) and the digits whose surfaces are
    nearest (within ``SHARE_WIDTH`` of the nearest, which happens only in the webs, where the
    palm takes over in the crotch between two digits); along a digit the weight passes from the
    palm to the base joint, then to the middle and distal joints, through smooth steps centred
    on the joints."""
    names = list(DIGIT_JOINTS)
    distance = np.stack([digit_field(verts, skeleton.digits[n]) for n in names], 1)
    width = np.array([SHARE_WIDTH[_digit_kind(n)] for n in names])
    share = np.clip(1.0 - (distance - distance.min(1, keepdims=True)) / width, 0.0, 1.0) ** 2
    share /= share.sum(1, keepdims=True)
    weights = np.zeros((len(verts), 16))
    # In a crotch (two digits sharing equally) neither digit pulls; one digit alone pulls fully.
    alone = np.clip(2.0 * share.max(1) - 1.0, 0.0, 1.0)
    for k, name in enumerate(names):
        digit = skeleton.digits[name]
        kind = _digit_kind(name)
        reach = 1.0 - _smoothstep(distance[:, k], *DIGIT_REACH[kind])
        u = digit_coordinates(verts, digit)[0]
        steps = [_smoothstep(u, c - h, c + h) for c, h in zip(digit.joint_offsets[:3], BLEND_HALF_WIDTH[kind])]
        part = share[:, k] * reach * (0.3 + 0.7 * alone)
        for joint, lo, hi in zip(DIGIT_JOINTS[name], steps, steps[1:] + [np.zeros(len(verts))]):
            weights[:, joint] += part * (lo - hi)
    weights[:, 0] = np.maximum(1.0 - weights[:, 1:].sum(1), 0.0)
    return weights / weights.sum(1, keepdims=True)


def _exact_weights(points: np.ndarray, target: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Non-negative weights over ``points`` (n, 3), close to ``prior`` (relative to it), that sum to
    one and whose weighted mean is exactly ``target``."""
    from scipy.optimize import lsq_linear

    a = np.vstack([points.T, np.ones(len(points))])
    b = np.append(target, 1.0)
    prior = prior / prior.sum()
    scale = 1.0 / np.sqrt(prior)
    lam = 1e3 / np.abs(points - target).max()
    system = np.vstack([lam * a, np.diag(scale)])
    rhs = np.concatenate([lam * b, prior * scale])
    w = lsq_linear(system, rhs, bounds=(0.0, np.inf), method="bvls").x
    support = w > 1e-9
    a_s = a[:, support]
    w[support] += a_s.T @ np.linalg.solve(a_s @ a_s.T, b - a @ w)   # exact, a least-norm touch
    w[~support] = 0.0
    return w


def joint_regressor(verts: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """(16, V) regressor: per joint, weights over the surface ring around it (a band across the
    digit at the joint; the wrist crease for the wrist) that reproduce the joint exactly."""
    joints = skeleton.joints
    reg = np.zeros((16, len(verts)))
    rows = {0: (np.array([1.0, 0.0, 0.0]), 0.0, np.zeros(3), 4 * MM, 40 * MM)}
    for name, ids in DIGIT_JOINTS.items():
        digit = skeleton.digits[name]
        for k, joint in enumerate(ids):
            radius = (26 if name == "thumb" and k == 0 else 18 if k == 0 else 14) * MM
            rows[joint] = (digit.direction, digit.joint_offsets[k], digit.base, 4 * MM, radius)
    for joint, (axis, offset, origin, band, radius) in rows.items():
        along = (verts - origin) @ axis - offset
        near = (np.abs(along) < band) & (np.linalg.norm(verts - joints[joint], axis=1) < radius)
        ids = np.flatnonzero(near)
        prior = np.exp(-0.5 * (along[ids] / (0.5 * band)) ** 2)
        reg[joint, ids] = _exact_weights(verts[ids], joints[joint], prior)
    return reg


def palm_centre_vertices(verts: np.ndarray, skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """Vertex ids and weights for STB's palm-centre keypoint: the point midway between the wrist and
    the middle MCP, from the palmar and dorsal surface vertices around it."""
    target = 0.5 * (skeleton.joints[0] + skeleton.joints[kp.MANO_JOINT_NAMES.index("middle_mcp")])
    lateral = np.linalg.norm((verts - target)[:, [0, 2]], axis=1)
    ids = np.flatnonzero(lateral < 9 * MM)
    weights = _exact_weights(verts[ids], target, np.exp(-0.5 * (lateral[ids] / (5 * MM)) ** 2))
    keep = weights > 0
    return ids[keep], weights[keep]


# ----------------------------------------------------------------------------- shape space

NUM_BETAS = 10
SHAPE_POPULATION = 600
# Population spread (standard deviations of ratios to the average hand): hand length about 10 mm
# (men and women pooled, Zafar 2017), palm breadth, length and thickness, finger lengths (common
# and per digit) and thickness (common, correlated with the palm's, and per digit).
SHAPE_SPREAD = {"size": 0.055, "palm_breadth": 0.035, "palm_length": 0.03, "palm_thickness": 0.07,
                "finger_length": 0.03, "digit_length": 0.02, "finger_thickness": 0.05, "digit_thickness": 0.02}


@dataclass
class Proportions:
    size: float = 1.0
    palm_breadth: float = 1.0
    palm_length: float = 1.0
    palm_thickness: float = 1.0
    finger_lengths: dict = field(default_factory=dict)
    finger_thickness: dict = field(default_factory=dict)

    def skeleton(self) -> Skeleton:
        return rest_skeleton(self.size, self.palm_breadth, self.palm_length, self.palm_thickness,
                             self.finger_lengths)


def sample_proportions(rng: np.random.Generator) -> Proportions:
    """One anatomically varied hand, as ratios to the average."""
    spread = SHAPE_SPREAD
    palm_thickness = np.exp(rng.normal(0, spread["palm_thickness"]))
    common_length = rng.normal(0, spread["finger_length"])
    common_thickness = 0.6 * np.log(palm_thickness) + rng.normal(0, spread["finger_thickness"])
    names = list(DIGIT_JOINTS)
    return Proportions(
        size=float(np.exp(rng.normal(0, spread["size"]))),
        palm_breadth=float(np.exp(rng.normal(0, spread["palm_breadth"]))),
        palm_length=float(np.exp(rng.normal(0, spread["palm_length"]))),
        palm_thickness=float(palm_thickness),
        finger_lengths={n: float(np.exp(common_length + rng.normal(0, spread["digit_length"]))) for n in names},
        finger_thickness={n: float(np.exp(common_thickness + rng.normal(0, spread["digit_thickness"])))
                          for n in names})


def deform(verts: np.ndarray, weights: np.ndarray, skeleton: Skeleton, proportions: Proportions) -> np.ndarray:
    """The template moved to other ``proportions``: the palm stretches about the wrist, each digit
    segment stretches along its bone and thickens across it, blended by the skinning weights."""
    new = proportions.skeleton()
    p = proportions
    palm = verts * np.array([p.palm_length, p.palm_thickness, p.palm_breadth]) * p.size
    out = weights[:, :1] * palm
    for name, ids in DIGIT_JOINTS.items():
        old_d, new_d = skeleton.digits[name], new.digits[name]
        old_pts, new_pts = old_d.points, new_d.points
        for k, joint in enumerate(ids):
            rel = verts - old_pts[k]
            along = rel @ old_d.direction
            across = rel - along[:, None] * old_d.direction
            stretch = np.linalg.norm(new_pts[k + 1] - new_pts[k]) / np.linalg.norm(old_pts[k + 1] - old_pts[k])
            moved = (new_pts[k] + (along * stretch)[:, None] * new_d.direction
                     + across * p.size * p.finger_thickness.get(name, 1.0))
            out += weights[:, joint:joint + 1] * moved
    return out


def shape_space(verts: np.ndarray, weights: np.ndarray, skeleton: Skeleton, seed: int = 0,
                count: int = SHAPE_POPULATION, num_betas: int = NUM_BETAS) -> tuple[np.ndarray, np.ndarray]:
    """(shapedirs (V, 3, num_betas), explained variance ratio (num_betas,)) from a population of
    ``count`` varied hands. Coefficients have unit variance over the population; the first
    direction grows the hand, the others' signs make their largest entry positive."""
    rng = np.random.default_rng([seed, 1])
    offsets = np.stack([(deform(verts, weights, skeleton, sample_proportions(rng)) - verts).ravel()
                        for _ in range(count)])
    offsets -= offsets.mean(0)
    _, singular, vt = np.linalg.svd(offsets, full_matrices=False)
    vt = vt[:num_betas] * np.sign(vt[np.arange(num_betas), np.abs(vt[:num_betas]).argmax(1)])[:, None]
    if vt[0] @ verts.ravel() < 0:
        vt[0] = -vt[0]
    std = singular[:num_betas] / np.sqrt(count - 1)
    shapedirs = (vt * std[:, None]).reshape(num_betas, -1, 3).transpose(1, 2, 0)
    return shapedirs, (singular[:num_betas] ** 2) / (singular ** 2).sum()


# ----------------------------------------------------------------------------- pose space

# Joint ranges in degrees, relative to the rest pose (hand_anatomy.md: Eaton's table, clinical
# references). Flexion is positive towards the palm (the thumb's CMC: across the palm towards the
# little finger; its MCP and IP: towards its pad); abduction is positive away from the middle
# finger (the middle finger: radially; the thumb's CMC: palmar, away from the palm).
FINGER_RANGES = {"mcp": ((-30.0, 90.0), None), "pip": ((0.0, 105.0), (-5.0, 5.0)), "dip": ((0.0, 85.0), (-5.0, 5.0))}
MCP_ABDUCTION = {"index": (-10.0, 20.0), "middle": (-12.0, 12.0), "ring": (-10.0, 18.0), "pinky": (-10.0, 30.0)}
THUMB_RANGES = {"cmc": ((-25.0, 50.0), (-15.0, 45.0)), "mcp": ((-10.0, 55.0), (-8.0, 8.0)),
                "ip": ((-15.0, 80.0), (-5.0, 5.0))}
# Flexing fingers converge towards the thenar (oblique flexion axes): the flexion plane of each
# finger turns radially by this many degrees.
FLEXION_CONVERGENCE_DEG = {"index": 0.0, "middle": 2.0, "ring": 4.0, "pinky": 7.0}
# Opposition pronates the thumb: CMC axial rotation per degree of CMC abduction and flexion.
THUMB_PRONATION_COUPLING = (0.6, 0.3)


def joint_ranges() -> tuple[np.ndarray, np.ndarray]:
    """(15, 2) flexion and (15, 2) abduction ranges in degrees, MANO joints 1-15."""
    flexion, abduction = np.zeros((15, 2)), np.zeros((15, 2))
    for name, ids in DIGIT_JOINTS.items():
        kinds = ("cmc", "mcp", "ip") if name == "thumb" else ("mcp", "pip", "dip")
        for joint, kind in zip(ids, kinds):
            flex, abd = THUMB_RANGES[kind] if name == "thumb" else FINGER_RANGES[kind]
            flexion[joint - 1] = flex
            abduction[joint - 1] = MCP_ABDUCTION[name] if abd is None else abd
    return flexion, abduction


@dataclass
class JointFrames:
    """Per MANO joint 1-15, unit vectors in the rest frame: the direction of the bone the joint
    moves, where positive flexion moves it, and where positive abduction moves it."""
    direction: np.ndarray   # (15, 3)
    flexion: np.ndarray     # (15, 3)
    abduction: np.ndarray   # (15, 3)

    @classmethod
    def from_pose_prior(cls, prior: dict) -> "JointFrames":
        """The frames stored in a model file's ``pose_prior``."""
        return cls(*(np.asarray(prior[k], np.float64) for k in
                     ("rest_directions", "flexion_directions", "abduction_directions")))

    @property
    def flexion_axes(self) -> np.ndarray:
        return np.cross(self.direction, self.flexion)

    @property
    def abduction_axes(self) -> np.ndarray:
        return np.cross(self.direction, self.abduction)


def joint_frames(skeleton: Skeleton) -> JointFrames:
    """Fingers flex towards the palm (the flexion plane turned radially by the convergence angle)
    and abduct away from the middle finger; the thumb's CMC flexes across the palm towards the
    little finger and abducts palmar, its MCP and IP flex towards its pad."""
    up, ulnar = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    direction, flexion, abduction = np.zeros((15, 3)), np.zeros((15, 3)), np.zeros((15, 3))
    for name, ids in DIGIT_JOINTS.items():
        digit = skeleton.digits[name]
        d = digit.direction
        if name == "thumb":
            cmc_flex = _unit(ulnar - (ulnar @ d) * d)
            cmc_abd = _unit(np.cross(d, cmc_flex))
            cmc_abd *= np.sign(-cmc_abd @ up)
            pad = -digit.dorsal
            frames = [(cmc_flex, cmc_abd), (pad, _unit(np.cross(d, pad))), (pad, _unit(np.cross(d, pad)))]
        else:
            flex = _rotate(-up, d, FLEXION_CONVERGENCE_DEG[name])
            away = -ulnar if name in ("index", "middle") else ulnar
            abd = _unit(np.cross(d, flex))
            abd *= np.sign(abd @ away)
            frames = [(flex, abd)] * 3
        for joint, (f, a) in zip(ids, frames):
            direction[joint - 1], flexion[joint - 1], abduction[joint - 1] = d, f, a
    return JointFrames(direction, flexion, abduction)


def _axis_angle_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle to (..., 3, 3) rotation matrices (Rodrigues)."""
    angle = np.linalg.norm(axis_angle, axis=-1, keepdims=True)
    axis = axis_angle / np.maximum(angle, 1e-12)
    x, y, z = np.moveaxis(axis, -1, 0)
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(axis.shape[:-1] + (3, 3))
    s, c = np.sin(angle)[..., None], np.cos(angle)[..., None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def _matrix_axis_angle(matrix: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    shape = matrix.shape[:-2]
    return Rotation.from_matrix(matrix.reshape(-1, 3, 3)).as_rotvec().reshape(shape + (3,))


def angles_to_pose(angles: np.ndarray, frames: JointFrames) -> np.ndarray:
    """(..., 45) MANO axis-angle pose from (..., 15, 3) joint angles in degrees: flexion,
    abduction and axial twist, composed as R = R_flexion R_abduction R_twist about the rest-frame
    axes: the bone leaves its flexion plane by the abduction angle, then turns in that plane by
    the flexion angle (so both stay measurable at any flexion); the twist turns it about itself.
    The thumb's CMC twist adds the pronation that opposition brings."""
    angles = np.radians(np.asarray(angles, np.float64))
    thumb = DIGIT_JOINTS["thumb"][0] - 1
    angles = angles.copy()
    angles[..., thumb, 2] += (THUMB_PRONATION_COUPLING[0] * angles[..., thumb, 1]
                              + THUMB_PRONATION_COUPLING[1] * angles[..., thumb, 0])
    flex = _axis_angle_matrix(angles[..., 0:1] * frames.flexion_axes)
    abd = _axis_angle_matrix(angles[..., 1:2] * frames.abduction_axes)
    twist = _axis_angle_matrix(angles[..., 2:3] * _twist_axes(frames))
    return _matrix_axis_angle(flex @ abd @ twist).reshape(angles.shape[:-2] + (45,))


def _twist_axes(frames: JointFrames) -> np.ndarray:
    """(15, 3) axes of positive axial twist: along each bone, but for the thumb's CMC the sense
    that pronates it (turns its pad from facing the index towards facing the little finger)."""
    axes = frames.direction.copy()
    cmc = DIGIT_JOINTS["thumb"][0] - 1
    pad = frames.flexion[cmc + 1]
    turned = np.cross(axes[cmc], pad)                  # where a twist about +direction moves the pad
    if turned @ np.array([0.0, -1.0, 1.0]) < 0:        # towards the palm's ulnar side
        axes[cmc] = -axes[cmc]
    return axes


def joint_angles(pose: np.ndarray, frames: JointFrames) -> np.ndarray:
    """(..., 15, 2) flexion and abduction in degrees of MANO axis-angle poses (..., 45), read from
    where each joint turns its bone: abduction is the bone's angle out of its flexion plane (the
    plane of its rest direction and flexion direction), flexion its angle within that plane from
    the rest direction. The inverse of ``angles_to_pose`` up to the twist."""
    rot = _axis_angle_matrix(np.asarray(pose, np.float64).reshape(np.shape(pose)[:-1] + (15, 3)))
    moved = np.einsum("...ij,...j->...i", rot, np.broadcast_to(frames.direction, rot.shape[:-1]))
    along = np.einsum("...i,...i->...", moved, np.broadcast_to(frames.direction, moved.shape))
    side = np.einsum("...i,...i->...", moved, np.broadcast_to(frames.abduction, moved.shape))
    up = np.einsum("...i,...i->...", moved, np.broadcast_to(frames.flexion, moved.shape))
    flexion = np.degrees(np.arctan2(up, along))
    abduction = np.degrees(np.arcsin(np.clip(side, -1.0, 1.0)))
    return np.stack([flexion, abduction], -1)


def _chain(joints: np.ndarray, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global rotations (N, 16, 3, 3) and joint positions (N, 16, 3) of (N, 45) poses along
    MANO's kinematic tree (root rotation identity)."""
    pose = np.atleast_2d(pose)
    rot = _axis_angle_matrix(pose.reshape(-1, 15, 3))
    glob_r = np.zeros((len(pose), 16, 3, 3))
    glob_t = np.zeros((len(pose), 16, 3))
    glob_r[:, 0], glob_t[:, 0] = np.eye(3), joints[0]
    for j in range(1, 16):
        parent = kp.MANO_PARENTS[j]
        glob_r[:, j] = glob_r[:, parent] @ rot[:, j - 1]
        glob_t[:, j] = glob_t[:, parent] + np.einsum("nij,j->ni", glob_r[:, parent], joints[j] - joints[parent])
    return glob_r, glob_t


def forward(joints: np.ndarray, pose: np.ndarray, verts: np.ndarray | None = None,
            weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """MANO's forward kinematics and linear blend skinning for (N, 45) poses (global rotation
    identity, no corrective blend shapes): (posed joints (N, 16, 3), posed vertices (N, V, 3))."""
    glob_r, glob_t = _chain(joints, pose)
    if verts is None:
        return glob_t, None
    offset = glob_t - np.einsum("njik,jk->nji", glob_r, joints)     # A_j x = R_j x + (t_j - R_j J_j)
    blended_r = np.einsum("vj,njik->nvik", weights, glob_r)
    blended_t = np.einsum("vj,nji->nvi", weights, offset)
    return glob_t, np.einsum("nvik,vk->nvi", blended_r, verts) + blended_t


def posed_tips(skeleton: Skeleton, pose: np.ndarray) -> np.ndarray:
    """(N, 5, 3) fingertips (thumb, index, middle, ring, pinky) carried by their distal joints."""
    joints = skeleton.joints
    glob_r, glob_t = _chain(joints, pose)
    out = []
    for name, tip in zip(kp.MANO_TIP_ORDER, skeleton.tips):
        j = DIGIT_JOINTS[name][-1]
        out.append(glob_t[:, j] + np.einsum("nij,j->ni", glob_r[:, j], tip - joints[j]))
    return np.stack(out, 1)


def _angles(fingers: dict, thumb=(0.0, 0.0, 0.0, 0.0)) -> np.ndarray:
    """(15, 3) joint angles (degrees) from per-finger (MCP flexion, MCP abduction, PIP, DIP) and the
    thumb's (CMC flexion, CMC abduction, MCP, IP)."""
    out = np.zeros((15, 3))
    for name, (mcp, abd, pip, dip) in fingers.items():
        a, b, c = (j - 1 for j in DIGIT_JOINTS[name])
        out[a, :2], out[b, 0], out[c, 0] = (mcp, abd), pip, dip
    cmc, cmc_abd, mcp, ip = thumb
    a, b, c = (j - 1 for j in DIGIT_JOINTS["thumb"])
    out[a, :2], out[b, 0], out[c, 0] = (cmc, cmc_abd), mcp, ip
    return out


def _fingers(index, middle, ring, pinky) -> dict:
    return {"index": index, "middle": middle, "ring": ring, "pinky": pinky}


_CURLED = _fingers((88, 0, 100, 55), (90, 0, 102, 55), (90, 0, 102, 55), (90, 0, 100, 50))
_STRAIGHT = (0, 0, 0, 0)


def _digit_capsules(skeleton: Skeleton, pose: np.ndarray, names) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Posed phalanges of ``names`` as capsules: (n, 3) starts, (n, 3) ends and (n,) radii (the
    thinnest half-section of each phalanx)."""
    joints = forward(skeleton.joints, pose)[0][0]
    tips = posed_tips(skeleton, pose)[0]
    starts, ends, radii = [], [], []
    for name in names:
        digit = skeleton.digits[name]
        chain = [joints[j] for j in DIGIT_JOINTS[name]] + [tips[kp.MANO_TIP_ORDER.index(name)]]
        offsets = digit.joint_offsets
        for k in range(3):
            starts.append(chain[k])
            ends.append(chain[k + 1])
            radii.append(float(np.min(digit_sections(digit, np.array([0.5 * (offsets[k] + offsets[k + 1])])))))
    return np.array(starts), np.array(ends), np.array(radii)


def _capsule_overlap(points: np.ndarray, point_radii: np.ndarray, starts, ends, radii) -> np.ndarray:
    """(n,) how far (>= 0) spheres at ``points`` reach into each capsule, at their deepest."""
    e = ends - starts
    t = np.clip(np.einsum("pnk,nk->pn", points[:, None] - starts[None], e) / (e * e).sum(1), 0.0, 1.0)
    gap = np.linalg.norm(points[:, None] - (starts[None] + t[..., None] * e[None]), axis=-1)
    return np.maximum(point_radii[:, None] + radii[None] - gap, 0.0).max(0)


def _thumb_to(skeleton: Skeleton, frames: JointFrames, fingers: dict, target, start) -> tuple:
    """Thumb angles (CMC flexion, CMC abduction, MCP, IP) within their ranges that bring the thumb
    tip to ``target(tips, joints)`` (a point computed from the posed fingers) while keeping the
    thumb's phalanges out of the fingers', by least squares."""
    from scipy.optimize import least_squares

    flexion, abduction = joint_ranges()
    cmc, mcp, ip = (j - 1 for j in DIGIT_JOINTS["thumb"])
    low = [flexion[cmc, 0], abduction[cmc, 0], flexion[mcp, 0], flexion[ip, 0]]
    high = [flexion[cmc, 1], abduction[cmc, 1], flexion[mcp, 1], flexion[ip, 1]]
    finger_pose = angles_to_pose(_angles(fingers), frames)
    glob_r, glob_t = _chain(skeleton.joints, finger_pose)
    goal = target(posed_tips(skeleton, finger_pose)[0], glob_t[0], glob_r[0])

    fingers_capsules = _digit_capsules(skeleton, finger_pose, FINGERS4)
    samples = np.linspace(0.0, 1.0, 5)[:, None]

    def residual(x):
        pose = angles_to_pose(_angles(fingers, x), frames)
        starts, ends, radii = _digit_capsules(skeleton, pose, ("thumb",))
        points = np.concatenate([a + samples * (b - a) for a, b in zip(starts[1:], ends[1:])])
        overlap = _capsule_overlap(points, np.repeat(radii[1:], len(samples)), *fingers_capsules)
        return np.concatenate([(ends[-1] - goal) / MM, 0.02 * (x - np.asarray(start)), 3.0 * overlap / MM])

    x = least_squares(residual, np.clip(start, low, high), bounds=(low, high), method="trf",
                      xtol=1e-12, ftol=1e-12, gtol=1e-12).x
    # Converged tightly, the solution differs between CPUs (SIMD paths) only in its last digits;
    # rounding removes them, so the corpus, and with it the model's hash, is the same everywhere.
    return tuple(round(float(v), 2) for v in x)


def named_poses(skeleton: Skeleton, frames: JointFrames) -> dict:
    """Reference grasps and gestures as (15, 3) joint angles in degrees; thumb contacts by inverse
    kinematics (the thumb tip onto a finger's pad or side)."""
    tips = {n: i for i, n in enumerate(kp.MANO_TIP_ORDER)}

    def pad_of(name: str, depth: float = 7 * MM):
        joint = DIGIT_JOINTS[name][-1]
        digit = skeleton.digits[name]
        return lambda t, j, r: t[tips[name]] - depth * (r[joint] @ digit.dorsal) - 2 * MM * (r[joint] @ digit.direction)

    def over(name: str, segment: int, depth: float):
        joint = DIGIT_JOINTS[name][segment]
        child = DIGIT_JOINTS[name][segment + 1] if segment < 2 else None
        digit = skeleton.digits[name]

        def point(t, j, r):
            end = j[child] if child is not None else t[tips[name]]
            return 0.5 * (j[joint] + end) + depth * (r[joint] @ digit.dorsal)
        return point

    def radial_side_of(name: str, segment: int):
        joint = DIGIT_JOINTS[name][segment]
        radial = np.array([0.0, 0.0, -1.0])
        return lambda t, j, r: 0.5 * (j[joint] + j[joint + 1]) + 10.5 * MM * (r[joint] @ radial)

    relaxed = _fingers((20, 0, 30, 20), (25, 0, 35, 22), (28, 0, 38, 25), (30, 0, 40, 27))
    poses = {"flat": _angles(_fingers(*[_STRAIGHT] * 4)),
             "relaxed": _angles(relaxed, (10, 10, 10, 10))}
    fist_thumb = (10, 20, 50, 70)        # across the middle phalanges of the index and middle fingers
    poses["fist"] = _angles(_CURLED, fist_thumb)
    point = dict(_CURLED, index=(5, 0, 5, 3))
    poses["point"] = _angles(point, fist_thumb)
    pinch = _fingers((40, 0, 45, 25), (40, 0, 50, 30), (45, 0, 55, 32), (50, 0, 55, 32))
    poses["pinch"] = _angles(pinch, _thumb_to(skeleton, frames, pinch, pad_of("index"), (20, 30, 15, 15)))
    poses["spread"] = _angles(_fingers((-5, 15, 0, 0), (-5, 6, 0, 0), (-5, 14, 0, 0), (-5, 25, 0, 0)),
                              (-25, -5, 0, -5))
    cylinder = _fingers((55, 0, 65, 40), (58, 0, 68, 42), (60, 0, 70, 45), (62, 0, 72, 45))
    poses["cylinder"] = _angles(cylinder, (25, 35, 20, 25))
    sphere = _fingers((30, 10, 40, 25), (32, 0, 42, 27), (34, 8, 44, 28), (36, 16, 45, 28))
    poses["sphere"] = _angles(sphere, (10, 40, 15, 15))
    ok = _fingers((45, 0, 60, 40), (10, 0, 15, 10), (12, 4, 18, 12), (15, 10, 20, 14))
    poses["ok"] = _angles(ok, _thumb_to(skeleton, frames, ok, pad_of("index"), (25, 30, 20, 20)))
    v_sign = dict(_CURLED, index=(0, 10, 0, 0), middle=(0, -8, 0, 0))
    poses["v_sign"] = _angles(v_sign, _thumb_to(skeleton, frames, v_sign, over("ring", 1, 10 * MM), fist_thumb))
    poses["thumbs_up"] = _angles(_CURLED, (-20, 0, 0, -5))
    horns = dict(_CURLED, index=(0, 5, 0, 0), pinky=(0, 10, 0, 0))
    poses["horns"] = _angles(horns, fist_thumb)
    poses["call"] = _angles(dict(_CURLED, pinky=(0, 15, 0, 0)), (-20, 0, 0, 0))
    three = dict(_CURLED, index=(0, 5, 0, 0), middle=(0, 0, 0, 0), ring=(0, 5, 0, 0))
    poses["three"] = _angles(three, _thumb_to(skeleton, frames, three, over("pinky", 1, 9 * MM), fist_thumb))
    opposition = _fingers((5, 5, 8, 5), (10, 0, 12, 8), (25, 2, 30, 20), (50, 0, 45, 25))
    poses["opposition"] = _angles(opposition, _thumb_to(skeleton, frames, opposition, pad_of("pinky"),
                                                        (40, 40, 20, 20)))
    key = _fingers((55, 0, 75, 40), (75, 0, 95, 50), (80, 0, 95, 50), (85, 0, 95, 50))
    poses["key_pinch"] = _angles(key, _thumb_to(skeleton, frames, key, radial_side_of("index", 1), (0, 5, 15, 15)))
    tripod = _fingers((40, 0, 45, 25), (42, -4, 45, 25), (50, 0, 60, 35), (55, 0, 65, 35))
    between = lambda t, j, r: 0.5 * (pad_of("index")(t, j, r) + pad_of("middle")(t, j, r))  # noqa: E731
    poses["tripod"] = _angles(tripod, _thumb_to(skeleton, frames, tripod, between, (20, 35, 15, 15)))
    poses["claw"] = _angles(_fingers(*[(0, 0, 90, 70)] * 4), (10, 10, 30, 40))
    poses["table_top"] = _angles(_fingers(*[(80, 0, 0, 0)] * 4), (20, 20, 10, 0))
    return poses


POSE_CORPUS_SIZE = 12000
NUM_PCA_CHECK = 10              # pose coefficients drawn in [-2, 2] must keep every joint in range
PCA_RANGE_SAMPLES = 20000
CORPUS_SAMPLE_STORED = 2000
REAL_RANGE_PERCENTILE = 1.0     # a real corpus' joint ranges: its central 98% (corpus_ranges)
TEMPLATE_SHARE = 0.4            # corpus share of named poses (with variation); the rest from synergies


def pose_corpus(named: dict, rng: np.random.Generator, count: int = POSE_CORPUS_SIZE) -> np.ndarray:
    """(count, 15, 3) joint angles in degrees of plausible hands.

    Named poses with per-joint variation, and synergy samples: one closure level for the hand,
    fingers following it (the ring finger bound to its neighbours, one finger sometimes moving on
    its own), MCP and PIP sharing the flexion in a per-sample style, DIP at two thirds of PIP,
    spread shrinking with flexion, and the thumb blended from the named poses' thumbs (rest,
    extended, over the fingers, opposed to each finger) in step with the closure."""
    flexion, abduction = joint_ranges()
    names = list(named)
    thumbs = np.stack([named[n][12:15] for n in names])
    open_thumbs = [names.index(n) for n in ("flat", "relaxed", "spread", "thumbs_up", "sphere")]
    closed_thumbs = [names.index(n) for n in ("fist", "point", "pinch", "cylinder", "opposition", "key_pinch",
                                              "tripod", "ok", "three")]
    out = np.zeros((count, 15, 3))
    for n in range(count):
        if rng.random() < TEMPLATE_SHARE:
            angles = named[names[rng.integers(len(names))]].copy()
            pip_noise = rng.normal(0, 6, 4)
            for k, name in enumerate(FINGERS4):
                a, b, c = (j - 1 for j in DIGIT_JOINTS[name])
                angles[a, 0] += rng.normal(0, 6)
                angles[a, 1] += rng.normal(0, 3)
                angles[b, 0] += pip_noise[k]
                angles[c, 0] += 0.67 * pip_noise[k] + rng.normal(0, 3)
            angles[12:15, :2] += rng.normal(0, [5, 4], (3, 2)) * [[1, 1], [1, 0.3], [1, 0]]
        else:
            closure = rng.uniform(-0.15, 1.0)
            style = np.clip(rng.normal(0, 0.25), -0.6, 0.6)
            own = closure + rng.normal(0, 0.08, 4)
            if rng.random() < 0.25:
                own[rng.choice(4, p=[0.5, 0.2, 0.1, 0.2])] = rng.uniform(-0.1, 1.0)
            own[2] = 0.5 * own[2] + 0.25 * (own[1] + own[3])
            own = np.clip(own, -0.15, 1.0)
            spread = rng.normal(3.0, 7.0)
            angles = np.zeros((15, 3))
            for k, (name, share) in enumerate(zip(FINGERS4, (1.0, 0.3, 0.8, 1.5))):
                a, b, c = (j - 1 for j in DIGIT_JOINTS[name])
                bent = max(own[k], 0.0)
                angles[a, 0] = 88 * bent * (1 + style) + 120 * min(own[k], 0.0)
                angles[a, 1] = (spread * share + rng.normal(0, 2)) * (1 - bent) ** 2
                angles[b, 0] = 102 * bent * (1 - style)
                angles[c, 0] = 0.67 * angles[b, 0] + rng.normal(0, 5)
            pool = closed_thumbs if rng.random() < closure else open_thumbs
            first, second = rng.choice(pool, 2)
            mix = rng.uniform()
            angles[12:15] = mix * thumbs[first] + (1 - mix) * thumbs[second]
            angles[12:15, :2] += rng.normal(0, [6, 5], (3, 2)) * [[1, 1], [1, 0.3], [1, 0]]
        angles[:, 0] = np.clip(angles[:, 0], flexion[:, 0], flexion[:, 1])
        angles[:, 1] = np.clip(angles[:, 1], abduction[:, 0], abduction[:, 1])
        out[n] = angles
    return out


def pose_space(corpus: np.ndarray, frames: JointFrames, seed: int = 0, ranges=None) -> dict:
    """PCA of (N, 45) axis-angle poses: ``hands_mean``, ``hands_components`` (45, 45; rows are
    principal directions times their standard deviation ``std`` times a common ``scale``), and
    the corpus' ``coefficients`` (N, 45) in that basis.

    Directions the corpus does not move (twists and abductions of the hinge joints) are completed
    deterministically from the unit axes with a small 1-degree spread. ``scale`` is the largest
    that keeps every joint of PCA_RANGE_SAMPLES poses with NUM_PCA_CHECK coefficients uniform in
    [-2, 2] inside its flexion and abduction range (``ranges``: (flexion, abduction) (15, 2) degrees,
    default ``joint_ranges()``)."""
    mean = corpus.mean(0)
    _, singular, vt = np.linalg.svd(corpus - mean, full_matrices=False)
    std = singular / np.sqrt(len(corpus) - 1)
    rank = int((std > np.radians(1.0)).sum())
    basis = vt[:rank] * np.sign(vt[np.arange(rank), np.abs(vt[:rank]).argmax(1)])[:, None]
    if joint_angles(mean + basis[0], frames)[..., 0].sum() < joint_angles(mean, frames)[..., 0].sum():
        basis[0] = -basis[0]                                  # the first coefficient closes the hand
    complement = np.eye(45) - basis.T @ basis
    extra = []
    for column in np.argsort(-np.linalg.norm(complement, axis=0), kind="stable"):
        v = complement[:, column] - sum((complement[:, column] @ e) * e for e in extra)
        if len(extra) < 45 - rank and np.linalg.norm(v) > 1e-6:
            extra.append(v / np.linalg.norm(v))
    directions = np.vstack([basis, np.array(extra)])
    spread = np.concatenate([std[:rank], np.full(45 - rank, np.radians(1.0))])
    flexion, abduction = joint_ranges() if ranges is None else ranges
    coefficients = np.random.default_rng([seed, 2]).uniform(-2, 2, (PCA_RANGE_SAMPLES, NUM_PCA_CHECK))

    def inside(scale: float) -> bool:
        pose = mean + coefficients @ (directions[:NUM_PCA_CHECK] * spread[:NUM_PCA_CHECK, None] * scale)
        angles = joint_angles(pose, frames)
        return bool(((angles[..., 0] >= flexion[:, 0]) & (angles[..., 0] <= flexion[:, 1])
                     & (angles[..., 1] >= abduction[:, 0] - 1e-6) & (angles[..., 1] <= abduction[:, 1] + 1e-6)).all())

    low, high = 0.0, 1.0
    for _ in range(16):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if inside(mid) else (low, mid)
    components = directions * spread[:, None] * low
    return {"hands_mean": mean, "hands_components": components, "scale": low, "std": spread,
            "coefficients": np.linalg.lstsq(components.T, (corpus - mean).T, rcond=None)[0].T}


def axis_angle_limits(corpus_pose: np.ndarray, margin_deg: float = 5.0) -> np.ndarray:
    """(45, 2) bounds of each axis-angle component over the corpus, widened by ``margin_deg``."""
    margin = np.radians(margin_deg)
    return np.stack([corpus_pose.min(0) - margin, corpus_pose.max(0) + margin], 1)


def knuckle_breadth(verts: np.ndarray, skeleton: Skeleton | None = None) -> float:
    """Palm breadth across the knuckles (metres): the extent of the surface along the line through
    the index and little-finger MCPs, within 5 mm of it in the palm plane (the thumb's web
    excluded), as anthropometry measures it (metacarpale radiale to metacarpale ulnare)."""
    skeleton = skeleton or rest_skeleton()
    a, b = skeleton.digits["index"].base[[0, 2]], skeleton.digits["pinky"].base[[0, 2]]
    along = (b - a) / np.linalg.norm(b - a)
    rel = verts[:, [0, 2]] - a
    near = np.abs(rel @ np.array([-along[1], along[0]])) < 5 * MM
    near &= digit_field(verts, skeleton.digits["thumb"]) > digit_field(verts, skeleton.digits["index"])
    return float(np.ptp(rel[near] @ along))


# ----------------------------------------------------------------------------- the model

def _snap_round_off(values: np.ndarray) -> np.ndarray:
    """``values`` with entries that are zero up to round-off (|x| < 1e-12) set to an exact 0.0.

    Structural zeros (e.g. the pose components of hinge twists) come out of the SVD as +-1e-16
    whose sign depends on the BLAS thread count; the model's hash would depend on it too."""
    values = np.asarray(values, np.float64)
    return np.where(np.abs(values) < 1e-12, 0.0, values)


def mixed_pose_corpus(synthetic: np.ndarray, real: np.ndarray, synthetic_share: float, seed: int = 0) -> np.ndarray:
    """(M, 45) axis-angle poses: every pose of ``real`` plus synthetic ones drawn (deterministically)
    to make up ``synthetic_share`` (0 to < 1) of the mixture."""
    real = np.asarray(real, np.float64)
    if real.ndim != 2 or real.shape[1] != 45 or not np.isfinite(real).all() or not len(real):
        raise ValueError(f"real poses: expected finite (N, 45) axis-angles, got shape {real.shape}")
    if not 0 <= synthetic_share < 1:
        raise ValueError(f"synthetic_share: expected 0 <= share < 1, got {synthetic_share!r}")
    count = int(round(len(real) * synthetic_share / (1 - synthetic_share)))
    rng = np.random.default_rng([seed, 5])
    chosen = rng.choice(len(synthetic), count, replace=count > len(synthetic))
    mixture = np.concatenate([real, np.asarray(synthetic, np.float64)[chosen]])
    return mixture[rng.permutation(len(mixture))]        # the stored corpus sample draws from all of it


def synthetic_pose_corpus(seed: int = 0, skeleton: Skeleton | None = None) -> tuple[np.ndarray, JointFrames, dict]:
    """The builder's synthetic pose corpus (N, 45) axis-angles, its joint frames and named poses."""
    skeleton = skeleton or rest_skeleton()
    frames = joint_frames(skeleton)
    named = named_poses(skeleton, frames)
    return angles_to_pose(pose_corpus(named, np.random.default_rng([seed, 3])), frames), frames, named


def corpus_ranges(corpus: np.ndarray, frames: JointFrames, percentile: float = REAL_RANGE_PERCENTILE):
    """(flexion, abduction) (15, 2) degrees: the anatomical ranges of ``joint_ranges``, widened to
    the central 100 - 2 ``percentile`` % of the corpus' own joint angles (real hands, fitted with
    keypoints placed by annotators, leave the hinge joints' +-5 degrees of abduction)."""
    angles = joint_angles(corpus, frames)
    low, high = np.percentile(angles, percentile, axis=0), np.percentile(angles, 100 - percentile, axis=0)
    return tuple(np.stack([np.minimum(r[:, 0], low[:, q]), np.maximum(r[:, 1], high[:, q])], 1)
                 for q, r in enumerate(joint_ranges()))


def _pose_space_entries(corpus: np.ndarray, frames: JointFrames, seed: int, real: bool = False) -> tuple[dict, dict]:
    """The model file's entries that derive from the pose corpus: top-level and ``pose_prior``'s.
    A corpus with real poses (``real``) sets the scale of its components within its own ranges."""
    space = pose_space(corpus, frames, seed=seed, ranges=corpus_ranges(corpus, frames) if real else None)
    top = {"hands_components": _snap_round_off(space["hands_components"]),
           "hands_mean": _snap_round_off(space["hands_mean"])}
    prior = {"axis_angle_limits": axis_angle_limits(corpus), "pca_scale": float(space["scale"]),
             "pca_std": space["std"],
             # A sample of the corpus as PCA coefficients (first 10), for drawing realistic poses.
             "corpus_coefficients": space["coefficients"][:CORPUS_SAMPLE_STORED, :NUM_PCA_CHECK].astype(np.float32)}
    return top, prior


def replace_pose_space(arrays: dict, real_poses: np.ndarray, synthetic_share: float = 0.0, seed: int = 0) -> dict:
    """A copy of the open hand model's ``arrays`` whose pose space is learnt from ``real_poses``
    (as ``build_open_hand_model(real_poses=...)`` would build it, without rebuilding the mesh)."""
    corpus, frames, _ = synthetic_pose_corpus(seed)
    corpus = mixed_pose_corpus(corpus, real_poses, synthetic_share, seed)
    top, prior = _pose_space_entries(corpus, frames, seed, real=True)
    pose_prior = {**arrays["pose_prior"], **prior, "pose_source": _pose_source(len(real_poses), synthetic_share)}
    return {**arrays, **top, "pose_prior": pose_prior}


def _pose_source(real_count: int, synthetic_share: float) -> str:
    return f"{real_count} real poses (45-D fits), synthetic share {synthetic_share:g}"


def build_open_hand_model(seed: int = 0, verbose: bool = False, real_poses: np.ndarray | None = None,
                          synthetic_share: float = 0.0) -> dict:
    """The open hand model's arrays with MANO's keys, plus ``fingertip_vertex_ids``,
    ``palm_vertex_ids`` / ``palm_vertex_weights``, ``pose_prior``, ``model_name`` and
    ``model_version``. Deterministic for a given ``seed`` (and ``real_poses``).

    ``real_poses`` (N, 45): absolute finger axis-angles of real hands (e.g.
    ``real_pose_space.real_pose_corpus``, the 45-D fits of captured poses); the pose space is then
    learnt from them, mixed with the synthetic corpus at ``synthetic_share``, instead of from the
    synthetic corpus alone (the default, and the shipped model)."""
    started = time.perf_counter()

    def log(step: str) -> None:
        if verbose:
            print(f"  {step}: {time.perf_counter() - started:.1f} s")

    skeleton = rest_skeleton()
    verts, faces, tip_ids = build_mesh(skeleton)
    log(f"mesh ({len(verts)} vertices, {len(faces)} faces)")
    weights = skinning_weights(verts, skeleton)
    regressor = joint_regressor(verts, skeleton)
    palm_ids, palm_weights = palm_centre_vertices(verts, skeleton)
    shapedirs, _ = shape_space(verts, weights, skeleton, seed=seed)
    log("skinning, regressor, shape space")
    corpus, frames, named = synthetic_pose_corpus(seed, skeleton)
    if real_poses is not None:
        corpus = mixed_pose_corpus(corpus, real_poses, synthetic_share, seed)
    pose_entries, prior_entries = _pose_space_entries(corpus, frames, seed, real=real_poses is not None)
    log("pose space")
    flexion, abduction = joint_ranges()
    kintree = np.array([[4294967295] + list(kp.MANO_PARENTS[1:]), list(range(16))], dtype=np.int64)
    return {
        "v_template": _snap_round_off(verts), "f": faces.astype(np.uint32), "weights": _snap_round_off(weights),
        "J_regressor": _snap_round_off(regressor), "J": _snap_round_off(skeleton.joints), "kintree_table": kintree,
        "shapedirs": _snap_round_off(shapedirs),
        "posedirs": np.zeros((len(verts), 3, 135), np.float16),        # no corrective pose blend shapes
        **pose_entries,
        "fingertip_vertex_ids": tip_ids.astype(np.int64),
        "palm_vertex_ids": palm_ids.astype(np.int64), "palm_vertex_weights": palm_weights,
        "model_name": "open_hand", "model_version": MODEL_VERSION,
        "pose_prior": {
            "joint_names": list(kp.MANO_JOINT_NAMES[1:]),
            "rest_directions": frames.direction, "flexion_directions": frames.flexion,
            "abduction_directions": frames.abduction,
            "flexion_axes": frames.flexion_axes, "abduction_axes": frames.abduction_axes,
            "flexion_range_deg": flexion, "abduction_range_deg": abduction,
            "named_poses": {name: angles_to_pose(angles, frames) for name, angles in named.items()},
            **prior_entries,
            **({"pose_source": _pose_source(len(real_poses), synthetic_share)} if real_poses is not None else {}),
        },
    }


def save_open_hand_model(path=None, seed: int = 0, real_poses: np.ndarray | None = None,
                         synthetic_share: float = 0.0) -> Path:
    """Build the open hand model and write it in MANO's pickle format to ``path``
    (default ``wildhands.paths.OPEN_HAND_PATH``); ``real_poses``, ``synthetic_share`` as
    ``build_open_hand_model``'s."""
    return write_pickle(Path(path) if path is not None else OPEN_HAND_PATH,
                        build_open_hand_model(seed, real_poses=real_poses, synthetic_share=synthetic_share))


def digit_penetration(arrays: dict, pose: np.ndarray, skeleton: Skeleton | None = None) -> np.ndarray:
    """(N, 5, 5) how deep (metres) the vertices of digit a (rows: thumb, index, middle, ring,
    pinky) reach inside digit b's phalanges in each of the (N, 45) poses, at the model's rest shape.

    A digit's vertices are those skinned mostly to its middle and distal joints or lying beyond
    the first 15 mm of its proximal phalanx (the webs between finger bases are shared skin); its
    phalanges are capsules along the posed bones, with radii 90% of the thinnest half-section."""
    skeleton = skeleton or rest_skeleton()
    verts, weights = arrays["v_template"], arrays["weights"]
    joints, posed = forward(arrays["J_regressor"] @ verts, np.atleast_2d(pose), verts, weights)
    tips = posed[:, arrays["fingertip_vertex_ids"]]
    names = kp.MANO_TIP_ORDER
    owned, capsules = [], []
    for t, name in enumerate(names):
        digit = skeleton.digits[name]
        base, mid, distal = DIGIT_JOINTS[name]
        u = digit_coordinates(verts, digit)[0]
        owned.append(np.flatnonzero((weights[:, mid] + weights[:, distal] > 0.5)
                                    | ((weights[:, base] > 0.5) & (u > 15 * MM))))
        offsets = digit.joint_offsets
        start = offsets[0] + 15 * MM
        radii = [0.9 * float(np.min(digit_sections(digit, np.array([0.5 * (a + b)]))))
                 for a, b in ((start, offsets[1]), (offsets[1], offsets[2]), (offsets[2], offsets[3]))]
        ends = [joints[:, base] + (start / offsets[1]) * (joints[:, mid] - joints[:, base]),
                joints[:, mid], joints[:, distal], tips[:, t]]
        capsules.append([(ends[k], ends[k + 1], radii[k]) for k in range(3)])
    depth = np.zeros((len(posed), 5, 5))
    for a in range(5):
        points = posed[:, owned[a]]
        for b in range(5):
            if a == b:
                continue
            for p, q, radius in capsules[b]:
                e = (q - p)[:, None]
                t = np.clip(np.einsum("nvi,nvi->nv", points - p[:, None], e) / np.einsum("nvi,nvi->nv", e, e), 0, 1)
                dist = np.linalg.norm(points - (p[:, None] + t[..., None] * e), axis=-1)
                depth[:, a, b] = np.maximum(depth[:, a, b], (radius - dist).max(1))
    return depth
