import cv2
import numpy as np
import pytest

from wildhands import keypoints as kp
from wildhands.masks import MaskCache, grabcut_hand_mask, mask_iou, seed_regions


def drawn_hand(seed=0, size=320):
    """A skin-coloured hand-like shape (thick bones, filled palm) on a noisy background, and its mask."""
    rng = np.random.default_rng(seed)
    centre = np.array([160.0, 190.0])
    points = [centre]
    angles = np.deg2rad([-150, -112, -95, -80, -62])  # thumb to pinky, fingers pointing up
    for finger, angle in enumerate(angles):
        base = centre + (28 if finger else 18) * np.array([np.cos(angle), np.sin(angle)]) * (1.0 if finger else 1.2)
        step = np.array([np.cos(angle), np.sin(angle)]) * (17 if finger else 16)
        points += [base + j * step for j in range(4)]
    points = np.array(points)
    image = rng.integers(0, 255, (size // 8, size // 8, 3)).astype(np.uint8)
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC)
    mask = np.zeros((size, size), np.uint8)
    for parent, child in kp.BONES:
        cv2.line(mask, tuple(np.round(points[parent]).astype(int)), tuple(np.round(points[child]).astype(int)), 1, 14)
    cv2.fillPoly(mask, [np.round(points[[0, 1, 5, 9, 13, 17]]).astype(np.int32)], 1)
    skin = np.array([224, 172, 140], np.uint8)
    image[mask > 0] = np.clip(skin + rng.normal(0, 6, (int(mask.sum()), 3)), 0, 255).astype(np.uint8)
    return image, points, mask


def test_seeds_hold_skeleton_and_band():
    image, points, _ = drawn_hand()
    labels = seed_regions(image.shape, points)
    for i in (0, 8, 12):  # wrist and fingertips lie on skeleton lines
        x, y = np.round(points[i]).astype(int)
        assert labels[y, x] == cv2.GC_FGD
    assert labels[0, 0] == cv2.GC_BGD
    assert (labels == cv2.GC_PR_BGD).any()
    split = seed_regions(image.shape, points, band_label="split")
    assert (split == cv2.GC_PR_FGD).any()


def test_grabcut_recovers_a_drawn_hand():
    ious = []
    for seed in range(3):
        image, points, mask = drawn_hand(seed)
        ious.append(mask_iou(grabcut_hand_mask(image, points), mask))
    assert min(ious) > 0.7, ious


def test_cache_computes_once(tmp_path):
    image, points, _ = drawn_hand()
    cache = MaskCache(tmp_path)
    first = cache.get("img-1", image, points)
    second = cache.get("img-1", image, points)
    assert cache.computed == 1 and np.array_equal(first, second)
    assert len(list(tmp_path.glob("*.png"))) == 1


def test_too_few_visible_keypoints():
    image, points, _ = drawn_hand()
    visible = np.zeros(21)
    visible[0] = 1
    with pytest.raises(ValueError, match="at least two"):
        grabcut_hand_mask(image, points, visible)
