"""A depth-correct triangle rasterizer on the CPU (numpy), with per-vertex colour interpolation.

Vertices come in pixels (x right, y down, pixel centres at integers) with a depth each
(larger = farther), as the weak-perspective camera gives them. All triangles are rasterized
at once: every pixel centre inside a triangle's bounding box becomes a candidate, barycentric
coordinates decide coverage, and the nearest candidate per pixel wins (z-buffer by sorting).
Closed, outward meshes may skip their back faces (``is_closed_outward``), half the work.
``render`` returns colour, depth, silhouette and face-id buffers; helpers shade meshes with a
directional light (Lambert, optional Blinn-Phong highlight).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wildhands.hand import mesh_ops

MAX_CANDIDATES = 6_000_000  # pixel candidates per chunk of triangles (memory bound)


@dataclass
class Rendering:
    color: np.ndarray     # (H, W, 3) float in [0, 1] (background where no face)
    depth: np.ndarray     # (H, W) float, inf where no face
    mask: np.ndarray      # (H, W) uint8 {0, 1}
    face_id: np.ndarray   # (H, W) int, -1 where no face


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (outward for consistently oriented, outward faces), as
    the renderer shades them (``mesh_ops.vertex_normals`` with a 1e-12 guard)."""
    return mesh_ops.vertex_normals(vertices, faces, eps=1e-12)


def is_closed_outward(vertices: np.ndarray, faces: np.ndarray) -> bool:
    """Whether a mesh is closed (every edge shared by exactly two faces, in opposite directions)
    with its faces oriented outward (positive enclosed volume): then back faces can be culled."""
    faces = np.asarray(faces, np.int64)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    if len(np.unique(edges, axis=0)) != len(edges):
        return False
    if len(np.unique(np.sort(edges, 1), axis=0)) * 2 != len(edges):
        return False
    tri = np.asarray(vertices, np.float64)[faces]
    return float(np.einsum("ij,ij->", tri[:, 0], np.cross(tri[:, 1], tri[:, 2]))) > 0


def lambert(normals: np.ndarray, albedo: np.ndarray, light_dir, ambient: float = 0.35,
            light_color=(1.0, 1.0, 1.0), specular: float = 0.0, shininess: float = 20.0,
            view_dir=(0.0, 0.0, -1.0)) -> np.ndarray:
    """Per-vertex colours: albedo * (ambient + diffuse), plus an optional Blinn-Phong highlight of
    strength ``specular`` in the light's colour.

    ``light_dir`` points from the surface to the light and ``view_dir`` from the surface to the
    camera (default: the camera of ``wildhands.hand.camera``, which looks along +z).
    """
    light = np.asarray(light_dir, np.float64)
    light = light / np.linalg.norm(light)
    light_color = np.asarray(light_color, np.float64)
    cos = normals @ light
    shaded = albedo * (ambient + (1 - ambient) * np.clip(cos, 0.0, None)[:, None] * light_color)
    if specular > 0:
        view = np.asarray(view_dir, np.float64)
        half = light + view / np.linalg.norm(view)
        half /= np.linalg.norm(half)
        highlight = np.clip(normals @ half, 0.0, None) ** shininess * (cos > 0)
        shaded = shaded + specular * highlight[:, None] * light_color
    return np.clip(shaded, 0.0, 1.0)


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


def _edge_area(tri: np.ndarray) -> np.ndarray:
    """Twice the signed pixel area of each triangle: the camera-z component of its normal (scaled),
    so negative when the face is turned towards the camera."""
    return (tri[:, 1, 0] - tri[:, 0, 0]) * (tri[:, 2, 1] - tri[:, 0, 1]) - \
           (tri[:, 2, 0] - tri[:, 0, 0]) * (tri[:, 1, 1] - tri[:, 0, 1])


def projected_face_areas(vertices_2d, faces) -> np.ndarray:
    """(F,) pixel area of each triangle's projection: positive for faces turned towards the camera
    (front faces of an outward-oriented mesh), negative for faces turned away."""
    return -0.5 * _edge_area(np.asarray(vertices_2d, np.float64)[np.asarray(faces, np.int64)])


def rasterize(vertices_2d, depth, faces, width: int, height: int, cull_backfaces: bool = False):
    """(face_id (H, W) int, barycentrics (H, W, 3), depth (H, W)) of the nearest face at each pixel centre.

    ``cull_backfaces`` skips faces turned away from the camera (about half the work); only for
    closed meshes whose faces are oriented outward, where the nearest surface always faces the camera.
    """
    vertices_2d = np.asarray(vertices_2d, np.float64)
    depth = np.asarray(depth, np.float64)
    faces = np.asarray(faces, np.int64)
    if vertices_2d.ndim != 2 or vertices_2d.shape[1] != 2 or depth.shape != (len(vertices_2d),):
        raise ValueError(f"vertices_2d (V, 2) and depth (V,) expected, got {vertices_2d.shape}, {depth.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or (len(faces) and not 0 <= faces.min() <= faces.max() < len(depth)):
        raise ValueError(f"faces: expected (F, 3) vertex ids below {len(depth)}, got shape {faces.shape}")
    if not (np.isfinite(vertices_2d).all() and np.isfinite(depth).all()):
        raise ValueError("vertices_2d and depth must be finite (got NaN or inf)")
    tri = np.concatenate([vertices_2d, depth[:, None]], 1)[faces]
    area = _edge_area(tri)
    keep = area < -1e-12 if cull_backfaces else np.abs(area) > 1e-12
    order = np.flatnonzero(keep)
    sizes = np.prod(np.ptp(tri[order, :, :2], axis=1) + 2, axis=1)
    bounds = np.searchsorted(np.cumsum(sizes), np.arange(MAX_CANDIDATES, sizes.sum(), MAX_CANDIDATES))
    pixel_bits = max(int(height * width - 1).bit_length(), 1)
    z_levels = float(2 ** (62 - pixel_bits) - 1)
    zbuf = np.full(height * width, np.inf)
    fbuf = np.full(height * width, -1, np.int64)
    bary = np.zeros((height * width, 3))
    # Barycentrics w1, w2 are affine in the pixel position: w = A x + B y + C per face.
    x0, y0, safe_area = tri[:, 0, 0], tri[:, 0, 1], np.where(keep, area, 1.0)
    a1, b1 = (tri[:, 2, 1] - y0) / safe_area, (x0 - tri[:, 2, 0]) / safe_area
    a2, b2 = (y0 - tri[:, 1, 1]) / safe_area, (tri[:, 1, 0] - x0) / safe_area
    plane = np.stack([a1, b1, -a1 * x0 - b1 * y0, a2, b2, -a2 * x0 - b2 * y0], 1)
    for chunk in np.split(order, bounds):
        f, x, y = _candidates(tri[chunk], width, height)
        f = chunk[f]
        c = plane[f]
        w1 = c[:, 0] * x + c[:, 1] * y + c[:, 2]
        w2 = c[:, 3] * x + c[:, 4] * y + c[:, 5]
        w0 = 1 - w1 - w2
        inside = np.flatnonzero((w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9))
        if not len(inside):
            continue
        f, w = f[inside], np.stack([w0[inside], w1[inside], w2[inside]], 1)
        z = np.einsum("nk,nk->n", w, tri[f, :, 2])
        pixel = y[inside] * width + x[inside]
        # Nearest candidate per pixel with one integer sort: key = (pixel, depth quantised to the low bits).
        z_low, z_span = z.min(), max(z.max() - z.min(), 1e-12)
        key = (pixel << (62 - pixel_bits)) | ((z - z_low) * (z_levels / z_span)).astype(np.int64)
        ranked = np.argsort(key)
        first = np.ones(len(ranked), bool)
        first[1:] = pixel[ranked[1:]] != pixel[ranked[:-1]]
        nearest = ranked[first]
        nearest = nearest[z[nearest] < zbuf[pixel[nearest]]]  # against earlier chunks
        p = pixel[nearest]
        zbuf[p], fbuf[p], bary[p] = z[nearest], f[nearest], w[nearest]
    return fbuf.reshape(height, width), bary.reshape(height, width, 3), zbuf.reshape(height, width)


def render(vertices_2d, depth, faces, vertex_colors, width: int, height: int, background=None,
           flat: bool = False, cull_backfaces: bool = False) -> Rendering:
    """Rasterize a mesh with per-vertex colours over ``background`` ((H, W, 3) float in [0, 1],
    default black). Colours are interpolated, or with ``flat`` the mean of each face's corners
    (the flat-shaded path). ``cull_backfaces`` as in ``rasterize``."""
    colors = np.asarray(vertex_colors, np.float64)
    if colors.shape != (len(vertices_2d), 3):
        raise ValueError(f"vertex_colors: expected shape ({len(vertices_2d)}, 3), got {colors.shape}")
    face_id, bary, zbuf = rasterize(vertices_2d, depth, faces, width, height, cull_backfaces)
    faces = np.asarray(faces, np.int64)
    if background is None:
        image = np.zeros((height, width, 3))
    else:
        image = np.array(background, np.float64)
        if image.shape != (height, width, 3):
            raise ValueError(f"background: expected shape ({height}, {width}, 3), got {image.shape}")
    hit = face_id >= 0
    corner = colors[faces[face_id[hit]]]                         # (n, 3 corners, 3 channels)
    image[hit] = corner.mean(1) if flat else np.einsum("nk,nkc->nc", bary[hit], corner)
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
