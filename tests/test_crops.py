import numpy as np
import pytest

from wildhands.crops import CropTransform, crop_box, crop_hand, crop_mask, make_transform


def _hand(cx=100.0, cy=80.0, spread=40.0, seed=0):
    rng = np.random.default_rng(seed)
    pts = np.c_[cx + rng.uniform(-spread, spread, 21), cy + rng.uniform(-spread / 2, spread / 2, 21)]
    pts[0] = [cx - spread, cy - spread / 2]
    pts[1] = [cx + spread, cy + spread / 2]
    return pts


def test_box_is_scaled_tightest_square_around_visible_keypoints():
    pts = _hand()
    vis = np.ones(21)
    cx, cy, size = crop_box(pts, vis, scale=2.2)
    assert (cx, cy) == pytest.approx((100.0, 80.0)) and size == pytest.approx(2.2 * 80.0)
    vis[1] = 0
    pts[1] = [1e6, 1e6]  # an invisible keypoint does not move the box
    assert crop_box(pts, vis, 1.5)[2] <= 1.5 * 80.0


def test_round_trip_with_and_without_mirroring_and_padding():
    image = np.zeros((120, 200, 3), np.uint8)
    pts = _hand(cx=10.0, cy=110.0)  # the box leaves the image: padded
    for mirror in (False, True):
        crop, t = crop_hand(image, pts, scale=2.2, out_size=320, mirror=mirror)
        assert crop.shape == (320, 320, 3)
        assert np.allclose(t.to_image(t.to_crop(pts)), pts, atol=1e-9)
        inside = t.to_crop(pts)
        assert ((inside > 0) & (inside < 320)).all()
        assert CropTransform.from_dict(t.to_dict()) == t


def test_crop_pixels_match_the_transform():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (90, 130, 3), dtype=np.uint8)
    t = make_transform(image.shape, (60.0, 40.0, 33.0), out_size=33, mirror=False)  # zoom 1: a pure shift
    crop = crop_mask(image, t)
    u, v = 5, 7
    x, y = np.round(t.to_image([u, v])).astype(int)
    assert np.array_equal(crop[v, u], image[y, x])
    tm = make_transform(image.shape, (60.0, 40.0, 33.0), out_size=33, mirror=True)
    cropm = crop_mask(image, tm)
    x, y = np.round(tm.to_image([u, v])).astype(int)
    assert np.array_equal(cropm[v, u], image[y, x])
    # A mirrored crop of the mirrored image equals the plain crop.
    flipped = image[:, ::-1]
    tf = make_transform(image.shape, (130 - 1 - 60.0, 40.0, 33.0), out_size=33, mirror=True)
    assert np.array_equal(crop_mask(flipped, tf), crop)


@pytest.mark.parametrize("bad", [np.full((21, 2), np.nan), np.zeros((20, 2)), "hand"])
def test_bad_keypoints_are_named(bad):
    with pytest.raises(ValueError, match="keypoints_2d"):
        crop_box(bad)


def test_no_visible_keypoint():
    with pytest.raises(ValueError, match="no visible"):
        crop_box(_hand(), np.zeros(21))
