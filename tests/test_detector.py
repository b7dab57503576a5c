import json
from types import SimpleNamespace

import numpy as np
import pytest

from wildhands.detector import HandDetector, _detections_from_result, keypoint_errors_at_crop, swap_handedness
from wildhands.images import ImageError, read_image
from wildhands.paths import REAL_PHOTOS_DIR


def test_handedness_is_swapped_for_ordinary_photos():
    assert swap_handedness("Left") == "right" and swap_handedness("Right") == "left"
    with pytest.raises(ValueError, match="handedness"):
        swap_handedness("Both")


def test_result_conversion_to_pixels_and_order():
    landmarks = SimpleNamespace(landmark=[SimpleNamespace(x=(i + 0.5) / 100, y=0.5) for i in range(21)])
    handed = SimpleNamespace(classification=[SimpleNamespace(label="Left", score=0.9)])
    result = SimpleNamespace(multi_hand_landmarks=[landmarks], multi_handedness=[handed])
    (det,) = _detections_from_result(result, width=100, height=50)
    assert det.handedness == "right" and det.score == pytest.approx(0.9)
    assert np.allclose(det.keypoints_2d[:, 0], np.arange(21)) and np.allclose(det.keypoints_2d[:, 1], 24.5)
    assert det.box == pytest.approx((0.0, 24.5, 20.0, 24.5))


@pytest.fixture(scope="module")
def detector():
    with HandDetector(max_num_hands=2) as d:
        yield d


def test_blank_image_has_no_hands(detector):
    assert detector.detect(np.full((240, 320, 3), 127, np.uint8)) == []


def test_bad_images_get_clear_errors(detector):
    with pytest.raises(ImageError, match="too small"):
        detector.detect(np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(ImageError, match="expected an"):
        detector.detect(np.zeros((10, 10, 10, 3)))
    assert detector.detect(np.zeros((64, 64), np.uint8)) == []  # grayscale is converted
    assert detector.detect(np.zeros((64, 64, 4), np.uint8)) == []  # RGBA is converted


@pytest.mark.skipif(not (REAL_PHOTOS_DIR / "labels.json").is_file(), reason="no calibration photos here")
def test_finds_a_real_hand_with_its_side(detector):
    entry = next(e for e in json.loads((REAL_PHOTOS_DIR / "labels.json").read_text()) if e["source"] == "rhd")
    image = read_image(REAL_PHOTOS_DIR / entry["image"])
    found = detector.detect(image)
    assert found
    labels = np.asarray(entry["keypoints_2d"])
    best = min(found, key=lambda d: np.median(np.linalg.norm(d.keypoints_2d - labels[:, :2], axis=1)))
    assert best.handedness == entry["side"]
    assert np.nanmedian(keypoint_errors_at_crop(best.keypoints_2d, labels[:, :2], labels[:, 2])) < 40
