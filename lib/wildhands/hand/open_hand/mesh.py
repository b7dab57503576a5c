"""The open hand's rest mesh: the implicit surface polygonised with marching cubes, decimated by
quadric error to about MANO's resolution (finer on the digits) and relaxed onto the surface
(``wildhands.hand.mesh_ops``): a closed, consistently oriented, outward-facing triangle mesh whose
fingertip keypoints are surface vertices at the end of each finger pad.
"""
from __future__ import annotations

import numpy as np

from wildhands.hand import mesh_ops
from wildhands.hand.open_hand.anatomy import MM, Skeleton
from wildhands.hand.open_hand.skinning import DIGIT_REACH, digit_kind
from wildhands.hand.open_hand.surface import digit_field, hand_field, smoothstep

TARGET_VERTICES = 1300
GRID_STEP = 2.0 * MM            # marching-cubes spacing before decimation
DIGIT_EDGE_RATIO = 0.65         # edges on the digits relative to the palm (finer where the hand bends)


def _field(skeleton: Skeleton):
    return lambda points: hand_field(points, skeleton)


def _edge_sizing(points: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """Relative edge length wanted at ``points``: finer on the digits and where the thumb's
    skinning reaches (thenar, first web space), where the surface bends."""
    reach = {name: DIGIT_REACH[digit_kind(name)][1] - DIGIT_REACH["finger"][1] for name in skeleton.digits}
    near = np.min([digit_field(points, d) - reach[name] for name, d in skeleton.digits.items()], axis=0)
    return DIGIT_EDGE_RATIO + (1 - DIGIT_EDGE_RATIO) * smoothstep(near, 2 * MM, 10 * MM)


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

