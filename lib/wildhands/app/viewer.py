"""Interactive 3D (k3d): meshes and skeletons, sliders, standalone HTML snapshots.

k3d renders in the browser; headless (papermill) only ``plot.get_snapshot()`` works,
which is what ``save_snapshot`` writes. Coordinates are shown in millimetres.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from wildhands.fileio import write_bytes
from wildhands.hand import keypoints as kp

SKIN_HEX = 0xDDAA8C


def _rgb_hex(color) -> int:
    r, g, b = (int(round(255 * c)) for c in color)
    return (r << 16) + (g << 8) + b


def hand_plot(vertices, faces, keypoints=None, color=SKIN_HEX, opacity=1.0, plot=None, name="hand"):
    """A k3d plot (new, or ``plot``) with the mesh and its skeleton; returns (plot, mesh, lines)."""
    import k3d

    plot = plot or k3d.plot(grid_visible=False, camera_auto_fit=True, axes=["x (mm)", "y (mm)", "z (mm)"])
    mesh = k3d.mesh(np.asarray(vertices, np.float32) * 1000, np.asarray(faces, np.uint32), color=color,
                    opacity=opacity, flat_shading=False, name=name)
    plot += mesh
    lines = None
    if keypoints is not None:
        points, indices, colors = _skeleton_segments(keypoints)
        lines = k3d.lines(points, indices, indices_type="segment", colors=colors, width=1.5, shader="simple",
                          name=f"{name} skeleton")
        plot += lines
    return plot, mesh, lines


def _skeleton_segments(keypoints):
    points = np.asarray(keypoints, np.float32) * 1000
    indices = np.array(kp.BONES, np.uint32)
    vertex_colors = np.zeros(len(points), np.uint32)  # the wrist stays black
    for _, child in kp.BONES:
        vertex_colors[child] = _rgb_hex(kp.bone_color(child))
    return points, indices, vertex_colors


def update_hand(mesh, lines, vertices, keypoints=None):
    """Move an existing k3d mesh (and skeleton) to new vertices."""
    mesh.vertices = np.asarray(vertices, np.float32) * 1000
    if lines is not None and keypoints is not None:
        lines.vertices = np.asarray(keypoints, np.float32) * 1000


def save_snapshot(plot, path) -> Path:
    """Write a standalone HTML snapshot of a k3d plot (works headless)."""
    html = plot.get_snapshot()
    return write_bytes(path, html.encode("utf-8") if isinstance(html, str) else html)


def frustum_segments(intrinsics: dict, depth_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Points (5, 3) in millimetres (the camera centre, then the image corners at ``depth_m``)
    and segment indices of a camera's viewing frustum; ``intrinsics`` as predict's JSON
    ``camera_intrinsics`` (fx, fy, cx, cy, width, height in pixels)."""
    fx, fy, cx, cy = (float(intrinsics[k]) for k in ("fx", "fy", "cx", "cy"))
    right, bottom = float(intrinsics["width"]) - 0.5, float(intrinsics["height"]) - 0.5
    corners = [(-0.5, -0.5), (right, -0.5), (right, bottom), (-0.5, bottom)]
    points = [(0.0, 0.0, 0.0)] + [((u - cx) / fx * depth_m, (v - cy) / fy * depth_m, depth_m) for u, v in corners]
    indices = [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (2, 3), (3, 4), (4, 1)]
    return np.asarray(points, np.float32) * 1000, np.asarray(indices, np.uint32)


def add_camera_frustum(plot, intrinsics: dict, depth_m: float, color: int = 0x3366CC, name: str = "camera"):
    """Draw a camera's frustum (apex at the origin, x right, y down, z forward) into a k3d plot."""
    import k3d

    points, indices = frustum_segments(intrinsics, depth_m)
    lines = k3d.lines(points, indices, indices_type="segment", color=color, width=1.0, shader="simple", name=name)
    plot += lines
    return lines
