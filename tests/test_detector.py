import json
from types import SimpleNamespace

import numpy as np
import pytest

from wildhands.config import MissingSetting, load_profile
from wildhands.data.crops import crop_box
from wildhands.data.detection import Detection, swap_handedness, tight_box
from wildhands.data.detector import (HandDetector, KeypointSigmaRule, combine_passes, detections_from_result,
                                     detector_from_config, fit_sigma_rule, keypoint_errors_at_crop, match_detection,
                                     merge_detections, pass_spread, same_hand, sigma_rule_from_file)
from wildhands.data.images import ImageError, read_image


def _fake_result(label="Left", score=0.9, offset=0.0):
    landmarks = SimpleNamespace(landmark=[SimpleNamespace(x=(i + 0.5 + offset) / 100, y=0.5) for i in range(21)])
    handed = SimpleNamespace(classification=[SimpleNamespace(label=label, score=score)])
    return landmarks, handed


def _detection(centre, size=40.0, score=0.9, side="right"):
    angles = np.linspace(0, 2 * np.pi, 21, endpoint=False)
    points = np.asarray(centre) + size / 2 * np.c_[np.cos(angles), np.sin(angles)]
    return Detection(points, side, score, tight_box(points))


def test_handedness_is_swapped_for_ordinary_photos():
    assert swap_handedness("Left") == "right" and swap_handedness("Right") == "left"
    with pytest.raises(ValueError, match="handedness"):
        swap_handedness("Both")


def test_result_conversion_to_pixels_order_and_side():
    hands = [_fake_result("Left", 0.9), _fake_result("Right", 0.7, offset=50)]
    result = SimpleNamespace(multi_hand_landmarks=[h[0] for h in hands], multi_handedness=[h[1] for h in hands])
    first, second = detections_from_result(result, width=100, height=50)
    assert first.handedness == "right" and second.handedness == "left" and first.score == pytest.approx(0.9)
    assert np.allclose(first.keypoints_2d[:, 0], np.arange(21)) and np.allclose(first.keypoints_2d[:, 1], 24.5)
    assert first.box == pytest.approx((0.0, 24.5, 20.0, 24.5))
    assert json.loads(json.dumps(first.to_dict()))["handedness"] == "right"
    empty = SimpleNamespace(multi_hand_landmarks=None, multi_handedness=None)
    assert detections_from_result(empty, 100, 50) == []


def test_duplicates_are_merged_by_score():
    a, a_again, b = _detection((50, 50), score=0.8), _detection((58, 45), score=0.95), _detection((120, 50))
    assert same_hand(a.keypoints_2d, a_again.keypoints_2d) and not same_hand(a.keypoints_2d, b.keypoints_2d)
    merged = merge_detections([a, b, a_again], limit=4)
    assert merged == [a_again, b]
    assert merge_detections([a, b, a_again], limit=1) == [a_again]


def test_matching_a_labelled_hand():
    label = _detection((50, 50)).keypoints_2d
    near, far = _detection((52, 50)), _detection((150, 50))
    assert match_detection([far, near], label) is near
    assert match_detection([far], label) is None and match_detection([], label) is None
    errors = keypoint_errors_at_crop(label + [4.0, 0.0], label)
    edge = np.ptp(label, axis=0).max()
    assert np.allclose(errors, 4.0 * 320 / (2.2 * edge))  # px at the 320 crop of 2.2 l


def test_settings_from_a_profile(monkeypatch):
    import mediapipe as mp

    made = {}
    monkeypatch.setattr(mp.solutions.hands, "Hands", lambda **kwargs: made.update(kwargs) or SimpleNamespace())
    config = load_profile("quick", {"detector.max_num_hands": 2, "detector.second_pass": False, "detector.body": False})
    detector = detector_from_config(config)
    assert made["max_num_hands"] == 2 and made["static_image_mode"] is True and detector.second_pass is False
    assert detector.tiles is True and made["min_detection_confidence"] == pytest.approx(0.3)
    del config["detector"]["tiles"]
    with pytest.raises(MissingSetting, match=r"\[detector\] tiles: missing"):
        detector_from_config(config)
    with pytest.raises(ValueError, match="max_num_hands"):
        HandDetector(max_num_hands=0)


@pytest.fixture(scope="module")
def detector():
    with HandDetector(max_num_hands=2) as d:
        yield d


def test_blank_image_has_no_hands(detector):
    assert detector.detect(np.full((240, 320, 3), 127, np.uint8)) == []


def test_an_empty_scene_runs_every_tile_level_and_has_no_hands(detector):
    # 640 px: tiles of 1/2 and 1/4 (160 px), the finest through the palm detector alone (palm proposals)
    assert detector.proposals and detector.detect(np.full((480, 640, 3), 127, np.uint8)) == []


def test_bad_images_get_clear_errors(detector):
    with pytest.raises(ImageError, match="too small"):
        detector.detect(np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(ImageError, match="too small"):
        detector.detect(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(ImageError, match="expected an"):
        detector.detect(np.zeros((10, 10, 10, 3)))
    assert detector.detect(np.zeros((64, 64), np.uint8)) == []  # grayscale is converted
    assert detector.detect(np.zeros((64, 64, 4), np.uint8)) == []  # RGBA is converted


def test_closed_detector_refuses():
    closed = HandDetector()
    closed.close()
    closed.close()  # twice is fine
    with pytest.raises(RuntimeError, match="close"):
        closed.detect(np.zeros((64, 64, 3), np.uint8))


def test_finds_a_real_hand_with_its_side(detector, labelled_photos):
    folder, entries = labelled_photos
    entry = next(e for e in entries if e["side"])
    image = read_image(folder / entry["image"])
    labels = np.asarray(entry["keypoints_2d"])
    found = detector.detect(image)
    assert found and all(d.keypoints_2d.shape == (21, 2) and d.handedness in ("left", "right") for d in found)
    best = match_detection(found, labels[:, :2], labels[:, 2])
    assert best is not None and best.handedness == entry["side"]
    height, width = image.shape[:2]
    assert ((best.keypoints_2d >= -0.5) & (best.keypoints_2d <= [width - 0.5, height - 0.5])).all()
    assert np.nanmedian(keypoint_errors_at_crop(best.keypoints_2d, labels[:, :2], labels[:, 2])) < 40


def test_parallel_crop_passes_give_what_sequential_ones_give(detector, labelled_photos):
    folder, entries = labelled_photos
    images = [read_image(folder / e["image"]) for e in entries[:3]]
    with HandDetector(max_num_hands=2, parallel_passes=False) as sequential:
        for image in images:
            together, alone = detector.detect(image), sequential.detect(image)
            assert together and [d.passes.keys() for d in together] == [d.passes.keys() for d in alone]
            for a, b in zip(together, alone):
                for key in ("keypoints_2d", "sigma_px", "world_landmarks"):
                    x, y = getattr(a, key), getattr(b, key)
                    assert (x is None and y is None) or np.allclose(x, y), key


# ----------------------------------------------------------------------------- passes and their spread

RULE = KeypointSigmaRule(sigma_floor_px=4.0, gain=3.0, sigma_max_px=20.0)


def test_pass_spread_is_the_per_axis_sample_deviation():
    a = _detection((100, 100), size=60).keypoints_2d
    b = a.copy()
    b[8] += [6.0, 0.0]                       # one keypoint 6 px apart in x between two passes
    spread = pass_spread([a, b])
    assert np.allclose(np.delete(spread, 8), 0) and spread[8] == pytest.approx(np.sqrt(18 / 2))
    with pytest.raises(ValueError, match="at least 2"):
        pass_spread([a])


def test_handmade_disagreement_raises_only_that_keypoints_sigma():
    first = _detection((100, 100), size=60)
    crop, flipped = first.keypoints_2d.copy(), first.keypoints_2d.copy()
    crop[12] += [8.0, -4.0]
    flipped[12] += [-8.0, 4.0]
    flipped[4] += [0.5, 0.0]
    views = {"crop": first.moved(crop), "flipped": first.moved(flipped)}
    combined = combine_passes(first, views, RULE)
    assert list(combined.passes) == ["first", "crop", "flipped"]
    assert np.allclose(combined.keypoints_2d, np.mean([first.keypoints_2d, crop, flipped], axis=0))
    to_crop = 320 / crop_box(combined.keypoints_2d, None, 2.2)[2]
    sigma_crop = combined.sigma_px * to_crop
    agreeing = np.delete(np.arange(21), [4, 12])
    assert np.allclose(sigma_crop[agreeing], RULE.sigma_floor_px)           # agreement: the floor
    assert RULE.sigma_floor_px < sigma_crop[4] < sigma_crop[12] <= RULE.sigma_max_px
    assert np.argsort(sigma_crop)[-1] == 12                                  # ranks follow the disagreement
    # One pass only: no sigma (the global noise model applies), the keypoints kept.
    alone = combine_passes(first, {}, RULE)
    assert alone.sigma_px is None and np.allclose(alone.keypoints_2d, first.keypoints_2d)


def test_world_landmarks_and_depth_are_kept_and_mirror_with_a_flipped_view():
    world = SimpleNamespace(landmark=[SimpleNamespace(x=0.01 * i, y=-0.02, z=0.003 * i) for i in range(21)])
    landmarks = SimpleNamespace(landmark=[SimpleNamespace(x=(i + 0.5) / 100, y=0.5, z=-0.001 * i) for i in range(21)])
    handed = SimpleNamespace(classification=[SimpleNamespace(label="Left", score=0.9)])
    result = SimpleNamespace(multi_hand_landmarks=[landmarks], multi_handedness=[handed],
                             multi_hand_world_landmarks=[world])
    (det,) = detections_from_result(result, width=100, height=50)
    assert det.world_landmarks.shape == (21, 3) and det.world_landmarks[3, 0] == pytest.approx(0.03)
    assert np.allclose(det.depth, -0.1 * np.arange(21))      # z has x's scale: pixels of the width, wrist 0
    assert det.found_by == "hand" and list(det.passes) == ["first"]
    # Seen on a left-right flipped view, the hand's world landmarks flip back with its keypoints.
    back = det.mapped(lambda p: np.c_[99 - p[:, 0], p[:, 1]], 1.0, mirrored=True)
    assert np.allclose(back.world_landmarks[:, 0], -det.world_landmarks[:, 0])
    assert np.allclose(back.world_landmarks[:, 1:], det.world_landmarks[:, 1:])
    assert np.allclose(back.keypoints_2d[:, 0], 99 - det.keypoints_2d[:, 0])
    record = json.loads(json.dumps(det.to_dict()))
    assert np.shape(record["world_landmarks_m"]) == (21, 3) and record["found_by"] == "hand"
    # A result without world landmarks (older MediaPipe) still converts.
    plain = SimpleNamespace(multi_hand_landmarks=[landmarks], multi_handedness=[handed])
    assert detections_from_result(plain, 100, 50)[0].world_landmarks is None


def test_fitted_rule_recovers_the_rule_that_made_the_errors():
    rng = np.random.default_rng(0)
    spread = rng.gamma(1.5, 1.5, 4000)
    truth = KeypointSigmaRule(sigma_floor_px=5.0, gain=2.0, sigma_max_px=50.0)
    sigma = truth(spread)
    errors = np.linalg.norm(sigma[:, None] * rng.standard_normal((4000, 2)), axis=1)
    fitted = fit_sigma_rule(spread, errors)
    assert fitted.sigma_floor_px == pytest.approx(5.0, abs=0.5) and fitted.gain == pytest.approx(2.0, abs=0.3)


def test_sigma_rule_file(tmp_path):
    rule = sigma_rule_from_file("params/detector_sigma.json")
    assert rule.sigma_floor_px > 0 and rule.sigma_max_px >= rule.sigma_floor_px
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="sigma_rule"):
        sigma_rule_from_file(bad)
    with pytest.raises(ValueError, match="sigma rule"):
        KeypointSigmaRule(sigma_floor_px=0.0, gain=1.0, sigma_max_px=10.0)


def test_tile_origins_cover_the_side_with_half_tile_overlaps():
    from wildhands.data.detector import tile_origins

    # the half-side tiles of a 1024 x 768 photo: the 3 x 3 grid of before
    assert tile_origins(1024, 512) == [0, 256, 512] and tile_origins(768, 512) == [0, 128, 256]
    assert tile_origins(100, 512) == [0] and tile_origins(512, 512) == [0]
    for length, size in ((1024, 256), (768, 170), (1000, 333)):
        starts = tile_origins(length, size)
        assert starts[0] == 0 and starts[-1] == length - size
        assert max(np.diff(starts)) <= size / 2 + 1        # neighbours overlap by half a tile at least


def test_small_hands_get_a_view_at_the_photos_resolution():
    from wildhands.data.detector import CONTEXT_VIEW, NATIVE_VIEW_SIDE, refine_views

    large = refine_views((768, 1024, 3), (500.0, 400.0, 2.2 * 100), mirror=False)
    assert len(large) == 1 and large[0].out_size == 320                 # magnified 1.45 times: the crop alone
    crop, native, context = refine_views((768, 1024, 3), (500.0, 400.0, 2.2 * 20), mirror=True)
    assert crop.zoom > 7 and crop.mirrored and native.mirrored and context.mirrored
    assert native.zoom == pytest.approx(1.0) and native.out_size == NATIVE_VIEW_SIDE
    # the context view: CONTEXT_VIEW l at the photo's resolution
    assert context.zoom == pytest.approx(1.0) and context.size == pytest.approx(CONTEXT_VIEW * 20)
    assert len(refine_views((768, 1024, 3), (500.0, 400.0, 44.0), False, native_view=False)) == 1
    assert len(refine_views((768, 1024, 3), (500.0, 400.0, 44.0), False, context_view=False)) == 2


class _SquareHands:
    """A stand-in for MediaPipe's hand pass: a view shows a hand where the photo has its white
    square, when the square fills at least ``min_fraction`` of the view's longer side (the palm
    detector's limit) and the view is ``seen`` (by its side in px; None: every view)."""

    def __init__(self, min_fraction=0.1, seen=None):
        self.min_fraction, self.seen, self.views = min_fraction, seen, []

    def __call__(self, view, found_by="hand", graph=None):
        self.views.append(view.shape[:2])
        ys, xs = np.nonzero(view[..., 0] > 200)
        if not len(xs) or (self.seen is not None and max(view.shape[:2]) not in self.seen):
            return []
        side = xs.max() - xs.min() + 1
        if side < self.min_fraction * max(view.shape[:2]):
            return []
        hand = _detection(((xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2), size=float(side))
        hand.found_by = found_by
        return [hand]


def _offline_detector(hand_pass, **settings):
    """A ``HandDetector`` whose hand pass is ``hand_pass`` (no MediaPipe graph)."""
    from wildhands.data.detector import TILE_LEVELS

    detector = HandDetector.__new__(HandDetector)
    detector.max_num_hands, detector.second_pass, detector.tiles = 4, True, True
    detector.sigma = KeypointSigmaRule(2.0, 1.0, 20.0)
    detector.tile_levels, detector.native_view = settings.get("tile_levels", TILE_LEVELS), True
    detector._hands, detector._body, detector._flipped_hands, detector._worker = object(), None, None, None
    detector._run = hand_pass
    detector.proposals, detector.context_view = settings.get("proposals", False), settings.get("context_view", False)
    palms = settings.get("palms")
    detector._run_palms = lambda view, found_by="tile": (hand_pass(view, found_by), palms(view) if palms else [])
    return detector


def _square_palms(min_fraction=0.05, score=0.2):
    """A stand-in for the palm detector's weak detections: the white square's centre, side and
    ``score`` when it fills at least ``min_fraction`` of the view's longer side."""
    def palms(view):
        ys, xs = np.nonzero(view[..., 0] > 200)
        if not len(xs) or xs.max() - xs.min() + 1 < min_fraction * max(view.shape[:2]):
            return []
        return [((xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2, float(xs.max() - xs.min() + 1), score)]
    return palms


def test_a_weak_palm_on_a_fine_tile_is_read_again_on_a_zoomed_window():
    from wildhands.data.detector import ZOOM, zoom_windows

    photo = np.full((768, 1024, 3), 90, np.uint8)
    photo[400:420, 600:620] = 255                   # 20 px: 12 % of a 1/6 tile, 18 % of its zoomed window
    hand_pass = _SquareHands(min_fraction=0.15)
    (hand,) = _offline_detector(hand_pass, proposals=True, palms=_square_palms()).detect(photo)
    window = round((1024 // 6) / ZOOM)
    assert hand.found_by == "tile" and len(hand.passes) > 1 and any(max(v) >= window for v in hand_pass.views)
    assert crop_box(hand.keypoints_2d, None, 1.0)[:2] == pytest.approx((609.5, 409.5), abs=1)
    # without proposals, or with no palm there, the fine tiles alone miss it
    assert _offline_detector(_SquareHands(min_fraction=0.15)).detect(photo) == []
    assert _offline_detector(_SquareHands(min_fraction=0.15), proposals=True).detect(photo) == []
    # proposals of one palm from overlapping tiles share one window; the strongest first, at most ``limit``
    proposals = [(600, 400, 0.2), (602, 401, 0.5), (100, 100, 0.3)]
    assert [(w.center_x, w.center_y, w.size) for w in zoom_windows((768, 1024, 3), proposals, 113.0)] == \
        [(602, 401, 113.0), (100, 100, 113.0)]
    assert len(zoom_windows((768, 1024, 3), proposals, 113.0, limit=1)) == 1


def test_finer_tiles_find_a_small_hand_that_a_second_view_confirms():
    photo = np.full((768, 1024, 3), 90, np.uint8)
    photo[400:424, 600:624] = 255                   # a 24 px hand: 14 % of a 1/6 tile, 9 % of a 1/4 one
    (hand,) = _offline_detector(_SquareHands()).detect(photo)
    assert hand.found_by == "tile" and set(hand.passes) == {"first", "crop", "flipped"}
    assert crop_box(hand.keypoints_2d, None, 1.0)[:2] == pytest.approx((611.5, 411.5), abs=1)
    # the 2.2 l crops (320 px, magnified 6 times) show nothing; the native views (192 px) confirm it
    hand_pass = _SquareHands(seen={1024 // 6, 192})
    (hand,) = _offline_detector(hand_pass).detect(photo)
    assert set(hand.passes) == {"first", "crop", "flipped"} and (320, 320) in hand_pass.views
    # a single reading on a fine tile (a texture MediaPipe takes for a hand) is no hand
    assert _offline_detector(_SquareHands(seen={1024 // 6})).detect(photo) == []
    # the half-side tiles alone: too small for them
    assert _offline_detector(_SquareHands(), tile_levels=(2,)).detect(photo) == []


def test_finer_tiles_run_only_when_coarser_ones_find_nothing():
    photo = np.full((768, 1024, 3), 90, np.uint8)
    photo[300:360, 200:260] = 255                   # 60 px: 12 % of a half-side tile
    hand_pass = _SquareHands()
    (hand,) = _offline_detector(hand_pass).detect(photo)
    assert hand.found_by == "tile"
    assert (256, 256) not in hand_pass.views and (170, 170) not in hand_pass.views
    # a hand the whole photo shows at an ordinary size: no tiles at all
    photo[300:460, 200:360] = 255
    hand_pass = _SquareHands()
    (hand,) = _offline_detector(hand_pass).detect(photo)
    assert hand.found_by == "hand" and (512, 512) not in hand_pass.views
    # a small photo: its finer tiles would be magnified views (under MIN_FINE_TILE_SIDE), not searched
    small = np.full((384, 512, 3), 90, np.uint8)
    small[200:212, 300:312] = 255
    hand_pass = _SquareHands()
    assert _offline_detector(hand_pass).detect(small) == []
    assert {max(shape) for shape in hand_pass.views} == {512, 256}


def test_the_readmes_small_hand_figures_are_the_measured_ones():
    import subprocess
    import sys

    from wildhands.paths import PROJECT_ROOT

    script = PROJECT_ROOT / "docs" / "make_detector_results.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_world_landmarks_are_turned_from_the_ray_view_into_the_camera_frame():
    from wildhands.hand.camera import WORLD_VIEW_KEYPOINT, ray_view_to_camera, world_landmarks_in_camera

    rng = np.random.default_rng(0)
    world = 0.05 * rng.standard_normal((2, 21, 3))
    pinhole = np.array([[500.0, 160.0, 160.0], [500.0, 160.0, 160.0]])
    keypoints = 160.0 + 20.0 * rng.standard_normal((2, 21, 2))
    keypoints[0, WORLD_VIEW_KEYPOINT] = (160.0, 160.0)                  # a wrist on the optical axis: no turn
    keypoints[1, WORLD_VIEW_KEYPOINT] = (160.0 + 500.0, 160.0)          # 45 degrees to the right
    turned = world_landmarks_in_camera(world, keypoints, pinhole)
    np.testing.assert_allclose(turned[0], world[0], atol=1e-12)
    # the hand seen along a ray 45 degrees right of the axis: what it faces (+z in its view) faces
    # along that ray in the camera's frame
    facing = world_landmarks_in_camera(np.tile([0.0, 0.0, 1.0], (2, 21, 1)), keypoints, pinhole)[1, 0]
    np.testing.assert_allclose(facing, [np.sqrt(0.5), 0.0, np.sqrt(0.5)], atol=1e-12)
    back = ray_view_to_camera(turned, keypoints[:, WORLD_VIEW_KEYPOINT], pinhole, inverse=True)
    np.testing.assert_allclose(back, world, atol=1e-12)
    # a wrist not to be trusted: the ray through the usable keypoints' mean instead
    usable = np.ones((2, 21), bool)
    usable[1, WORLD_VIEW_KEYPOINT] = False
    mean = keypoints[1, 1:].mean(0)
    np.testing.assert_allclose(world_landmarks_in_camera(world, keypoints, pinhole, usable)[1],
                               ray_view_to_camera(world[1:], mean[None], pinhole[1:])[0], atol=1e-12)
    with pytest.raises(ValueError, match="keypoints_px"):
        world_landmarks_in_camera(world, keypoints[:, :20], pinhole)
    # a weak-perspective fit's frame: the view along the ray through the keypoints' mean
    from wildhands.hand.camera import world_landmarks_in_crop_view
    view = world_landmarks_in_crop_view(world, keypoints, pinhole)
    np.testing.assert_allclose(view, ray_view_to_camera(turned, keypoints.mean(1), pinhole, inverse=True), atol=1e-12)
    centred = keypoints.copy()        # keypoints whose mean is the wrist: the two rays are one
    centred[:, 1:] -= (keypoints[:, 1:].mean(1) - keypoints[:, WORLD_VIEW_KEYPOINT])[:, None]
    np.testing.assert_allclose(world_landmarks_in_crop_view(world, centred, pinhole), world, atol=1e-12)
