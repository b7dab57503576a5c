import json

import numpy as np
import pytest
import torch

from wildhands import keypoints as kp
from wildhands.camera import axis_angle_to_matrix, weak_perspective_project
from wildhands.config import load_profile
from wildhands.hand_model import HandModel
from wildhands.synthetic import SyntheticHandDataset, generate_synthetic_set, render_samples


@pytest.fixture(scope="module")
def config():
    return load_profile("smoke", {"synthetic.num_val": 6, "synthetic.shard_size": 4, "synthetic.workers": 1})


@pytest.fixture(scope="module")
def model():
    return HandModel()


@pytest.fixture(scope="module")
def samples(model, config):
    return render_samples(model, config, "train", range(12))


def test_sampling_ranges_and_crop_size(samples):
    for s in samples:
        assert np.abs(s["pose"]).max() <= 2.0 and np.abs(s["betas"]).max() <= 2.0
        edge = np.ptp(s["keypoints_2d"], axis=0).max()
        assert 320 / 2.2 * 0.89 <= edge <= 320 / 2.2 * 1.11
        assert np.abs(s["keypoints_2d"].mean(0) - 160).max() < 100


def test_labels_match_the_projection_of_the_training_code(model, samples):
    for s in samples[:4]:
        with torch.no_grad():
            out = model(betas=torch.as_tensor(s["betas"])[None], pose=torch.as_tensor(s["pose"])[None])
        rotation = axis_angle_to_matrix(torch.as_tensor(s["global_orient"], dtype=torch.float64))[None].float()
        projected = weak_perspective_project(out.keypoints, rotation, torch.as_tensor(s["scale"]),
                                             torch.as_tensor(s["trans"])[None], out.keypoints[:, kp.ROOT])
        assert np.allclose(projected[0].numpy(), s["keypoints_2d"], atol=0.05)
        assert np.allclose(s["keypoints_3d"][kp.ROOT], 0.0)


def test_silhouette_covers_the_hand(samples):
    for s in samples:
        inside = np.round(s["keypoints_2d"][s["visible"] > 0]).astype(int)
        # Most keypoints (tips and joints lie inside the surface) fall on the rendered silhouette.
        assert s["mask"][inside[:, 1], inside[:, 0]].mean() > 0.8
        assert s["mask"].sum() > 1500


def test_same_samples_whatever_the_sharding_and_resumable(tmp_path, config, model):
    generate_synthetic_set(config, tmp_path / "a", "val", hand_model=model, progress=False)
    other = {**config, "synthetic": {**config["synthetic"], "shard_size": 5}}
    generate_synthetic_set(other, tmp_path / "b", "val", hand_model=model, progress=False)
    a, b = SyntheticHandDataset(tmp_path / "a", "val"), SyntheticHandDataset(tmp_path / "b", "val")
    assert len(a) == len(b) == 6
    for i in range(6):
        assert np.array_equal(a[i]["keypoints_2d"], b[i]["keypoints_2d"]) and a[i]["index"] == i
        assert np.abs(a[i]["image"].astype(int) - b[i]["image"].astype(int)).mean() < 1.0  # same JPEG input
    # Interrupted run: one shard lost and a stray temporary file; a rerun restores the same set.
    shards = sorted((tmp_path / "a" / "val").glob("shard_*.npz"))
    stamp = shards[0].stat().st_mtime_ns
    shards[1].unlink()
    (tmp_path / "a" / "val" / ".shard.tmp").write_bytes(b"partial")
    generate_synthetic_set(config, tmp_path / "a", "val", hand_model=model, progress=False)
    again = SyntheticHandDataset(tmp_path / "a", "val")
    assert shards[0].stat().st_mtime_ns == stamp  # complete shards were not rewritten
    assert [again[i]["index"] for i in range(6)] == list(range(6))
    assert np.array_equal(again[5]["keypoints_2d"], b[5]["keypoints_2d"])
    manifest = json.loads((tmp_path / "a" / "val" / "manifest.json").read_text())
    assert manifest["count"] == 6 and manifest["hand_model"] == model.hash


def test_missing_set_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        SyntheticHandDataset(tmp_path, "train")
