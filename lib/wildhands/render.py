"""A depth-correct triangle rasterizer on the CPU (numpy), with per-vertex colour interpolation.

Vertices come in pixels (x right, y down, pixel centres at integers) with a depth each
(larger = farther), as the weak-perspective camera gives them. All triangles are rasterized
at once: every pixel centre inside a triangle's bounding box becomes a candidate, barycentric
coordinates decide coverage, and the nearest candidate per pixel wins (z-buffer by sorting).
``render`` returns colour, depth, silhouette and face-id buffers; helpers shade meshes with a
directional light.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_CANDIDATES = 6_000_000  # pixel candidates per chunk of triangles (memory bound)


@dataclass
class Rendering:
    color: np.ndarray     # (H, W, 3) float in [0, 1] (background where no face)
    depth: np.ndarray     # (H, W) float, inf where no face
    mask: np.ndarray      # (H, W) uint8 {0, 1}
    face_id: np.ndarray   # (H, W) int, -1 where no face


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (outward for consistently oriented, outward faces)."""
    tri = vertices[faces]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    return normals / (np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12)


def lambert(normals: np.ndarray, albedo: np.ndarray, light_dir, ambient: float = 0.35,
            light_color=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Per-vertex colours: albedo * (ambient + diffuse); ``light_dir`` points from the surface to the light."""
    light = np.asarray(light_dir, np.float64)
    light = light / np.linalg.norm(light)
    diffuse = np.clip(normals @ light, 0.0, None)[:, None]
    return np.clip(albedo * (ambient + (1 - ambient) * diffuse * np.asarray(light_color)), 0.0, 1.0)


def _candidates(tri: np.ndarray, width: int, height: int):
    """Pixel candidates (face, x, y) of every triangle's clipped bounding box."""
    low = np.clip(np.ceil(tri[:, :, :2].min(1) - 1e-9), 0, [width - 1, height - 1]).astype(np.int64)
    high = np.clip(np.floor(tri[:, :, :2].max(1) + 1e-9), 0, [width - 1, height - 1]).astype(np.int64)
    valid = (tri[:, :, 0].max(1) >= 0) & (tri[:, :, 0].min(1) <= width - 1) & \
            (tri[:, :, 1].max(1) >= 0) & (tri[:, :, 1].min(1) <= height - 1)
    w = np.where(valid, high[:, 0] - low[:, 0] + 1, 0)
    h = np.where(valid, high[:, 1] - low[:, 1] + 1, 0)
    counts = w * h
    face = np.repeat(np.arange(len(tri)), counts)
    start = np.repeat(np.cumsum(counts) - counts, counts)
    local = np.arange(counts.sum()) - start
    ws = np.repeat(w, counts)
    x = np.repeat(low[:, 0], counts) + local % np.maximum(ws, 1)
    y = np.repeat(low[:, 1], counts) + local // np.maximum(ws, 1)
    return face, x, y


def rasterize(vertices_2d, depth, faces, width: int, height: int):
    """(face_id (H, W) int, barycentrics (H, W, 3), depth (H, W)) of the nearest face at each pixel centre."""
    vertices_2d = np.asarray(vertices_2d, np.float64)
    depth = np.asarray(depth, np.float64)
    faces = np.asarray(faces, np.int64)
    if vertices_2d.ndim != 2 or vertices_2d.shape[1] != 2 or len(depth) != len(vertices_2d):
        raise ValueError(f"vertices_2d (V, 2) and depth (V,) expected, got {vertices_2d.shape}, {np.shape(depth)}")
    tri = np.concatenate([vertices_2d, depth[:, None]], 1)[faces]
    zbuf = np.full(height * width, np.inf)
    fbuf = np.full(height * width, -1, np.int64)
    bary = np.zeros((height * width, 3))
    area = (tri[:, 1, 0] - tri[:, 0, 0]) * (tri[:, 2, 1] - tri[:, 0, 1]) - \
           (tri[:, 2, 0] - tri[:, 0, 0]) * (tri[:, 1, 1] - tri[:, 0, 1])
    keep = np.abs(area) > 1e-12
    order = np.flatnonzero(keep)
    sizes = np.prod(np.clip(np.ptp(tri[order, :, :2], axis=1) + 2, 1, None), axis=1)
    chunks = np.split(order, np.searchsorted(np.cumsum(sizes), np.arange(MAX_CANDIDATES, sizes.sum(), MAX_CANDIDATES)))
    for chunk in chunks:
        if not len(chunk):
            continue
        f_local, x, y = _candidates(tri[chunk], width, height)
        f = chunk[f_local]
        t = tri[f]
        a = area[f]
        w1 = ((t[:, 2, 0] - t[:, 0, 0]) * (y - t[:, 0, 1]) - (t[:, 2, 1] - t[:, 0, 1]) * (x - t[:, 0, 0])) / -a
        w2 = ((t[:, 1, 0] - t[:, 0, 0]) * (y - t[:, 0, 1]) - (t[:, 1, 1] - t[:, 0, 1]) * (x - t[:, 0, 0])) / a
        w0 = 1 - w1 - w2
        inside = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
        f, x, y, w0, w1, w2, t = f[inside], x[inside], y[inside], w0[inside], w1[inside], w2[inside], t[inside]
        z = w0 * t[:, 0, 2] + w1 * t[:, 1, 2] + w2 * t[:, 2, 2]
        pixel = y * width + x
        first = np.lexsort((z, pixel))
        pixel, z = pixel[first], z[first]
        nearest = np.ones(len(pixel), bool)
        nearest[1:] = pixel[1:] != pixel[:-1]
        sel = first[nearest]
        p = pixel[nearest]
        closer = z[nearest] < zbuf[p]
        p, sel = p[closer], sel[closer]
        zbuf[p] = z[nearest][closer]
        fbuf[p] = f[sel]
        bary[p] = np.stack([w0[sel], w1[sel], w2[sel]], 1)
    return fbuf.reshape(height, width), bary.reshape(height, width, 3), zbuf.reshape(height, width)


def render(vertices_2d, depth, faces, vertex_colors, width: int, height: int, background=None,
           flat: bool = False) -> Rendering:
    """Rasterize a mesh with per-vertex colours (interpolated, or per face with ``flat``) over
    ``background`` ((H, W, 3) float in [0, 1], default black)."""
    face_id, bary, zbuf = rasterize(vertices_2d, depth, faces, width, height)
    colors = np.asarray(vertex_colors, np.float64)
    faces = np.asarray(faces, np.int64)
    image = np.zeros((height, width, 3)) if background is None else np.array(background, np.float64, copy=True)
    hit = face_id >= 0
    corner = colors[faces[face_id[hit]]]                         # (n, 3 corners, 3 channels)
    if flat:
        image[hit] = corner.mean(1)
    else:
        image[hit] = np.einsum("nk,nkc->nc", bary[hit], corner)
    return Rendering(image, zbuf, hit.astype(np.uint8), face_id)


def overlay_mesh(image: np.ndarray, vertices_2d, depth, faces, color=(0.87, 0.69, 0.59), alpha: float = 0.7,
                 light_dir=(0.0, -0.4, -1.0), vertices_3d=None) -> np.ndarray:
    """A copy of an RGB uint8 ``image`` with a shaded, depth-correct mesh blended over it.

    Shading uses ``vertices_3d`` (camera frame) when given, else (x, y, depth) with x, y in pixels.
    """
    height, width = image.shape[:2]
    shape = vertices_3d if vertices_3d is not None else np.c_[vertices_2d, depth]
    normals = vertex_normals(np.asarray(shape, np.float64), np.asarray(faces))
    light = np.asarray(light_dir, np.float64) / np.linalg.norm(light_dir)
    shade = 0.35 + 0.65 * np.abs(normals @ light)  # two-sided: mirrored meshes keep their shading
    colors = np.clip(np.asarray(color)[None] * shade[:, None], 0, 1)
    out = render(vertices_2d, depth, faces, colors, width, height)
    result = image.astype(np.float64) / 255.0
    hit = out.mask > 0
    result[hit] = (1 - alpha) * result[hit] + alpha * out.color[hit]
    return np.clip(result * 255 + 0.5, 0, 255).astype(np.uint8)
