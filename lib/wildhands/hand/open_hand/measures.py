"""Measurements of the built open hand that tests and benchmarks compare with anatomy: the palm's
breadth across the knuckles, and how deep digits reach into each other in a pose.
"""
from __future__ import annotations

import numpy as np

from wildhands.hand import keypoints as kp
from wildhands.hand.open_hand.anatomy import DIGIT_JOINTS, MM, Skeleton, rest_skeleton
from wildhands.hand.open_hand.kinematics import forward
from wildhands.hand.open_hand.surface import digit_coordinates, digit_field, digit_sections


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
