"""Matplotlib figures: meshes from several views, galleries, curves.

Every function returns the figure (and never calls ``plt.show``), so notebooks can
display it and save it with ``save_figure``.
"""
from __future__ import annotations

from pathlib import Path


import matplotlib.pyplot as plt
import numpy as np
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from . import keypoints as kp
from .fileio import atomic_path

SKIN = np.array([0.87, 0.67, 0.55])
# Camera-style views of a hand in its model frame: (elevation, azimuth) for matplotlib.
VIEWS = {"front": (90, -90), "side": (0, -90), "top": (0, 0)}


def save_figure(fig, path, dpi: int = 110) -> Path:
    """Save ``fig`` atomically as PNG."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    return path


def _shade(vertices: np.ndarray, faces: np.ndarray, color=SKIN, light=(0.3, 0.5, 1.0)) -> np.ndarray:
    tri = vertices[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    light = np.asarray(light, float) / np.linalg.norm(light)
    lambert = np.abs(normals @ light)  # two-sided: matplotlib's view direction is not known here
    return np.clip(np.asarray(color)[None] * (0.35 + 0.65 * lambert[:, None]), 0, 1)


def draw_mesh(ax, vertices, faces, keypoints=None, color=SKIN, alpha=1.0, elev=90, azim=-90, title=None):
    """Draw a shaded mesh (and optionally its skeleton) on a 3D axis with equal aspect."""
    vertices = np.asarray(vertices, float)
    faces = np.asarray(faces)
    coll = Poly3DCollection(vertices[faces], facecolors=_shade(vertices, faces, color), edgecolors="none",
                            alpha=alpha)
    ax.add_collection3d(coll)
    if keypoints is not None:
        keypoints = np.asarray(keypoints, float)
        for parent, child in kp.BONES:
            seg = keypoints[[parent, child]]
            ax.plot(*seg.T, color=kp.bone_color(child), lw=2, zorder=10)
        ax.scatter(*keypoints.T, s=8, c="k", depthshade=False, zorder=11)
    centre = vertices.mean(0)
    radius = (vertices.max(0) - vertices.min(0)).max() / 2
    for axis, c in zip("xyz", centre):
        getattr(ax, f"set_{axis}lim")(c - radius, c + radius)
    ax.set_box_aspect((1, 1, 1))
    ax.view_init(elev=elev, azim=azim)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def mesh_views_figure(vertices, faces, keypoints=None, views=VIEWS, title=None, size=3.2):
    """One row of views of a mesh (default: front, side, top of the model frame)."""
    fig = plt.figure(figsize=(size * len(views), size))
    for i, (name, (elev, azim)) in enumerate(views.items()):
        ax = fig.add_subplot(1, len(views), i + 1, projection="3d")
        draw_mesh(ax, vertices, faces, keypoints, elev=elev, azim=azim, title=name)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def mesh_gallery_figure(meshes, faces, titles=None, columns: int = 4, view=(90, -90), size=2.6):
    """A grid of meshes (list of (V, 3) arrays) seen from one view."""
    rows = int(np.ceil(len(meshes) / columns))
    fig = plt.figure(figsize=(size * columns, size * rows))
    for i, verts in enumerate(meshes):
        ax = fig.add_subplot(rows, columns, i + 1, projection="3d")
        draw_mesh(ax, verts, faces, elev=view[0], azim=view[1], title=None if titles is None else titles[i])
    fig.tight_layout()
    return fig


def image_grid_figure(images, titles=None, columns: int = 4, size=2.6, keypoints=None, visible=None):
    """A grid of images, optionally with 2D skeletons drawn over them."""
    rows = int(np.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i >= len(images):
            continue
        ax.imshow(images[i], cmap="gray" if np.ndim(images[i]) == 2 else None)
        if keypoints is not None:
            draw_skeleton_2d(ax, keypoints[i], None if visible is None else visible[i])
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def draw_skeleton_2d(ax, keypoints_2d, visible=None, lw=1.5, marker_size=6):
    """Draw a 21-keypoint skeleton on a matplotlib image axis (invisible keypoints skipped)."""
    keypoints_2d = np.asarray(keypoints_2d, float)
    vis = np.ones(kp.NUM_KEYPOINTS, bool) if visible is None else np.asarray(visible) > 0
    for parent, child in kp.BONES:
        if vis[parent] and vis[child]:
            ax.plot(*keypoints_2d[[parent, child]].T, color=kp.bone_color(child), lw=lw)
    ax.scatter(*keypoints_2d[vis].T, s=marker_size, c="white", edgecolors="k", linewidths=0.5, zorder=3)
    return ax


def curves_figure(series: dict, xlabel: str, ylabel: str, title=None, logy=False, size=(5, 3.5)):
    """Plot named (x, y) series on one axis."""
    fig, ax = plt.subplots(figsize=size)
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
