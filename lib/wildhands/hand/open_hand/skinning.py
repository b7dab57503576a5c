"""The open hand's skinning weights and joint regressor.

Skinning: every vertex belongs to the palm and at most one digit; weights blend smoothly across
each joint along the digit, and the web between two fingers is shared between them with a
compactly supported partition (no weight reaches a finger that is not adjacent to the vertex).

Regressor: per joint, non-negative weights over a ring of vertices around it (rows sum to one)
that reproduce the joint exactly on the template, so joints follow shape changes.
"""
from __future__ import annotations

import numpy as np

from wildhands.hand import keypoints as kp
from wildhands.hand.open_hand.anatomy import DIGIT_JOINTS, MM, Skeleton
from wildhands.hand.open_hand.surface import digit_coordinates, digit_field, smoothstep

# Half-widths of the skinning blend across each joint along a digit: base joint, middle, distal.
BLEND_HALF_WIDTH = {"finger": (10 * MM, 8 * MM, 7 * MM), "thumb": (14 * MM, 9 * MM, 7 * MM)}
# Two digits share a vertex only where their surfaces are this close (the first web space is wide).
SHARE_WIDTH = {"finger": 6 * MM, "thumb": 20 * MM}
DIGIT_REACH = {"finger": (3 * MM, 9 * MM), "thumb": (4 * MM, 28 * MM)}   # fall-off of a digit's pull


def digit_kind(name: str) -> str:
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
    width = np.array([SHARE_WIDTH[digit_kind(n)] for n in names])
    share = np.clip(1.0 - (distance - distance.min(1, keepdims=True)) / width, 0.0, 1.0) ** 2
    share /= share.sum(1, keepdims=True)
    weights = np.zeros((len(verts), 16))
    # In a crotch (two digits sharing equally) neither digit pulls; one digit alone pulls fully.
    alone = np.clip(2.0 * share.max(1) - 1.0, 0.0, 1.0)
    for k, name in enumerate(names):
        digit = skeleton.digits[name]
        kind = digit_kind(name)
        reach = 1.0 - smoothstep(distance[:, k], *DIGIT_REACH[kind])
        u = digit_coordinates(verts, digit)[0]
        steps = [smoothstep(u, c - h, c + h) for c, h in zip(digit.joint_offsets[:3], BLEND_HALF_WIDTH[kind])]
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

