import numpy as np
import pytest

from wildhands.data.render import (is_closed_outward, lambert, overlay_mesh, projected_face_areas, rasterize, render,
                                   vertex_normals)


def _quad(x0, y0, size, depth):
    v = np.array([[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size]], float)
    return v, np.full(4, depth)


def test_nearer_surface_wins_regardless_of_order():
    a, za = _quad(2, 2, 16, 2.0)
    b, zb = _quad(10, 10, 16, 1.0)  # nearer
    verts, depth = np.vstack([a, b]), np.r_[za, zb]
    faces = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    colors = np.r_[np.tile([1.0, 0, 0], (4, 1)), np.tile([0, 1.0, 0], (4, 1))]
    for order in (faces, faces[::-1]):
        out = render(verts, depth, order, colors, 32, 32)
        assert np.allclose(out.color[14, 14], [0, 1, 0]) and np.allclose(out.color[5, 5], [1, 0, 0])
        assert out.depth[14, 14] == pytest.approx(1.0) and out.depth[5, 5] == pytest.approx(2.0)
    # Silhouette: the union of two 17x17 pixel squares overlapping on 9x9.
    assert out.mask.sum() == 2 * 17 * 17 - 9 * 9
    assert np.isinf(out.depth[0, 0]) and out.face_id[0, 0] == -1


def test_colour_interpolation_hits_vertex_colours_and_winding_does_not_matter():
    v = np.array([[2.0, 2.0], [30.0, 4.0], [5.0, 28.0]])
    z = np.ones(3)
    c = np.eye(3)
    out = render(v, z, np.array([[0, 1, 2]]), c, 32, 32)
    assert np.allclose(out.color[2, 2], c[0]) and np.allclose(out.color[4, 30], c[1]) and np.allclose(out.color[28, 5], c[2])
    flipped = render(v, z, np.array([[2, 1, 0]]), c, 32, 32)
    assert np.array_equal(out.mask, flipped.mask)
    flat = render(v, z, np.array([[0, 1, 2]]), c, 32, 32, flat=True)
    assert np.allclose(flat.color[10, 10], [1 / 3] * 3)


def test_triangles_outside_and_degenerate_are_skipped():
    v = np.array([[-50.0, -50], [-40, -50], [-45, -40], [5, 5], [5, 5], [5, 5]])
    face_id, _, _ = rasterize(v, np.ones(6), np.array([[0, 1, 2], [3, 4, 5]]), 16, 16)
    assert (face_id == -1).all()
    with pytest.raises(ValueError, match="vertices_2d"):
        rasterize(np.zeros((3, 3)), np.ones(3), np.array([[0, 1, 2]]), 8, 8)


def test_normals_point_outward_on_a_tetrahedron():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    n = vertex_normals(v, f)
    assert (np.einsum("ij,ij->i", n, v - v.mean(0)) > 0).all()


def test_overlay_changes_only_covered_pixels():
    image = np.full((32, 32, 3), 10, np.uint8)
    v = np.array([[4.0, 4.0], [20.0, 4.0], [4.0, 20.0]])
    out = overlay_mesh(image, v, np.ones(3), np.array([[0, 1, 2]]))
    assert (out[30, 30] == 10).all() and (out[6, 6] != 10).any()


def _octahedron(radius: float = 10.0):
    v = radius * np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    f = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    return v, f


def test_closed_outward_detection():
    v, f = _octahedron()
    assert is_closed_outward(v, f)
    assert not is_closed_outward(v, f[:, ::-1])   # inward
    assert not is_closed_outward(v, f[:-1])       # open


def test_backface_culling_changes_nothing_on_a_closed_mesh():
    v, f = _octahedron()
    rng = np.random.default_rng(3)
    q = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    v = v @ (q * np.sign(np.linalg.det(q))).T + [16.0, 16.0, 50.0]
    colors = rng.uniform(size=(len(v), 3))
    full = render(v[:, :2], v[:, 2], f, colors, 32, 32)
    culled = render(v[:, :2], v[:, 2], f, colors, 32, 32, cull_backfaces=True)
    assert np.array_equal(full.mask, culled.mask) and full.mask.sum() > 100
    assert np.allclose(full.depth[full.mask > 0], culled.depth[full.mask > 0])
    assert np.allclose(full.color, culled.color)


def test_bad_inputs_name_the_argument():
    v, f = _octahedron()
    with pytest.raises(ValueError, match="faces"):
        rasterize(v[:, :2], v[:, 2], f + 10, 8, 8)
    with pytest.raises(ValueError, match="finite"):
        rasterize(np.full((6, 2), np.nan), v[:, 2], f, 8, 8)
    with pytest.raises(ValueError, match="vertex_colors"):
        render(v[:, :2], v[:, 2], f, np.ones((5, 3)), 8, 8)
    with pytest.raises(ValueError, match="background"):
        render(v[:, :2], v[:, 2], f, np.ones((6, 3)), 8, 8, background=np.zeros((4, 4, 3)))


def test_lambert_diffuse_and_highlight():
    normals = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # at the camera, sideways, away
    albedo = np.full((3, 3), 0.5)
    light = (0.0, 0.0, -1.0)  # from the camera
    diffuse = lambert(normals, albedo, light, ambient=0.2)
    assert np.allclose(diffuse[:, 0], [0.5, 0.1, 0.1])  # albedo * (ambient + (1 - ambient) * max(cos, 0))
    shiny = lambert(normals, albedo, light, ambient=0.2, specular=0.3, shininess=10.0)
    assert np.allclose(shiny[0], 0.8) and np.allclose(shiny[1:], diffuse[1:])  # highlight only facing the half-vector


def test_projected_areas_are_positive_for_faces_towards_the_camera():
    v, f = _octahedron()
    areas = projected_face_areas(v[:, :2], f)
    towards = vertex_normals(v, f)[f].mean(1)[:, 2] < 0  # camera looks along +z
    assert (areas[towards] > 0).all() and (areas[~towards] < 0).all()
    assert areas[towards].sum() == pytest.approx(2 * 10.0 ** 2)  # the silhouette: a square of diagonal 20
