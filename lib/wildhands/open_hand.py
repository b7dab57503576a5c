"""The open hand model: a MANO-format right hand built by the project, deterministically.

MANO's files are licensed and cannot ship, so this builder makes a hand model in MANO's file
format that ``smplx`` loads unchanged (``HandModel``). Everything is derived from published
anthropometry (../shared/hand_anatomy.md) and joint ranges:

- Rest frame (metres): the flat right hand, fingers along +x, the back of the hand towards
  +y (the palm faces -y), the thumb on the -z side; the wrist keypoint at the origin.
- Skeleton: MANO's 16 joints and kinematic tree; joint centres where annotators put keypoints
  (wrist crease centre, joint centres); segment lengths from Buchholz et al. (1992) as
  fractions of hand length (0.185 m, wrist crease to middle fingertip).
- Surface: a smooth signed-distance field (tapered, slightly flattened capsules for the
  phalanges, a flattened palm with a thenar eminence, a wrist stump) polygonised with marching
  cubes and smoothed: a closed, consistently oriented mesh of about MANO's resolution.
- Skinning: each vertex belongs to the chain (palm or one finger) of its nearest bone and blends
  smoothly across each joint along that chain; no weight crosses to a neighbouring finger.
- Joint regressor: per joint, weights over the vertices around it (rows sum to one) that
  reproduce the joint exactly on the template.
- Shape space: PCA of 600 anatomically varied hands (size, palm breadth, finger lengths,
  thickness) made by deforming the template bone by bone; 10 directions ordered by variance,
  unit variance per coefficient (like MANO's betas).
- Pose space: PCA of a corpus of plausible poses (flexion within published ranges, DIP
  following PIP, fingers flexing together, thumb opposition, fist / pinch / point / spread /
  grasps); ``hands_mean`` is the corpus mean, components scaled so that coefficients in
  [-2, 2] stay within the joint ranges. Corrective pose blend shapes are zero.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import keypoints as kp
from .fileio import write_pickle
from .paths import OPEN_HAND_PATH

MODEL_VERSION = "1.0"
HAND_LENGTH = 0.185     # wrist crease to middle fingertip, metres (adult average of men and women)
GRID_STEP = 0.0056      # marching-cubes spacing, metres
BLEND_WIDTH = 0.008     # half-width of the skinning blend across a joint, metres
# Buchholz's middle-finger segments sum to 0.917 of hand length: the rest lies between the
# wrist crease and the CMC joints, added to each metacarpal's span from the wrist keypoint.
WRIST_TO_CMC = 1.0 - (0.373 + 0.266 + 0.170 + 0.108)

# Buchholz, Armstrong & Goldstein 1992: segment lengths as fractions of hand length
# (metacarpal or CMC-MCP, proximal, middle, distal phalanx).
SEGMENT_RATIOS = {
    "thumb": (0.251, 0.196, 0.158),           # metacarpal, proximal, distal
    "index": (0.374, 0.245, 0.143, 0.097),
    "middle": (0.373, 0.266, 0.170, 0.108),
    "ring": (0.336, 0.244, 0.165, 0.107),
    "pinky": (0.295, 0.204, 0.117, 0.093),
}
# Where annotators put the little finger's MCP keypoint: about 5 mm distal of Buchholz's joint
# centre (a systematic 2D-fit residual on labelled photos, notebook 04).
PINKY_MCP_SHIFT = 0.025
# MCP positions across the palm (z, metres; the thumb side is -z) and finger radii at the MCP.
MCP_Z = {"index": -0.0270, "middle": -0.0060, "ring": 0.0145, "pinky": 0.0335}
FINGER_RADIUS = {"thumb": 0.0105, "index": 0.0093, "middle": 0.0095, "ring": 0.0089, "pinky": 0.0078}
FINGER_SPLAY_DEG = {"index": -4.0, "middle": 0.0, "ring": 4.0, "pinky": 9.0}  # rest spread in the palm plane

# Joint ranges (degrees) for flexion (+ towards the palm) and abduction (+ away from the middle finger).
FLEXION_RANGE = {"mcp": (-20.0, 90.0), "pip": (0.0, 105.0), "dip": (0.0, 80.0),
                 "thumb_cmc": (-15.0, 50.0), "thumb_mcp": (-10.0, 55.0), "thumb_ip": (-15.0, 80.0)}
ABDUCTION_RANGE = {"mcp": (-20.0, 20.0), "thumb_cmc": (-15.0, 45.0)}

_FINGER_JOINTS = {  # MANO joint ids per chain, base to distal
    "index": (1, 2, 3), "middle": (4, 5, 6), "pinky": (7, 8, 9), "ring": (10, 11, 12), "thumb": (13, 14, 15)}


# ----------------------------------------------------------------------------- skeleton

def _unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def rest_skeleton(length_scale=None, palm_scale: float = 1.0) -> tuple[np.ndarray, dict, dict]:
    """(16, 3) MANO-order joints, fingertip points and unit finger directions of the flat hand."""
    length_scale = length_scale or {}
    joints = np.zeros((16, 3))
    tips, directions = {}, {}
    for finger in ("index", "middle", "ring", "pinky"):
        ratios = np.asarray(SEGMENT_RATIOS[finger]) * HAND_LENGTH * length_scale.get(finger, 1.0)
        ratios[0] += WRIST_TO_CMC * HAND_LENGTH  # the wrist crease lies proximal of the CMC joints
        if finger == "pinky":
            ratios[0] += PINKY_MCP_SHIFT * HAND_LENGTH
            ratios[1] -= PINKY_MCP_SHIFT * HAND_LENGTH
        splay = np.deg2rad(FINGER_SPLAY_DEG[finger])
        mcp_dir = _unit([np.cos(np.deg2rad(FINGER_SPLAY_DEG[finger] * 0.5)), 0.0, 0.0 + 0.0])
        # Metacarpals fan out from the wrist to the MCPs across the palm.
        mcp = np.array([0.0, 0.0, MCP_Z[finger] * palm_scale]) + mcp_dir * 0.0
        mcp[0] = np.sqrt(max(ratios[0] ** 2 - (MCP_Z[finger] * palm_scale) ** 2, 1e-6))
        direction = _unit([np.cos(splay), 0.0, np.sin(splay)])
        chain = [mcp]
        for seg in ratios[1:]:
            chain.append(chain[-1] + seg * direction)
        ids = _FINGER_JOINTS[finger]
        joints[list(ids)] = chain[:3]
        tips[finger] = chain[3]
        directions[finger] = direction
    # Thumb: CMC near the wrist on the radial side, pointing out at about 40 degrees, slightly palmar.
    ratios = np.asarray(SEGMENT_RATIOS["thumb"]) * HAND_LENGTH * length_scale.get("thumb", 1.0)
    cmc = np.array([0.024, -0.008, -0.020 * palm_scale])
    direction = _unit([np.cos(np.deg2rad(42)), -0.22, -np.sin(np.deg2rad(42))])
    chain = [cmc]
    for seg in ratios:
        chain.append(chain[-1] + seg * direction)
    joints[[13, 14, 15]] = chain[:3]
    tips["thumb"] = chain[3]
    directions["thumb"] = direction
    return joints, tips, directions


# ----------------------------------------------------------------------------- surface

def _segment_distance(points, a, b):
    ab = b - a
    t = np.clip(((points - a) @ ab) / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[:, None] * ab), axis=1), t


def _smooth_min(a, b, k):
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def _capsule_sdf(points, a, b, r0, r1, flatten=0.85):
    """Tapered capsule, flattened along y (dorsal-palmar) by ``flatten``."""
    squash = points.copy()
    mid_y = (a[1] + b[1]) / 2
    squash[:, 1] = mid_y + (points[:, 1] - mid_y) / flatten
    d, t = _segment_distance(squash, a, b)
    return d - (r0 + (r1 - r0) * t)


def hand_sdf(points, joints, tips):
    """Signed distance (negative inside) of the rest hand surface at ``points`` (N, 3)."""
    d = np.full(len(points), 1.0)
    for finger, ids in _FINGER_JOINTS.items():
        chain = [joints[i] for i in ids] + [tips[finger]]
        r = FINGER_RADIUS[finger]
        radii = [r * 1.05, r * 0.95, r * 0.85, r * 0.78]
        start = 0 if finger != "thumb" else 0
        for k in range(start, 3):
            end = chain[k + 1]
            if k == 2:  # stop short of the tip point: the pad ends at the tip keypoint
                end = chain[3] - _unit(chain[3] - chain[2]) * radii[3] * 0.9
            d = _smooth_min(d, _capsule_sdf(points, chain[k], end, radii[k], radii[k + 1]), 0.004)
    # Palm: a flattened slab spanned by capsules from the wrist region to the MCPs.
    wrist_row = [np.array([0.0, 0.0, z]) for z in (-0.020, -0.005, 0.010, 0.022)]
    mcps = [joints[1], joints[4], joints[10], joints[7]]
    palm = np.full(len(points), 1.0)
    for w, m in zip(wrist_row, mcps):
        palm = _smooth_min(palm, _capsule_sdf(points, w + [0.004, 0, 0], m, 0.016, 0.011, flatten=0.75), 0.012)
    for a, b in zip(mcps[:-1], mcps[1:]):
        palm = _smooth_min(palm, _capsule_sdf(points, a, b, 0.011, 0.011, flatten=0.75), 0.01)
    # Thenar eminence (thumb ball) and the wrist stump.
    palm = _smooth_min(palm, _capsule_sdf(points, np.array([0.012, -0.006, -0.012]), joints[14] * 0.55 + joints[13] * 0.45,
                                          0.016, 0.013, flatten=0.8), 0.012)
    palm = _smooth_min(palm, _capsule_sdf(points, np.array([-0.028, 0.0, 0.0]), np.array([0.0, 0.0, 0.0]),
                                          0.025, 0.023, flatten=0.65), 0.012)
    return _smooth_min(d, palm, 0.006)


def _marching_cubes(joints, tips, step=GRID_STEP):
    from skimage.measure import marching_cubes

    pts = np.vstack([joints, np.stack(list(tips.values())), [[-0.03, 0, 0]]])
    low, high = pts.min(0) - 0.035, pts.max(0) + 0.035
    axes = [np.arange(lo, hi + step, step) for lo, hi in zip(low, high)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    values = hand_sdf(grid, joints, tips).reshape(*(len(a) for a in axes))
    # Cut the wrist stump flat (a closed cap) a little proximal of the wrist crease.
    cut = axes[0] < -0.022
    values[cut] = np.maximum(values[cut], 0.001)
    verts, faces, _, _ = marching_cubes(values, 0.0, spacing=(step, step, step))
    verts = verts + low
    return verts, faces.astype(np.int64)


def _weld(verts, faces, tol=1e-9):
    keys = np.round(verts / 1e-7).astype(np.int64)
    _, index, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    faces = inverse.reshape(-1)[faces]
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    return verts[index], faces


def _taubin(verts, faces, iterations=12, lam=0.5, mu=-0.53):
    n = len(verts)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.unique(np.sort(np.concatenate([edges, edges[:, ::-1]]), axis=1), axis=0)
    i, j = np.concatenate([edges[:, 0], edges[:, 1]]), np.concatenate([edges[:, 1], edges[:, 0]])
    degree = np.bincount(i, minlength=n).astype(np.float64)
    v = verts.copy()
    for _ in range(iterations):
        for factor in (lam, mu):
            mean = np.zeros_like(v)
            np.add.at(mean, i, v[j])
            v = v + factor * (mean / degree[:, None] - v)
    return v


def check_closed(faces) -> None:
    """Raise unless every edge is shared by exactly two faces with opposite directions."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    keys = directed[:, 0].astype(np.int64) * (faces.max() + 1) + directed[:, 1]
    if len(np.unique(keys)) != len(keys):
        raise ValueError("mesh: an edge appears twice with the same direction (inconsistent orientation)")
    reverse = directed[:, 1].astype(np.int64) * (faces.max() + 1) + directed[:, 0]
    if not np.isin(reverse, keys).all():
        raise ValueError("mesh: open boundary (an edge without its opposite)")


def signed_volume(verts, faces) -> float:
    tri = verts[faces]
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


# ----------------------------------------------------------------------------- skinning, regressor, tips

def _chains():
    """Per chain: the MANO joints that move its segments, base first (0 = palm / wrist)."""
    return {finger: (0,) + ids for finger, ids in _FINGER_JOINTS.items()}


def skinning_weights(verts, joints, tips):
    """(V, 16) weights: nearest chain, smooth blending across each joint along it."""
    segments = []  # (chain, index along chain, start, end)
    for finger, ids in _FINGER_JOINTS.items():
        pts = [joints[i] for i in ids] + [tips[finger]]
        segments.append((finger, 0, np.zeros(3), pts[0]))  # metacarpal: palm
        for k in range(3):
            segments.append((finger, k + 1, pts[k], pts[k + 1]))
    dist = np.stack([_segment_distance(verts, a, b)[0] for _, _, a, b in segments], 1)
    nearest = dist.argmin(1)
    weights = np.zeros((len(verts), 16))
    chains = _chains()
    for finger, ids in _FINGER_JOINTS.items():
        members = np.flatnonzero(np.array([segments[s][0] == finger for s in nearest]))
        chain = chains[finger]
        pts = [joints[i] for i in ids] + [tips[finger]]
        v = verts[members]
        # Signed distance past each joint along the bone leaving it; a sigmoid hands the vertex on.
        share = np.ones((len(members), len(chain)))
        w = np.zeros((len(members), len(chain)))
        remaining = np.ones(len(members))
        for k in range(len(chain) - 1, 0, -1):
            joint = pts[k - 1]
            axis = _unit(pts[k] - pts[k - 1])
            t = (v - joint) @ axis
            past = 1.0 / (1.0 + np.exp(-t / (BLEND_WIDTH / 3)))
            w[:, k] = remaining * past
            remaining = remaining * (1 - past)
        w[:, 0] = remaining
        del share
        for c, joint_id in enumerate(chain):
            weights[members, joint_id] += w[:, c]
    return weights / weights.sum(1, keepdims=True)


def joint_regressor(verts, joints, count=24):
    """(16, V): rows sum to one and reproduce ``joints`` exactly on ``verts`` (least-norm correction
    of uniform weights over the ``count`` nearest vertices)."""
    reg = np.zeros((16, len(verts)))
    for j, joint in enumerate(joints):
        ids = np.argsort(np.linalg.norm(verts - joint, axis=1))[:count]
        a = np.vstack([verts[ids].T, np.ones(count)])      # (4, count)
        w0 = np.full(count, 1.0 / count)
        target = np.append(joint, 1.0)
        w = w0 + a.T @ np.linalg.solve(a @ a.T, target - a @ w0)
        reg[j, ids] = w
    return reg


def fingertip_vertices(verts, weights, tips, directions):
    """Per finger (thumb, index, middle, ring, pinky): the most distal vertex of its last segment,
    on the pad side of the end."""
    out = []
    for finger in kp.MANO_TIP_ORDER:
        last = _FINGER_JOINTS[finger][-1]
        members = np.flatnonzero(weights[:, last] > 0.5)
        d = directions[finger]
        score = verts[members] @ d - 0.25 * verts[members][:, 1]
        out.append(int(members[np.argmax(score)]))
    return np.array(out)


# ----------------------------------------------------------------------------- shape space

def _fix_signs(vt: np.ndarray) -> np.ndarray:
    """Principal directions with their largest entry positive, so that builds agree across LAPACKs."""
    rows = np.arange(len(vt))
    return vt * np.sign(vt[rows, np.abs(vt).argmax(1)])[:, None]


def shape_space(verts, joints, tips, weights, count=600, num_betas=10, seed=0):
    """Shape directions (V, 3, num_betas) with unit-variance coefficients, from a deformed population."""
    rng = np.random.default_rng(seed)
    offsets = np.empty((count, verts.size))
    for n in range(count):
        size = rng.normal(1.0, 0.06)
        palm = rng.normal(1.0, 0.05)
        thick = rng.normal(1.0, 0.07)
        lengths = {f: rng.normal(1.0, 0.035) for f in SEGMENT_RATIOS}
        new_joints, new_tips, _ = rest_skeleton(lengths, palm)
        offsets[n] = (deform(verts, joints, tips, weights, new_joints, new_tips, thick) * size - verts).ravel()
    mean = offsets.mean(0)
    u, s, vt = np.linalg.svd(offsets - mean, full_matrices=False)
    vt = _fix_signs(vt)
    std = s[:num_betas] / np.sqrt(count - 1)
    dirs = (vt[:num_betas] * std[:, None]).reshape(num_betas, -1, 3).transpose(1, 2, 0)
    return dirs, std


def deform(verts, joints, tips, weights, new_joints, new_tips, thickness=1.0):
    """Move vertices with their bones: each bone's frame follows the new skeleton (translation of its
    start, stretch along it), thickness scales across bones; blended by the skinning weights."""
    out = np.zeros_like(verts)
    total = np.zeros(len(verts))
    for finger, ids in _FINGER_JOINTS.items():
        old = [np.zeros(3)] + [joints[i] for i in ids] + [tips[finger]]
        new = [np.zeros(3)] + [new_joints[i] for i in ids] + [new_tips[finger]]
        owners = (0,) + ids
        for k, joint_id in enumerate(owners):
            w = weights[:, joint_id] if joint_id else weights[:, 0] / 5.0
            if not w.any():
                continue
            a, b, a2, b2 = old[k], old[k + 1], new[k], new[k + 1]
            axis, axis2 = _unit(b - a), _unit(b2 - a2)
            stretch = np.linalg.norm(b2 - a2) / np.linalg.norm(b - a)
            rel = verts - a
            along = rel @ axis
            across = rel - along[:, None] * axis
            moved = a2 + along[:, None] * stretch * axis2 + thickness * across
            out += w[:, None] * moved
            total += w
    return out / total[:, None]


# ----------------------------------------------------------------------------- pose space

def joint_axes(joints, tips, directions):
    """Per MANO joint 1..15: (flexion axis, abduction axis) in the rest frame."""
    dorsal = np.array([0.0, 1.0, 0.0])
    axes = {}
    for finger, ids in _FINGER_JOINTS.items():
        d = directions[finger]
        if finger == "thumb":
            # Thumb flexion curls the thumb across the palm towards the little finger's base.
            target = _unit(joints[7] + np.array([0.0, -0.015, 0.0]) - joints[14])
            flex = _unit(np.cross(d, target))
            abd = _unit(np.cross(flex, d))
        else:
            flex = _unit(np.cross(dorsal, d))  # rotating d about it moves the finger towards -y (palm)
            abd = dorsal
        for j in ids:
            axes[j] = (flex, abd)
    return axes


def _pose_vectors(angles: np.ndarray, axes: dict) -> np.ndarray:
    """(N, 45) axis-angles of joints 1-15 from (N, 15, 2) flexion and abduction angles in degrees:
    flexion about the joint's flexion axis, then abduction about its abduction axis."""
    from scipy.spatial.transform import Rotation

    angles = np.deg2rad(np.asarray(angles, np.float64).reshape(-1, 15, 2))
    flex_axes = np.stack([axes[j][0] for j in range(1, 16)])
    abd_axes = np.stack([axes[j][1] for j in range(1, 16)])
    flex = Rotation.from_rotvec((angles[..., 0:1] * flex_axes).reshape(-1, 3))
    abd = Rotation.from_rotvec((angles[..., 1:2] * abd_axes).reshape(-1, 3))
    return (abd * flex).as_rotvec().reshape(-1, 45)


def _angle_array(pose: dict) -> np.ndarray:
    out = np.zeros((15, 2))
    for j, (flex, abd) in pose.items():
        out[j - 1] = (flex, abd)
    return out


def named_poses() -> dict:
    """Reference poses as {joint: (flexion, abduction)} in degrees."""
    def fingers(mcp, pip, spread=0.0, which=("index", "middle", "ring", "pinky")):
        out = {}
        side = {"index": -1.0, "middle": 0.0, "ring": 1.0, "pinky": 2.0}
        for f in which:
            a, b, c = _FINGER_JOINTS[f]
            out[a], out[b], out[c] = (mcp, spread * side[f]), (pip, 0.0), (pip * 2 / 3, 0.0)
        return out
    return {
        "flat": {},
        "relaxed": {**fingers(20, 25, 2), 13: (10, 10), 14: (10, 0), 15: (10, 0)},
        "fist": {**fingers(85, 100), 13: (35, 20), 14: (50, 0), 15: (60, 0)},
        "point": {**fingers(85, 100, which=("middle", "ring", "pinky")), 1: (0, 0), 2: (0, 0), 3: (0, 0),
                  13: (35, 15), 14: (45, 0), 15: (40, 0)},
        "pinch": {**fingers(15, 20, which=("middle", "ring", "pinky")), 1: (45, 0), 2: (45, 0), 3: (20, 0),
                  13: (30, 38), 14: (15, 0), 15: (15, 0)},
        "spread": {**fingers(-5, 0, 12), 13: (-10, 40), 14: (-5, 0), 15: (-10, 0)},
        "cylinder": {**fingers(55, 65), 13: (25, 35), 14: (25, 0), 15: (30, 0)},
        "sphere": {**fingers(40, 45, 8), 13: (20, 40), 14: (20, 0), 15: (25, 0)},
    }


def pose_corpus(axes, count=6000, seed=0):
    """(count + named, 45) plausible poses: synergies between fingers plus per-joint variation."""
    rng = np.random.default_rng(seed)
    named = named_poses()
    poses = [_angle_array(p) for p in named.values()]
    lo, hi = {k: v[0] for k, v in FLEXION_RANGE.items()}, {k: v[1] for k, v in FLEXION_RANGE.items()}
    for _ in range(count):
        closure = rng.beta(1.2, 1.4)            # how closed the hand is
        spread = rng.normal(0.0, 6.0)
        opposition = rng.uniform(0, 1)
        angles = {}
        for f in ("index", "middle", "ring", "pinky"):
            own = np.clip(closure + rng.normal(0, 0.18), 0, 1)
            if rng.random() < 0.15:
                own = rng.uniform(0, 1)             # an independent finger (pointing, counting)
            a, b, c = _FINGER_JOINTS[f]
            mcp = lo["mcp"] * 0.3 + own * (hi["mcp"] - 5) + rng.normal(0, 6)
            pip = own * (hi["pip"] - 10) + rng.normal(0, 7)
            side = {"index": -1.0, "middle": 0.0, "ring": 1.0, "pinky": 1.8}[f]
            angles[a] = (np.clip(mcp, lo["mcp"], hi["mcp"]), np.clip(spread * side * (1 - own), -18, 18))
            angles[b] = (np.clip(pip, lo["pip"], hi["pip"]), 0.0)
            angles[c] = (np.clip(pip * 2 / 3 + rng.normal(0, 5), lo["dip"], hi["dip"]), 0.0)
        if rng.random() < 0.15:  # thumb stretched out sideways (spread hand, "L" shapes)
            t_flex, t_abd = rng.uniform(-15, 5), rng.uniform(20, 45)
        else:
            t_flex = np.clip(opposition * 35 + closure * 10 + rng.normal(0, 6), *FLEXION_RANGE["thumb_cmc"])
            t_abd = np.clip(opposition * 35 + rng.normal(0, 7), *ABDUCTION_RANGE["thumb_cmc"])
        angles[13] = (t_flex, t_abd)
        angles[14] = (np.clip(closure * 40 + rng.normal(0, 8), *FLEXION_RANGE["thumb_mcp"]), 0.0)
        angles[15] = (np.clip(closure * 45 + rng.normal(0, 10), *FLEXION_RANGE["thumb_ip"]), 0.0)
        poses.append(_angle_array(angles))
    return _pose_vectors(np.array(poses), axes), list(named)


def pose_space(corpus, scale: float = 0.6):
    """``hands_mean`` and ``hands_components`` (45, 45): rows are principal directions times their
    standard deviation times ``scale`` (so [-2, 2] stays inside the corpus' extent)."""
    mean = corpus.mean(0)
    u, s, vt = np.linalg.svd(corpus - mean, full_matrices=False)
    vt = _fix_signs(vt)
    std = s / np.sqrt(len(corpus) - 1)
    components = vt * (std[:, None] * scale)
    return mean, components, std


def joint_angles(pose45, axes):
    """(…, 15, 2) flexion and abduction in degrees of axis-angle joint rotations: where the joint
    turns its bone's rest direction, measured about the stored flexion and abduction axes."""
    from scipy.spatial.transform import Rotation

    pose = np.asarray(pose45, np.float64).reshape(-1, 15, 3)
    out = np.zeros(pose.shape[:2] + (2,))
    for j in range(1, 16):
        flex, abd = axes[j]
        rest = _unit(np.cross(flex, abd))                 # the bone's rest direction
        moved = Rotation.from_rotvec(pose[:, j - 1]).apply(rest)
        out[:, j - 1, 0] = np.degrees(np.arctan2(moved @ np.cross(flex, rest), moved @ rest))
        out[:, j - 1, 1] = np.degrees(np.arcsin(np.clip(moved @ np.cross(abd, rest), -1, 1)))
    return out.reshape(np.shape(pose45)[:-1] + (15, 2))


# ----------------------------------------------------------------------------- the model

def build_open_hand_model(seed: int = 0) -> dict:
    """The open hand model's arrays, with MANO's keys (plus fingertip ids and a pose prior)."""
    joints, tips, directions = rest_skeleton()
    verts, faces = _weld(*_marching_cubes(joints, tips))
    verts = _taubin(verts, faces)
    check_closed(faces)
    weights = skinning_weights(verts, joints, tips)
    regressor = joint_regressor(verts, joints)
    tip_ids = fingertip_vertices(verts, weights, tips, directions)
    shapedirs, shape_std = shape_space(verts, joints, tips, weights, seed=seed)
    axes = joint_axes(joints, tips, directions)
    corpus, names = pose_corpus(axes, seed=seed)
    mean, components, pose_std = pose_space(corpus)
    kintree = np.array([[4294967295] + list(kp.MANO_PARENTS[1:]), list(range(16))], dtype=np.int64)
    return {
        "v_template": verts.astype(np.float64), "f": faces.astype(np.uint32), "weights": weights,
        "J_regressor": regressor, "J": joints, "kintree_table": kintree,
        "shapedirs": shapedirs, "posedirs": np.zeros((len(verts), 3, 135), np.float16),  # no corrective blend shapes
        "hands_components": components, "hands_mean": mean,
        "fingertip_vertex_ids": tip_ids, "model_name": "open_hand", "model_version": MODEL_VERSION,
        "pose_prior": {
            "flexion_axes": np.stack([axes[j][0] for j in range(1, 16)]),
            "abduction_axes": np.stack([axes[j][1] for j in range(1, 16)]),
            "named_poses": {n: corpus[i] for i, n in enumerate(names)},
        },
    }


def save_open_hand_model(path=None, seed: int = 0) -> Path:
    """Build the open hand model and write it (MANO pickle format) to ``path`` (default: params/)."""
    return write_pickle(Path(path or OPEN_HAND_PATH), build_open_hand_model(seed))
