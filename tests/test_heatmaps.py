import numpy as np
import pytest
import torch

from wildhands.data.heatmaps import FLOOR, heatmap_argmax, keypoint_heatmaps


def _keypoints(seed=0, size=64):
    return np.random.default_rng(seed).uniform(4, size - 5, (21, 2)).round()


def test_peak_sits_on_the_keypoint():
    points = _keypoints()
    maps = keypoint_heatmaps(points, 64, 2.0)
    assert maps.shape == (21, 64, 64) and maps.dtype == np.float32
    peaks, values = heatmap_argmax(maps)
    assert np.array_equal(peaks, points) and np.allclose(values, 1.0)
    x, y = points[3].astype(int)
    assert maps[3, y, x + 2] == pytest.approx(np.exp(-0.5), rel=1e-5)  # one sigma away
    assert (maps[maps > 0] >= FLOOR).all()


def test_sub_pixel_keypoint_peaks_at_the_nearest_pixel():
    maps = keypoint_heatmaps(np.full((1, 2), [10.3, 20.6]), 32, 1.5)
    peaks, _ = heatmap_argmax(maps)
    assert np.array_equal(peaks, [[10.0, 21.0]])


def test_weights_scale_and_invisible_keypoints_give_zero_channels():
    points = _keypoints()
    weights = np.linspace(0, 1, 21)
    points[5] = np.nan
    maps = keypoint_heatmaps(points, 64, 2.0, weights)
    assert np.isfinite(maps).all()
    assert np.allclose(maps.max(axis=(1, 2)), np.where(np.arange(21) == 5, 0.0, weights), atol=1e-6)
    peaks, values = heatmap_argmax(maps)
    assert np.isnan(peaks[[0, 5]]).all() and values[0] == 0


def test_keypoints_outside_keep_their_tail_or_vanish():
    maps = keypoint_heatmaps(np.array([[-3.0, 10.0], [10.0, 200.0], [1e9, -1e9]]), 32, 2.0)
    assert maps[0, 10, 0] == pytest.approx(np.exp(-9 / 8), rel=1e-5) and maps[0].max() < 1
    assert not maps[1].any() and not maps[2].any()


def test_torch_batch_matches_numpy_and_keeps_device_and_dtype():
    points = np.stack([_keypoints(seed, size=48) for seed in range(3)])
    weights = np.random.default_rng(1).uniform(0, 1, (3, 21))
    expected = keypoint_heatmaps(points, 48, 3.0, weights)
    got = keypoint_heatmaps(torch.as_tensor(points), 48, 3.0, torch.as_tensor(weights))
    assert got.dtype == torch.float64 and got.shape == (3, 21, 48, 48)
    assert np.allclose(got.numpy(), expected, atol=1e-6)
    half = keypoint_heatmaps(torch.as_tensor(points, dtype=torch.float32), 48, 3.0)
    peaks, _ = heatmap_argmax(half)
    assert isinstance(peaks, torch.Tensor) and torch.equal(peaks, torch.as_tensor(points, dtype=torch.float32))


def test_matches_the_training_inputs():
    from wildhands.net.samples import heatmaps

    crop_points = np.random.default_rng(2).uniform(0, 319, (2, 21, 2))
    size, sigma = 64, 2.0
    training = heatmaps(torch.as_tensor(crop_points, dtype=torch.float32), None, size, sigma, 320)
    at_input = (crop_points + 0.5) * size / 320 - 0.5  # pixel centres stay at integers
    assert np.allclose(keypoint_heatmaps(at_input, size, sigma), training.numpy(), atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    ({"keypoints": np.zeros((21, 3))}, "keypoints"),
    ({"keypoints": "wrist"}, "keypoints"),
    ({"size": 0}, "size"),
    ({"sigma": 0.0}, "sigma"),
    ({"weights": np.ones(20)}, "weights"),
])
def test_bad_arguments_are_named(kwargs, match):
    args = {"keypoints": np.zeros((21, 2)), "size": 16, "sigma": 1.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        keypoint_heatmaps(**args)
    with pytest.raises(ValueError, match="heatmaps"):
        heatmap_argmax(np.zeros((4, 4)))
