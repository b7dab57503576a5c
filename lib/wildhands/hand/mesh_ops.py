"""Triangle-mesh operations for building a surface from an implicit function.

Owns: polygonising a signed field (marching cubes on a regular grid), checks that a mesh is
closed and consistently oriented, quadric-error decimation to a target vertex count (keeping
the mesh manifold and its faces from flipping), valence-improving edge flips, and tangential
relaxation that evens out the triangles while projecting every vertex back onto the surface.
Everything is deterministic: ties are broken by vertex ids and no random numbers are drawn.
"""
from __future__ import annotations

import heapq
from typing import Callable

import numpy as np

Field = Callable[[np.ndarray], np.ndarray]   # (N, 3) points -> (N,) signed values, negative inside


# ----------------------------------------------------------------------------- checks

def edges_of(faces: np.ndarray) -> np.ndarray:
    """(E, 2) unique undirected edges, each sorted."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return np.unique(np.sort(directed, axis=1), axis=0)


def check_closed(faces: np.ndarray) -> None:
    """Raise ValueError unless every edge is shared by exactly two faces that traverse it in
    opposite directions (a closed, consistently oriented 2-manifold edge structure)."""
    faces = np.asarray(faces, np.int64)
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    base = int(faces.max()) + 1
    keys = directed[:, 0] * base + directed[:, 1]
    if len(np.unique(keys)) != len(keys):
        raise ValueError("mesh: an edge is traversed twice in the same direction "
                         "(inconsistent orientation or a non-manifold edge)")
    if not np.isin(directed[:, 1] * base + directed[:, 0], keys).all():
        raise ValueError("mesh: open boundary (an edge without its opposite)")


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Enclosed volume (positive when the faces wind counter-clockwise seen from outside)."""
    tri = np.asarray(vertices, np.float64)[np.asarray(faces, np.int64)]
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)


def min_angles_deg(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Smallest interior angle of every face, in degrees."""
    tri = vertices[faces]
    angles = []
    for k in range(3):
        a = tri[:, (k + 1) % 3] - tri[:, k]
        b = tri[:, (k + 2) % 3] - tri[:, k]
        cos = np.einsum("ij,ij->i", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30)
        angles.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return np.min(angles, axis=0)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray, eps: float = 1e-30) -> np.ndarray:
    """Area-weighted unit vertex normals (outward for consistently oriented, outward faces);
    ``eps`` is added to each length before dividing."""
    tri = vertices[faces]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    return normals / (np.linalg.norm(normals, axis=1, keepdims=True) + eps)


def vertex_neighbours(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) arrays listing every directed edge once per direction (for scatter-adds)."""
    edges = edges_of(faces)
    return np.concatenate([edges[:, 0], edges[:, 1]]), np.concatenate([edges[:, 1], edges[:, 0]])


def compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop vertices that no face uses and renumber the faces."""
    used = np.unique(faces)
    remap = np.full(len(vertices), -1, np.int64)
    remap[used] = np.arange(len(used))
    return vertices[used], remap[faces]


# ----------------------------------------------------------------------------- polygonisation

def polygonise(field: Field, low, high, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Zero level set of ``field`` inside the box [low, high] by marching cubes at spacing
    ``step``: (vertices (V, 3), faces (F, 3)) with outward normals (positive volume).

    The field is sampled once on the grid; values are rounded to 1e-10 so that the last bits of
    floating-point arithmetic cannot change the topology between machines.
    """
    from skimage.measure import marching_cubes

    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    axes = [low[i] + step * np.arange(int(np.ceil((high[i] - low[i]) / step)) + 1) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    values = np.round(field(grid) / 1e-10) * 1e-10
    values = values.reshape(len(axes[0]), len(axes[1]), len(axes[2]))
    if (values[[0, -1]] <= 0).any() or (values[:, [0, -1]] <= 0).any() or (values[:, :, [0, -1]] <= 0).any():
        raise ValueError("polygonise: the surface reaches the box boundary; enlarge the box")
    verts, faces, _, _ = marching_cubes(values, 0.0, spacing=(step, step, step), allow_degenerate=False)
    verts = verts.astype(np.float64) + low
    faces = faces.astype(np.int64)
    verts, faces = _weld(verts, faces, step * 1e-6)
    if signed_volume(verts, faces) < 0:
        faces = faces[:, ::-1].copy()
    return verts, faces


def _weld(verts: np.ndarray, faces: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    keys = np.round(verts / tol).astype(np.int64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    faces = inverse.reshape(-1)[faces]
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    return compact(verts[first], faces[keep])


def project_to_surface(points: np.ndarray, field: Field, iterations: int = 4, eps: float = 1e-5) -> np.ndarray:
    """Move points onto the zero level set along the field's gradient (Newton steps)."""
    p = points.copy()
    offsets = np.eye(3) * eps
    for _ in range(iterations):
        value = field(p)
        grad = np.stack([(field(p + o) - field(p - o)) / (2 * eps) for o in offsets], 1)
        p = p - (value / np.maximum((grad * grad).sum(1), 1e-12))[:, None] * grad
    return p


# ----------------------------------------------------------------------------- decimation

def _plane_quadrics(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 10) upper triangles of the 4x4 quadrics summing each vertex's face planes, area-weighted."""
    tri = verts[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = np.linalg.norm(normal, axis=1)
    normal = normal / np.maximum(area, 1e-30)[:, None]
    plane = np.concatenate([normal, -np.einsum("ij,ij->i", normal, tri[:, 0])[:, None]], 1)
    rows, cols = np.triu_indices(4)
    face_q = plane[:, rows] * plane[:, cols] * (area / 2)[:, None]
    q = np.zeros((len(verts), 10))
    for k in range(3):
        np.add.at(q, faces[:, k], face_q)
    return q


def _collapse(q: list, pa: list, pb: list, length_weight: float) -> tuple[float, list]:
    """Cost and position of collapsing the edge (pa, pb) whose summed quadric is ``q`` (10 floats):
    the quadric's minimiser, lightly pulled towards the midpoint so that it is always defined."""
    a11, a12, a13, a14, a22, a23, a24, a33, a34, a44 = q
    reg = 1e-3 * (a11 + a22 + a33) + 1e-30
    m = [(pa[i] + pb[i]) * 0.5 for i in range(3)]
    b11, b22, b33 = a11 + reg, a22 + reg, a33 + reg
    r1, r2, r3 = reg * m[0] - a14, reg * m[1] - a24, reg * m[2] - a34
    c11 = b22 * b33 - a23 * a23
    c12 = a13 * a23 - a12 * b33
    c13 = a12 * a23 - a13 * b22
    det = b11 * c11 + a12 * c12 + a13 * c13
    c22 = b11 * b33 - a13 * a13
    c23 = a12 * a13 - b11 * a23
    c33 = b11 * b22 - a12 * a12
    x = (c11 * r1 + c12 * r2 + c13 * r3) / det
    y = (c12 * r1 + c22 * r2 + c23 * r3) / det
    z = (c13 * r1 + c23 * r2 + c33 * r3) / det
    err = (a11 * x * x + a22 * y * y + a33 * z * z + 2 * (a12 * x * y + a13 * x * z + a23 * y * z)
           + 2 * (a14 * x + a24 * y + a34 * z) + a44)
    length2 = (pa[0] - pb[0]) ** 2 + (pa[1] - pb[1]) ** 2 + (pa[2] - pb[2]) ** 2
    return max(err, 0.0) + length_weight * length2, [x, y, z]


def _normal(p: list, q: list, r: list) -> tuple:
    ux, uy, uz = q[0] - p[0], q[1] - p[1], q[2] - p[2]
    vx, vy, vz = r[0] - p[0], r[1] - p[1], r[2] - p[2]
    return uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx


def _quality(p: list, q: list, r: list) -> float:
    """Twice the area over the longest squared edge: 0.87 for equilateral, 0 for degenerate."""
    n = _normal(p, q, r)
    longest = max(sum((p[i] - q[i]) ** 2 for i in range(3)), sum((q[i] - r[i]) ** 2 for i in range(3)),
                  sum((r[i] - p[i]) ** 2 for i in range(3)))
    return (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]) ** 0.5 / max(longest, 1e-300)


def decimate(verts: np.ndarray, faces: np.ndarray, target_vertices: int, length_weight: float = 0.0,
             sizing: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Collapse edges in order of quadric error (Garland & Heckbert) until ``target_vertices`` remain.

    ``length_weight`` adds weight * (mean face area) * (length / size)^2 to every edge's cost, which
    keeps triangles near the relative sizes given per vertex by ``sizing`` (default: uniform). A
    collapse is refused when it would break the manifold (the link condition), turn a face by more
    than 60 degrees, or leave a face much thinner than before.
    Refused edges are retried when their neighbourhood changes. Plain Python on small vectors: a
    collapse touches about a dozen faces, too few for numpy to pay off.
    """
    state = _Decimation(verts, faces, length_weight, sizing)
    while state.count > target_vertices and state.heap:
        _, a, b, va, vb = heapq.heappop(state.heap)
        if not (state.alive[a] and state.alive[b]) or state.version[a] != va or state.version[b] != vb:
            continue
        shared = state.vertex_faces[a] & state.vertex_faces[b]
        if not state.link_condition(a, b, shared):
            state.refuse(a, b)
            continue
        q = [state.quadrics[a][i] + state.quadrics[b][i] for i in range(10)]
        _, x = _collapse(q, state.pos[a], state.pos[b], state.weight)
        if not state.faces_stay_sound(a, b, shared, x):
            state.refuse(a, b)
            continue
        state.collapse(a, b, shared, x, q)
        state.requeue_around(a, b)
    return state.result()


class _Decimation:
    """The mutable mesh of ``decimate``: positions, quadrics, faces per vertex, the queue of edge
    collapses (cost, lo, hi, their versions when queued) and the edges refused so far."""

    def __init__(self, verts: np.ndarray, faces: np.ndarray, length_weight: float, sizing: np.ndarray | None):
        faces_np = np.asarray(faces, np.int64)
        self.quadrics = _plane_quadrics(np.asarray(verts, np.float64), faces_np).tolist()
        self.weight = length_weight * float(face_areas(np.asarray(verts, np.float64), faces_np).mean())
        size = np.ones(len(verts)) if sizing is None else np.asarray(sizing, np.float64) / np.mean(sizing)
        self.size = size.tolist()
        self.pos = np.asarray(verts, np.float64).tolist()
        self.tris = faces_np.tolist()
        self.vertex_faces: list[set] = [set() for _ in range(len(self.pos))]
        for f, tri in enumerate(self.tris):
            for v in tri:
                self.vertex_faces[v].add(f)
        self.alive_face = [True] * len(self.tris)
        self.alive = [True] * len(self.pos)
        self.version = [0] * len(self.pos)
        self.count = len(self.pos)
        self.refused: dict = {}
        self.heap = [(self._cost(a, b), a, b, 0, 0) for a, b in edges_of(faces_np).tolist()]
        heapq.heapify(self.heap)

    def _cost(self, a: int, b: int) -> float:
        qa, qb = self.quadrics[a], self.quadrics[b]
        return _collapse([qa[i] + qb[i] for i in range(10)], self.pos[a], self.pos[b],
                         self.weight / min(self.size[a], self.size[b]) ** 2)[0]

    def neighbours(self, v: int) -> set:
        out = {w for f in self.vertex_faces[v] for w in self.tris[f]}
        out.discard(v)
        return out

    def push(self, a: int, others) -> None:
        for b in sorted(others):
            cost = self._cost(a, b)
            lo, hi = (a, b) if a < b else (b, a)
            heapq.heappush(self.heap, (cost, lo, hi, self.version[lo], self.version[hi]))

    def refuse(self, a: int, b: int) -> None:
        self.refused.setdefault(a, set()).add(b)
        self.refused.setdefault(b, set()).add(a)

    def link_condition(self, a: int, b: int, shared: set) -> bool:
        """Whether collapsing (a, b) keeps the mesh manifold: two shared faces, and the two
        vertices opposite the edge are the only neighbours a and b share."""
        opposite = {w for f in shared for w in self.tris[f] if w != a and w != b}
        return len(shared) == 2 and len(opposite) == 2 and self.neighbours(a) & self.neighbours(b) == opposite

    def faces_stay_sound(self, a: int, b: int, shared: set, x: list) -> bool:
        """Whether every face that survives the collapse to ``x`` turns by at most 60 degrees and
        stays about as well shaped."""
        pos = self.pos
        for f in (self.vertex_faces[a] | self.vertex_faces[b]) - shared:
            old = [pos[v] for v in self.tris[f]]
            new = [x if v == a or v == b else pos[v] for v in self.tris[f]]
            n0, n1 = _normal(*old), _normal(*new)
            dot = n0[0] * n1[0] + n0[1] * n1[1] + n0[2] * n1[2]
            if dot <= 0.5 * (sum(c * c for c in n0) * sum(c * c for c in n1)) ** 0.5 or \
                    _quality(*new) < min(0.15, 0.5 * _quality(*old)):
                return False
        return True

    def collapse(self, a: int, b: int, shared: set, x: list, q: list) -> None:
        """Merge b into a, placed at ``x`` with the summed quadric ``q``; the shared faces go."""
        tris, vertex_faces = self.tris, self.vertex_faces
        for f in vertex_faces[b] - shared:
            tris[f] = [a if v == b else v for v in tris[f]]
        vertex_faces[a] = (vertex_faces[a] | vertex_faces[b]) - shared
        for f in shared:
            self.alive_face[f] = False
            for v in tris[f]:
                if v != a and v != b:
                    vertex_faces[v].discard(f)
        vertex_faces[b] = set()
        self.alive[b] = False
        self.pos[a] = x
        self.quadrics[a] = q
        self.size[a] = min(self.size[a], self.size[b])
        self.version[a] += 1
        self.count -= 1

    def requeue_around(self, a: int, b: int) -> None:
        """After b merged into a: the edges at a at their new cost (validity is checked when
        popped), and the edges refused nearby, which may have become collapsible."""
        ring = self.neighbours(a)
        self.push(a, ring)
        for v in sorted(ring):
            retry = [w for w in self.refused.pop(v, ()) if self.alive[w] and w != a]
            if retry:
                self.push(v, retry)
        self.refused.pop(a, None)
        self.refused.pop(b, None)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        kept = np.array([t for t, live in zip(self.tris, self.alive_face) if live], np.int64)
        return compact(np.array(self.pos), kept)


# ----------------------------------------------------------------------------- improvement

def flip_edges(verts: np.ndarray, faces: np.ndarray, passes: int = 4, max_dihedral_deg: float = 20.0) -> np.ndarray:
    """Flip edges that bring the valences of their four vertices closer to 6 (interior optimum)
    without folding the surface (the two new faces stay within ``max_dihedral_deg`` of the old)."""
    faces = np.asarray(faces, np.int64).copy()
    cos_limit = np.cos(np.radians(max_dihedral_deg))
    for _ in range(passes):
        valence = np.bincount(edges_of(faces).ravel(), minlength=len(verts))
        edge_faces: dict = {}
        for f, (i, j, k) in enumerate(faces.tolist()):
            for a, b in ((i, j), (j, k), (k, i)):
                edge_faces.setdefault((min(a, b), max(a, b)), []).append(f)
        existing = set(edge_faces)
        touched = np.zeros(len(faces), bool)
        flipped = 0
        for (a, b), pair in sorted(edge_faces.items()):
            if len(pair) != 2 or touched[pair].any():
                continue
            f, g = pair
            c = int(next(v for v in faces[f] if v != a and v != b))
            d = int(next(v for v in faces[g] if v != a and v != b))
            if (min(c, d), max(c, d)) in existing or valence[a] <= 3 or valence[b] <= 3:
                continue
            before = sum(abs(int(valence[v]) - 6) for v in (a, b, c, d))
            after = (abs(int(valence[a]) - 7) + abs(int(valence[b]) - 7)
                     + abs(int(valence[c]) - 5) + abs(int(valence[d]) - 5))
            if after >= before:
                continue
            # Keep the orientation: face f is (a, b, c) in some rotation.
            row = faces[f].tolist()
            if row[(row.index(a) + 1) % 3] != b:
                a, b = b, a
            new_f, new_g = [a, d, c], [b, c, d]
            old_n = np.cross(verts[b] - verts[a], verts[c] - verts[a]) + \
                np.cross(verts[a] - verts[b], verts[d] - verts[b])
            n1 = np.cross(verts[d] - verts[a], verts[c] - verts[a])
            n2 = np.cross(verts[c] - verts[b], verts[d] - verts[b])
            unit = lambda v: v / (np.linalg.norm(v) + 1e-30)  # noqa: E731
            if min(unit(n1) @ unit(old_n), unit(n2) @ unit(old_n), unit(n1) @ unit(n2)) < cos_limit:
                continue
            if min_angles_deg(verts, np.array([new_f, new_g])).min() < 12:
                continue
            faces[f], faces[g] = new_f, new_g
            touched[[f, g]] = True
            existing.discard((min(a, b), max(a, b)))
            existing.add((min(c, d), max(c, d)))
            valence[[a, b]] -= 1
            valence[[c, d]] += 1
            flipped += 1
        if not flipped:
            break
    return faces


def relax(verts: np.ndarray, faces: np.ndarray, field: Field, iterations: int = 10, rate: float = 0.5,
          fixed=None, sizing: np.ndarray | None = None) -> np.ndarray:
    """Tangential smoothing followed, each step, by projection onto the zero level set of ``field``:
    evens out triangle shapes while keeping the surface where the field puts it. Each vertex moves
    towards the average of its neighbours weighted by their ``sizing`` (relative edge length wanted
    there; default uniform), which keeps finer regions finer. ``fixed`` vertex ids do not move."""
    i, j = vertex_neighbours(faces)
    weight = np.ones(len(verts)) if sizing is None else 1.0 / np.asarray(sizing, np.float64) ** 2
    total = np.bincount(i, weights=weight[j], minlength=len(verts))
    v = verts.copy()
    for _ in range(iterations):
        target = np.stack([np.bincount(i, weights=weight[j] * v[j, c], minlength=len(v)) for c in range(3)], 1)
        step = target / total[:, None] - v
        normal = vertex_normals(v, faces)
        step -= np.einsum("ij,ij->i", step, normal)[:, None] * normal
        moved = project_to_surface(v + rate * step, field, iterations=3)
        if fixed is not None:
            moved[fixed] = v[fixed]
        v = moved
    return v
