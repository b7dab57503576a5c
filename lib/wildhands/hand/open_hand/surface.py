"""The open hand's surface as an implicit function (negative inside, metres).

Per digit an elliptic generalised cylinder along its bone axis whose breadth, dorsal depth and
palmar depth vary along it (knuckle bumps, palmar creases and pads, a flat nail plate, a rounded
tip), a palm slab with rounded edges, a transverse arch and a hollow centre, thenar and
hypothenar eminences, palmar pads at the finger bases, dorsal knuckles and a short wrist stump,
joined by smooth unions.
"""
from __future__ import annotations

import numpy as np

from wildhands.hand.open_hand.anatomy import (DIGIT_SECTIONS, DIGIT_START, FINGERS4, MM, Digit, Skeleton, rest_skeleton,
                                              unit)


def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: a union whose seam is rounded over about ``k`` metres."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
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
    nail = smoothstep(u, j2 + 0.15 * (tip - j2), j2 + 0.45 * (tip - j2))
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
    normal = unit(np.cross(ab, ac))
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
           (mcp["index"][0] - 10 * MM, mcp["index"][1] - 10 * MM),
           (mcp["index"][0] + 1 * MM, mcp["index"][1] - 6 * MM),
           (mcp["index"][0] + 3 * MM, mcp["index"][1]),
           (mcp["middle"][0] + 3 * MM, mcp["middle"][1]),
           (mcp["ring"][0] + 3 * MM, mcp["ring"][1]),
           (mcp["pinky"][0] + 3 * MM, mcp["pinky"][1]),
           (mcp["pinky"][0] - 1 * MM, mcp["pinky"][1] + 5 * MM),
           (mcp["pinky"][0] - 10 * MM, mcp["pinky"][1] + 7.5 * MM),
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
    along = unit(thumb.direction * [1, 0, 1])
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
    hypo_axis = unit([pinky[0] - 8 * MM, 0, pinky[2] - 27 * MM])
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

