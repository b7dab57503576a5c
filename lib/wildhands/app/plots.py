"""Matplotlib figures: meshes from several views, galleries, curves.

Every function returns the figure (and never calls ``plt.show``), so notebooks can
display it and save it with ``save_figure``.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from wildhands.eval import paper_reference as ref
from wildhands.fileio import atomic_path
from wildhands.hand import keypoints as kp

SKIN = np.array([0.87, 0.67, 0.55])
# Views of the open hand model in its rest frame (fingers +x, back +y, thumb -z): (elevation, azimuth).
VIEWS = {"back": (0, 90), "palm": (0, -90), "thumb side": (-90, -90)}


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
    """One row of views of a mesh (default: back, palm and thumb side of the open hand model)."""
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


def draw_skeleton_2d(ax, keypoints_2d, visible=None, lw=1.5, marker_size=6, occluded=None):
    """Draw a 21-keypoint skeleton on a matplotlib image axis (invisible keypoints skipped,
    ``occluded`` ones drawn hollow)."""
    keypoints_2d = np.asarray(keypoints_2d, float)
    vis = np.ones(kp.NUM_KEYPOINTS, bool) if visible is None else np.asarray(visible) > 0
    hidden = np.zeros(kp.NUM_KEYPOINTS, bool) if occluded is None else np.asarray(occluded) > 0
    for parent, child in kp.BONES:
        if vis[parent] and vis[child]:
            ax.plot(*keypoints_2d[[parent, child]].T, color=kp.bone_color(child), lw=lw)
    shown = vis & ~hidden
    ax.scatter(*keypoints_2d[shown].T, s=marker_size, c="white", edgecolors="k", linewidths=0.5, zorder=3)
    ax.scatter(*keypoints_2d[vis & hidden].T, s=marker_size, facecolors="none", edgecolors="white",
               linewidths=0.8, zorder=3)
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


def loss_curves_figure(logs: dict, terms=("loss", "l2d", "l3d", "mask", "reg"), metric="mpjpe_3d_mm",
                       size=(5, 3.4)):
    """Training curves from loss logs: one panel per run (weighted terms, log scale) and one for ``metric``.

    ``logs`` maps a run name to its JSON-lines log path or to its list of records
    (``train.read_log``). Terms a run did not log (e.g. pretraining's own terms) are skipped;
    pretraining runs plot their parameter terms (rotation, trans, scale, betas, pose).
    """
    import json

    runs = {}
    for name, log in logs.items():
        if isinstance(log, (str, Path)):
            log = [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
        runs[name] = log
    fig, axes = plt.subplots(1, len(runs) + 1, figsize=(size[0] * (len(runs) + 1), size[1]), squeeze=False)
    for ax, (name, records) in zip(axes[0], runs.items()):
        steps = [r["step"] for r in records]
        shown = [t for t in terms if records and t in records[0]]
        if records and records[0].get("stage") == "pretrain":
            shown = ["loss"] + [t for t in ("rotation", "trans", "scale", "betas", "pose") if t in records[0]]
        for term in shown:
            ax.plot(steps, [max(r[term], 1e-8) for r in records], label=term, lw=2 if term == "loss" else 1)
        ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("weighted loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax = axes[0, -1]
    for name, records in runs.items():
        points = [(r["step"], r[metric]) for r in records if metric in r]
        if points:
            ax.plot(*zip(*points), label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"training {metric.replace('_', ' ')}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def prediction_overlays_figure(backgrounds, predicted_2d, true_2d=None, vertices_2d=None, titles=None,
                               columns: int = 4, size=2.6):
    """Predicted skeletons (and reprojected mesh vertices) drawn over the network's inputs.

    ``backgrounds``: crops (N, H, W[, 3]) in pixels of the 320 crop (images, or heat-map sums for
    the 2D variant); ``predicted_2d`` / ``true_2d`` (N, 21, 2) and ``vertices_2d`` (N, V, 2) in
    the same pixels. Labels are drawn thin and white, predictions in finger colours.
    """
    count = len(predicted_2d)
    rows = int(np.ceil(count / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i >= count:
            continue
        background = np.asarray(backgrounds[i])
        ax.imshow(background, cmap="gray" if background.ndim == 2 else None)
        if vertices_2d is not None:
            ax.scatter(*np.asarray(vertices_2d[i]).T, s=0.3, c=[SKIN], alpha=0.35, linewidths=0)
        if true_2d is not None:
            truth = np.asarray(true_2d[i])
            for parent, child in kp.BONES:
                ax.plot(*truth[[parent, child]].T, color="white", lw=0.8, alpha=0.8)
        draw_skeleton_2d(ax, predicted_2d[i], lw=1.5, marker_size=4)
        ax.set_xlim(0, background.shape[1] - 1)
        ax.set_ylim(background.shape[0] - 1, 0)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


# Colours of the paper's methods, shared by the published curves and ours (RGB in [0, 1]).
METHOD_COLORS = {
    "rgb": (0.12, 0.47, 0.71), "2d": (0.84, 0.15, 0.16), "rgb+2d": (0.17, 0.63, 0.17), "2dfit": (1.0, 0.5, 0.05),
    "zb": (0.55, 0.34, 0.29), "vae": (0.58, 0.4, 0.74), "gan": (0.89, 0.47, 0.76), "iqbal": (0.5, 0.5, 0.5),
    "weak": (0.74, 0.74, 0.13), "pso": (0.09, 0.75, 0.81), "icppso": (0.68, 0.78, 0.91), "chpr": (0.6, 0.6, 0.3),
    "wacv": (0.3, 0.3, 0.3),
}


def _curve_xy(value, unit: str):
    """(thresholds, pck) from a ``metrics`` summary dict or a (thresholds, pck) pair."""
    if isinstance(value, dict):
        return np.asarray(value[f"thresholds_{unit}"], float), np.asarray(value["pck"], float)
    thresholds, pck = value
    return np.asarray(thresholds, float), np.asarray(pck, float)


def draw_pck_comparison(ax, figure, ours: dict | None = None, paper: bool = True, paper_suffix=" (paper)"):
    """Draw one of the paper's PCK figures (4-8) on ``ax``, with our curves over it.

    Published curves are dashed and labelled with the paper's legend plus ``paper_suffix``;
    ours are solid, in the same colour, labelled as the paper's legend ("Ours RGB", "2D fit",
    ...). ``ours`` maps a method key or label to a ``metrics`` summary or (thresholds, pck).
    """
    spec = ref.load_paper_reference()["figures"][str(figure)]
    entry = ref.paper_set(spec["set"])
    unit = entry["unit"]
    ours = {ref.method_key(k): v for k, v in (ours or {}).items()}
    lo, hi = spec["xlim"]
    if paper:
        for method in spec["methods"]:
            x, y = ref.paper_curve(spec["set"], method)
            keep = (x >= lo - 1e-9) & (x <= hi + 1e-9)
            sparse = keep.sum() < 25  # competitors' curves come as a few points
            ax.plot(x[keep], y[keep], ls="--" if method in ours else "-", lw=1.2, marker="." if sparse else None,
                    color=METHOD_COLORS.get(method), label=ref.label(method) + (paper_suffix if method in ours else ""))
    bottom, top = spec["ylim"]
    for method, value in ours.items():
        x, y = _curve_xy(value, unit)
        keep = (x >= lo - 1e-9) & (x <= hi + 1e-9)
        ax.plot(x[keep], y[keep], lw=2.2, color=METHOD_COLORS.get(method), label=ref.label(method))
        if np.isfinite(y[keep]).any():  # widen the paper's axis range to show our curves whole
            bottom = min(bottom, np.floor(np.nanmin(y[keep]) * 10) / 10)
            top = min(1.0, max(top, np.ceil(np.nanmax(y[keep]) * 10) / 10))
    ax.set_xlim(lo, hi)
    ax.set_ylim(bottom, top)
    ax.set_xlabel(f"Error Thresholds ({unit})")
    ax.set_ylabel("3D PCK" if entry["kind"] == "3d" else "2D PCK")
    ax.set_title(f"Fig. {figure}: {spec['title']}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return ax


def pck_comparison_figure(figure, ours: dict | None = None, paper: bool = True, size=(5.2, 3.9)):
    """Our PCK curves beside the paper's, in the style of figures 4-8.

    ``figure``: a figure number (4-8) or an evaluation set (``"stereo"`` draws figures 4 and 5
    side by side). See ``draw_pck_comparison`` for ``ours``.
    """
    figures = ref.load_paper_reference()["figures"]
    if str(figure) in figures:
        numbers = [str(figure)]
    else:
        numbers = ref.paper_set(str(figure))["figures"]
    fig, axes = plt.subplots(1, len(numbers), figsize=(size[0] * len(numbers), size[1]), squeeze=False)
    for ax, number in zip(axes[0], numbers):
        draw_pck_comparison(ax, number, ours, paper)
    fig.tight_layout()
    return fig


def sample_grid_figure(samples, n: int | None = None, columns: int = 4, size: float = 2.6, titles=None):
    """The first ``n`` (default: all) samples of a list or data set in the training sample format:
    image, hand-mask outline (white), occluders' outline (dashed, where a sample has
    ``occluder_mask``) and keypoint skeleton (hollow markers: ``occluded`` keypoints)."""
    samples = [samples[i] for i in range(len(samples) if n is None else min(n, len(samples)))]
    rows = max(int(np.ceil(len(samples) / columns)), 1)
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i >= len(samples):
            continue
        s = samples[i]
        ax.imshow(s["image"])
        if s.get("mask") is not None and np.any(s["mask"]):
            ax.contour(s["mask"], levels=[0.5], colors="white", linewidths=0.8)
        if s.get("occluder_mask") is not None and np.any(s["occluder_mask"]):
            ax.contour(s["occluder_mask"], levels=[0.5], colors="yellow", linewidths=0.6, linestyles="dashed")
        draw_skeleton_2d(ax, s["keypoints_2d"], s.get("visible"), lw=1.0, marker_size=4, occluded=s.get("occluded"))
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


# Orthographic views of camera-frame points (x right, y down, z away): (elevation, azimuth) of mplot3d.
CAMERA_VIEWS = {"camera view": (-90, -90), "side view": (0, 0)}


def draw_skeleton_3d(ax, keypoints, color=None, lw=2.0, linestyle="-", marker_size=8, label=None):
    """A 21-keypoint skeleton on a 3D axis: bones in finger colours, or all in ``color``."""
    keypoints = np.asarray(keypoints, float)
    for i, (parent, child) in enumerate(kp.BONES):
        ax.plot(*keypoints[[parent, child]].T, color=color or kp.bone_color(child), lw=lw, ls=linestyle,
                label=label if i == 0 else None)
    ax.scatter(*keypoints.T, s=marker_size, c=color or "k", depthshade=False)


def skeleton_pairs_figure(targets, fits, titles=None, views=CAMERA_VIEWS, size: float = 2.8,
                          target_label: str = "real", fit_label: str = "fit"):
    """Columns of hands, rows of ``views``: each target skeleton (finger colours) with its fit
    (black, dashed), both (N, 21, 3) metres in one frame; equal aspect, axes in millimetres."""
    targets, fits = np.asarray(targets, float) * 1000, np.asarray(fits, float) * 1000
    count = len(targets)
    fig = plt.figure(figsize=(size * count, size * len(views)))
    for column in range(count):
        both = np.concatenate([targets[column], fits[column]])
        centre, radius = (both.max(0) + both.min(0)) / 2, (both.max(0) - both.min(0)).max() / 2 + 5
        for row, (view, (elev, azim)) in enumerate(views.items()):
            ax = fig.add_subplot(len(views), count, row * count + column + 1, projection="3d")
            draw_skeleton_3d(ax, targets[column], label=target_label)
            draw_skeleton_3d(ax, fits[column], color="k", lw=1.2, linestyle="--", marker_size=4, label=fit_label)
            for axis, c in zip("xyz", centre):
                getattr(ax, f"set_{axis}lim")(c - radius, c + radius)
            ax.set_box_aspect((1, 1, 1))
            ax.view_init(elev=elev, azim=azim)
            ax.tick_params(labelsize=5, pad=0)
            if column == 0:
                ax.text2D(-0.05, 0.5, view, transform=ax.transAxes, rotation=90, va="center", fontsize=8)
            if row == 0 and titles is not None:
                ax.set_title(titles[column], fontsize=8)
    fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=8)
    return fig
