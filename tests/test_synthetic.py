import json
import pickle

import numpy as np
import pytest
import torch

from wildhands import keypoints as kp
from wildhands.camera import axis_angle_to_matrix, weak_perspective_project
from wildhands.config import load_profile
from wildhands.hand_model import HandModel
from wildhands.synthetic import (SyntheticHandDataset, anatomical_frame, generate_synthetic_set,
                                 render_samples, sample_parameters)


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
        assert a[i]["index"] == i
        for key in ("image", "mask", "keypoints_2d", "keypoints_3d", "betas", "pose", "global_orient"):
            assert np.array_equal(a[i][key], b[i][key]), key
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


def test_same_samples_whatever_the_worker_count(tmp_path, config, model):
    generate_synthetic_set(config, tmp_path / "one", "val", hand_model=model, progress=False)
    two = {**config, "synthetic": {**config["synthetic"], "workers": 2, "shard_size": 3}}
    generate_synthetic_set(two, tmp_path / "two", "val", hand_model=model, progress=False)
    a, b = SyntheticHandDataset(tmp_path / "one", "val"), SyntheticHandDataset(tmp_path / "two", "val")
    for i in (0, 3, 5):
        assert np.array_equal(a[i]["image"], b[i]["image"]) and np.array_equal(a[i]["pose"], b[i]["pose"])


def test_dataset_sample_format_random_access_and_pickling(tmp_path, config, model):
    generate_synthetic_set(config, tmp_path, "val", hand_model=model, progress=False)
    data = SyntheticHandDataset(tmp_path, "val")
    forward = [data[i] for i in range(len(data))]
    backward = [data[i] for i in reversed(range(len(data)))][::-1]
    clone = pickle.loads(pickle.dumps(data))  # as a spawned DataLoader worker receives it
    for s, t in zip(forward, backward):
        assert np.array_equal(s["image"], t["image"]) and np.array_equal(s["mask"], t["mask"])
    s = clone[np.int64(5)]
    assert s["image"].shape == (320, 320, 3) and s["image"].dtype == np.uint8
    assert s["mask"].shape == (320, 320) and set(np.unique(s["mask"])) <= {0, 1}
    shapes = {"keypoints_2d": (21, 2), "keypoints_3d": (21, 3), "visible": (21,), "betas": (10,), "pose": (10,),
              "global_orient": (3,), "scale": (1,), "trans": (2,)}
    for key, shape in shapes.items():
        assert s[key].shape == shape and s[key].dtype == np.float32, key
    assert s["has_3d"] == s["has_mask"] == s["has_params"] == 1 and s["is_left"] is False
    assert s["source"] == "synthetic" and s["index"] == 5
    with pytest.raises(IndexError):
        data[len(data)]


def test_generation_uses_the_given_hand_model(tmp_path, config, toy_mano_path):
    toy = HandModel(toy_mano_path)
    generate_synthetic_set(config, tmp_path, "val", hand_model=toy, progress=False)
    data = SyntheticHandDataset(tmp_path, "val")
    assert data.manifest["hand_model"] == toy.hash
    s = data[2]
    with torch.no_grad():
        out = toy(betas=torch.as_tensor(s["betas"])[None], pose=torch.as_tensor(s["pose"])[None])
    rotation = axis_angle_to_matrix(torch.as_tensor(s["global_orient"], dtype=torch.float64))[None].float()
    projected = weak_perspective_project(out.keypoints, rotation, torch.as_tensor(s["scale"]),
                                         torch.as_tensor(s["trans"])[None], out.keypoints[:, kp.ROOT])
    assert np.allclose(projected[0].numpy(), s["keypoints_2d"], atol=0.05)


def test_paper_shapes_and_view_coverage(model):
    paper = load_profile("paper")
    assert paper["synthetic"]["shape"] == "uniform"
    frame = anatomical_frame(model)
    rng = np.random.default_rng(0)
    draws = [sample_parameters(rng, paper, frame, 10, 10) for _ in range(400)]
    betas = np.stack([d.betas for d in draws])
    assert np.abs(betas).max() <= 0.03 and betas.std() > 0.01
    # Which way the back of the hand and the fingers point in the camera: all directions occur.
    back = np.stack([d.rotation @ frame[1] for d in draws])
    along = np.stack([d.rotation @ frame[0] for d in draws])
    assert (back[:, 2] < -0.8).mean() > 0.1 and (back[:, 2] > 0.8).mean() > 0.1    # back and palm views
    assert (np.abs(back[:, 2]) < 0.3).mean() > 0.05                                 # side views
    assert (along[:, 1] < -0.7).mean() > 0.1 and (np.abs(along[:, 2]) > 0.8).mean() > 0.05  # up, towards
    roll = np.arctan2(along[:, 1], along[:, 0])
    assert np.histogram(roll, bins=8, range=(-np.pi, np.pi))[0].min() > 10          # full in-plane circle


def test_missing_set_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        SyntheticHandDataset(tmp_path, "train")
