import json

import cv2
import numpy as np
import pytest

from wildhands.data.crops import (MIN_BOX_PX, PAD_VALUE, CropTransform, crop_box, crop_hand, crop_image, crop_mask,
                                  hand_transform, make_transform)
from wildhands.data.images import ImageError
from wildhands.hand.camera import CROP_SCALE, CROP_SIZE


def _hand(cx=100.0, cy=80.0, spread=40.0, seed=0):
    """21 keypoints spanning exactly 2 spread x spread around (cx, cy)."""
    rng = np.random.default_rng(seed)
    pts = np.c_[cx + rng.uniform(-spread, spread, 21), cy + rng.uniform(-spread / 2, spread / 2, 21)]
    pts[0] = [cx - spread, cy - spread / 2]
    pts[1] = [cx + spread, cy + spread / 2]
    return pts


def _noise_image(height, width, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_box_is_scaled_tightest_square_around_visible_keypoints():
    pts = _hand()
    cx, cy, size = crop_box(pts, np.ones(21), scale=2.2)
    assert (cx, cy) == pytest.approx((100.0, 80.0)) and size == pytest.approx(2.2 * 80.0)
    visible = np.ones(21)
    visible[1] = 0
    pts[1] = [np.nan, np.inf]  # an invisible keypoint may be anything
    assert crop_box(pts, visible, 1.5)[2] < 1.5 * 80.0
    assert crop_box(np.full((21, 3), 5.0))[2] == pytest.approx(2.2 * MIN_BOX_PX)  # one pixel: l floored


def test_hand_transform_is_the_paper_crop_of_the_box():
    pts, visible = _hand(), np.ones(21)
    visible[3] = 0
    for mirror in (False, True):
        placed = hand_transform((480, 640), pts, visible, mirror=mirror)
        assert placed == make_transform((480, 640), crop_box(pts, visible, CROP_SCALE), CROP_SIZE, mirror)
        assert (placed.out_size, placed.size) == (320, pytest.approx(2.2 * crop_box(pts, visible, 1.0)[2]))
    assert hand_transform((480, 640), pts, scale=1.5, out_size=64).box == pytest.approx(crop_box(pts, None, 1.5))


def test_round_trip_with_and_without_mirroring_and_padding():
    image = np.zeros((120, 200, 3), np.uint8)
    pts = _hand(cx=10.0, cy=110.0)  # the box leaves the image: padded
    for mirror in (False, True):
        crop, t = crop_hand(image, pts, scale=2.2, out_size=320, mirror=mirror)
        assert crop.shape == (320, 320, 3)
        in_crop = t.to_crop(pts)
        assert np.allclose(t.to_image(in_crop), pts, atol=1e-9)
        assert ((in_crop > 0) & (in_crop < 319)).all()
        assert np.allclose(in_crop, pts @ t.matrix[:, :2].T + t.matrix[:, 2])
        assert CropTransform.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    mirrored = make_transform(image.shape, crop_box(pts), 320, mirror=True)
    plain = make_transform(image.shape, crop_box(pts), 320, mirror=False)
    # Mirroring (x' = W - 1 - x before cropping) reflects the crop about its centre column.
    assert np.allclose(mirrored.to_crop(pts)[:, 0] + plain.to_crop(pts)[:, 0], 319.0)
    assert np.allclose(mirrored.to_crop(pts)[:, 1], plain.to_crop(pts)[:, 1])


def test_crop_pixels_match_the_transform():
    image = _noise_image(90, 130)
    for mirror in (False, True):
        t = make_transform(image.shape, (60.0, 40.0, 33.0), out_size=33, mirror=mirror)  # zoom 1: a shift
        crop = crop_image(image, t, interpolation=cv2.INTER_NEAREST)
        for u, v in [(5, 7), (0, 0), (32, 20)]:
            x, y = np.round(t.to_image([u, v])).astype(int)
            assert np.array_equal(crop[v, u], image[y, x])
    # A mirrored crop of the mirrored image is the plain crop.
    plain = crop_image(image, make_transform(image.shape, (60.0, 40.0, 33.0), 33))
    flipped = crop_image(image[:, ::-1], make_transform(image.shape, (130 - 1 - 60.0, 40.0, 33.0), 33, mirror=True))
    assert np.array_equal(flipped, plain)


def test_region_crop_equals_warping_the_whole_image():
    image = _noise_image(200, 300)
    for box, mirror in [((150.3, 90.7, 80.0), False), ((20.0, 190.0, 120.0), True), ((290.0, 5.0, 200.0), False)]:
        t = make_transform(image.shape, box, 320, mirror)  # zoom >= 1: a single warp
        whole = cv2.warpAffine(image, t.matrix, (320, 320), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=PAD_VALUE)
        assert np.abs(crop_image(image, t).astype(int) - whole).max() <= 1


def test_box_outside_the_image_is_padding():
    image = np.full((50, 60, 3), 200, np.uint8)
    t = make_transform(image.shape, (500.0, 500.0, 40.0), 64)
    assert (crop_image(image, t) == PAD_VALUE).all()
    half = crop_image(image, make_transform(image.shape, (0.0, 25.0, 40.0), 64))
    assert (half[:, :28] == PAD_VALUE).all() and (half[:, 36:] == 200).all()


def test_shrinking_crop_averages_instead_of_aliasing():
    checker = np.indices((800, 800)).sum(axis=0) % 2 * 255  # 1-pixel checkerboard
    image = np.repeat(checker[..., None], 3, axis=2).astype(np.uint8)
    crop = crop_image(image, make_transform(image.shape, (399.5, 399.5, 800.0), 80))
    assert np.abs(crop.astype(float) - 127.5).max() < 3


def test_huge_image_is_cropped_from_the_box_region():
    image = _noise_image(40, 40000)  # wider than OpenCV's 32767-pixel warp limit
    crop = crop_image(image, make_transform(image.shape, (20000.0, 20.0, 40.0), 320))
    assert crop.shape == (320, 320, 3) and crop[100:200, 100:200].std() > 10
    mask = np.zeros((40, 40000), bool)
    mask[:, 30000:] = True
    assert crop_mask(mask, make_transform(mask.shape, (30000.0, 20.0, 40000.0), 64)).dtype == bool


def test_masks_crop_with_nearest_labels():
    mask = np.zeros((100, 100), np.uint8)
    mask[30:70, 40:60] = 3
    t = make_transform(mask.shape, (50.0, 50.0, 60.0), 97, mirror=True)
    out = crop_mask(mask, t)
    assert set(np.unique(out)) == {0, 3} and out.dtype == np.uint8
    assert set(np.unique(crop_mask(mask > 0, t))) == {False, True}


def test_image_conversions():
    keypoints = _hand(cx=40.0, cy=40.0, spread=10.0)
    crop, _ = crop_hand(np.full((80, 80), 90, np.uint8), keypoints, out_size=32)  # grayscale: 3 channels
    assert crop.shape == (32, 32, 3) and crop[16, 16].tolist() == [90, 90, 90]
    rgba = np.zeros((80, 80, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    crop, _ = crop_hand(rgba, keypoints, out_size=32)  # RGBA: alpha dropped
    assert crop[16, 16].tolist() == [10, 20, 30]


@pytest.mark.parametrize("bad", [np.full((21, 2), np.nan), np.zeros((20, 2)), "hand", np.zeros((2, 21, 2))])
def test_bad_keypoints_are_named(bad):
    with pytest.raises(ValueError, match="keypoints_2d"):
        crop_box(bad)


def test_bad_arguments_are_named():
    pts = _hand()
    with pytest.raises(ValueError, match="no visible"):
        crop_box(pts, np.zeros(21))
    with pytest.raises(ValueError, match="visible"):
        crop_box(pts, np.ones(20))
    with pytest.raises(ValueError, match="scale"):
        crop_box(pts, scale=0.0)
    with pytest.raises(ValueError, match="box"):
        make_transform((10, 10), (1.0, 2.0, -3.0))
    with pytest.raises(ValueError, match="missing"):
        CropTransform.from_dict({"center_x": 1.0})
    t = make_transform((100, 200), (50.0, 50.0, 40.0), 32)
    with pytest.raises(ValueError, match="image"):
        crop_image(np.zeros((100, 100, 3), np.uint8), t)
    with pytest.raises(ValueError, match="dtype"):
        crop_image(np.zeros((100, 200), np.int64), t)
    with pytest.raises(ValueError, match="mask"):
        crop_mask(np.zeros((100, 200, 3), np.uint8), t)
    with pytest.raises(ImageError, match="too small"):
        crop_hand(np.zeros((1, 1, 3), np.uint8), pts)
    with pytest.raises(ImageError, match="expected"):
        crop_hand(np.zeros((0, 5, 3), np.uint8)[None], pts)
