import cv2
import numpy as np
import pytest

from wildhands.app.drawing import draw_seed_regions
from wildhands.data.masks import BAND_LABELS, MaskCache, grabcut_hand_mask, mask_iou, seed_regions
from wildhands.hand import keypoints as kp


def drawn_hand(seed=0, size=320, zoom=1.0):
    """A skin-coloured hand-like shape (thick bones, filled palm) on a noisy background, its
    keypoints and its mask; the hand spans about a 2.2 l crop at ``size`` = 320 * ``zoom``."""
    rng = np.random.default_rng(seed)
    centre = np.array([160.0, 190.0])
    points = [centre]
    angles = np.deg2rad([-150, -112, -95, -80, -62]) + rng.normal(0, 0.05, 5)  # thumb to pinky, pointing up
    for finger, angle in enumerate(angles):
        direction = np.array([np.cos(angle), np.sin(angle)])
        base = centre + (28 if finger else 21.6) * direction
        points += [base + j * (17 if finger else 16) * direction for j in range(4)]
    points = np.array(points) * zoom
    image = rng.integers(0, 255, (size // 8, size // 8, 3)).astype(np.uint8)
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC)
    mask = np.zeros((size, size), np.uint8)
    ip = np.round(points).astype(np.int32)
    for parent, child in kp.BONES:
        cv2.line(mask, tuple(ip[parent].tolist()), tuple(ip[child].tolist()), 1, max(1, round(14 * zoom)))
    cv2.fillPoly(mask, [ip[[0, 1, 5, 9, 13, 17]]], 1)
    skin = np.array([224, 172, 140], np.uint8)
    image[mask > 0] = np.clip(skin + rng.normal(0, 6, (int(mask.sum()), 3)), 0, 255).astype(np.uint8)
    return image, points, mask


def test_seeds_hold_skeleton_palm_and_band():
    image, points, _ = drawn_hand()
    labels = seed_regions(image.shape, points)
    ip = np.round(points).astype(int)
    assert (labels[ip[:, 1], ip[:, 0]] == cv2.GC_FGD).all()  # every keypoint lies on a skeleton line
    palm = np.round(points[[0, 5, 9]].mean(axis=0)).astype(int)
    assert labels[palm[1], palm[0]] == cv2.GC_FGD
    assert labels[0, 0] == cv2.GC_BGD
    assert set(np.unique(labels)) == {cv2.GC_BGD, cv2.GC_FGD, cv2.GC_PR_BGD}
    assert (seed_regions(image.shape, points, band_label="split") == cv2.GC_PR_FGD).any()
    assert not (seed_regions(image.shape, points, band_label="probable_foreground") == cv2.GC_PR_BGD).any()
    assert draw_seed_regions(image, labels).shape == image.shape


def test_band_follows_the_hand_size():
    _, points, _ = drawn_hand()
    band = lambda labels: int((labels == cv2.GC_PR_BGD).sum())  # noqa: E731
    small = band(seed_regions((640, 640), points, band=20))
    large = band(seed_regions((640, 640), 2 * points, band=20))  # the same hand twice as large
    assert large / small == pytest.approx(4.0, rel=0.15)
    visible = np.ones(21)
    visible[list(kp.FINGER_KEYPOINTS["pinky"])] = 0  # bones to invisible keypoints are not drawn
    labels = seed_regions((320, 320), points, visible)
    x, y = np.round(points[20]).astype(int)
    assert labels[y, x] != cv2.GC_FGD


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grabcut_recovers_a_drawn_hand(seed):
    image, points, mask = drawn_hand(seed)
    assert mask_iou(grabcut_hand_mask(image, points, iterations=3), mask) > 0.7


def test_grabcut_on_a_small_image_whose_band_covers_it():
    image, points, mask = drawn_hand(3, size=64, zoom=0.2)
    result = grabcut_hand_mask(image, points, iterations=2)
    assert result.shape == mask.shape and set(np.unique(result)) <= {0, 1} and 0 < result.mean() < 1


def test_cache_computes_once(tmp_path):
    image, points, _ = drawn_hand()
    cache = MaskCache(tmp_path, iterations=2)
    first = cache.get("img-1", image, points)
    second = cache.get("img-1", image, points)
    assert cache.computed == 1 and np.array_equal(first, second)
    assert MaskCache(tmp_path, iterations=2).get("img-1", image, points).sum() == first.sum()
    assert len(list(tmp_path.glob("*.png"))) == 1 and not list(tmp_path.glob(".*"))
    visible = np.ones(21)
    visible[4] = 0
    keys = {cache.key("img-1", points), cache.key("img-2", points), cache.key("img-1", points, visible),
            cache.key("img-1", points + 0.1), MaskCache(tmp_path, band=50).key("img-1", points)}
    assert len(keys) == 5


def test_iou():
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    a[:2], b[1:3] = 1, 1
    assert mask_iou(a, b) == pytest.approx(1 / 3) and mask_iou(a * 0, b * 0) == 1.0
    with pytest.raises(ValueError, match="shapes"):
        mask_iou(a, np.zeros((4, 5)))


def test_bad_inputs_are_named():
    image, points, _ = drawn_hand()
    visible = np.zeros(21)
    visible[0] = 1
    with pytest.raises(ValueError, match="at least two"):
        grabcut_hand_mask(image, points, visible)
    with pytest.raises(ValueError, match="no skeleton pixel"):
        grabcut_hand_mask(image, points + 1000)
    with pytest.raises(ValueError, match="band_label"):
        seed_regions(image.shape, points, band_label="maybe")
    with pytest.raises(ValueError, match="keypoints_2d"):
        seed_regions(image.shape, points[:20])
    with pytest.raises(ValueError, match="image_rgb"):
        grabcut_hand_mask(image[:1, :1], points)
    assert set(BAND_LABELS) == {"probable_background", "split", "probable_foreground"}
