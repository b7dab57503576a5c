import json
import pickle

import numpy as np
import pytest
import torch

from wildhands.config import load_profile
from wildhands.data import synthetic
from wildhands.data.appearance import draw_occluders
from wildhands.data.render import render
from wildhands.data.synthetic import (HandAssets, SyntheticHandDataset, SyntheticSettings, anatomical_frame,
                                      generate_synthetic_set, hidden_keypoints, render_samples, sample_parameters)
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import axis_angle_to_matrix, weak_perspective_project
from wildhands.hand.hand_model import HandModel, rest_keypoints


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
    betas = np.stack([s["betas"] for s in samples])
    assert 0.7 < betas.std() < 1.1  # N(0, 1) clipped at 2
    # About 30 % of the samples have occluders; hidden keypoints are a subset of the visible ones.
    with_occluders = [s for s in samples if s["occluder_mask"].any()]
    assert 0 < len(with_occluders) < len(samples)
    for s in samples:
        assert (s["occluded"] <= s["visible"]).all()


def test_views_follow_the_profile(model):
    config = load_profile("quick", {"synthetic.view_uniform_fraction": 0.0, "synthetic.view_max_tilt_deg": 30.0})
    frame = anatomical_frame(model)
    rng = np.random.default_rng(1)
    back = np.stack([sample_parameters(rng, SyntheticSettings.from_config(config), frame, 10, 10).rotation @ frame[1] for _ in range(200)])
    assert (np.abs(back[:, 2]) >= np.cos(np.deg2rad(30.0)) - 1e-9).all()  # palm or back within 30 degrees
    assert 0.3 < (back[:, 2] < 0).mean() < 0.7                              # both, about equally
    with pytest.raises(ValueError, match="synthetic.shape"):
        sample_parameters(rng, SyntheticSettings.from_config(load_profile("quick", {"synthetic.shape": "gamma"})),
                          frame, 10, 10)


def assert_labels_are_the_training_projection(model, samples):
    for s in samples:
        with torch.no_grad():
            out = model(betas=torch.as_tensor(s["betas"])[None], pose=torch.as_tensor(s["pose"])[None])
        rotation = axis_angle_to_matrix(torch.as_tensor(s["global_orient"], dtype=torch.float64))[None].float()
        projected = weak_perspective_project(out.keypoints, rotation, torch.as_tensor(s["scale"]),
                                             torch.as_tensor(s["trans"])[None], out.keypoints[:, kp.ROOT])
        assert np.allclose(projected[0].numpy(), s["keypoints_2d"], atol=0.05)
        assert np.allclose(s["keypoints_3d"][kp.ROOT], 0.0)


def test_labels_match_the_projection_of_the_training_code(model, samples):
    assert_labels_are_the_training_projection(model, samples[:4])


def test_hidden_keypoints_of_a_flat_hand_seen_from_its_sides():
    model = HandModel(flat_hand_mean=True)
    assets = HandAssets.of(model)
    along, back, across = assets.frame
    with torch.no_grad():
        out = model()
    verts, keys = out.vertices[0].double().numpy(), out.keypoints[0].double().numpy()

    def hidden(facing, occluder_mask=None):  # ``facing`` points at the camera, fingers up
        rotation = np.stack([np.cross(-along, -facing), -along, -facing])
        verts_2d = 700 * (verts - keys[0]) @ rotation.T[:, :2] + [160, 260]
        keys_2d = 700 * (keys - keys[0]) @ rotation.T[:, :2] + [160, 260]
        face_id = render(verts_2d, verts @ rotation.T[:, 2], model.faces, np.ones((len(verts), 3)), 320, 320).face_id
        return hidden_keypoints(keys_2d, assets.patches, verts_2d, model.faces, face_id, occluder_mask), keys_2d

    assert not hidden(back)[0].any() and not hidden(-back)[0].any()   # back and palm views show everything
    from_thumb, _ = hidden(-across)
    assert from_thumb[[17, 18, 19]].all() and not from_thumb[[1, 5, 8]].any()  # the little finger is behind
    occluder = np.zeros((320, 320), np.uint8)
    _, keys_2d = hidden(back)
    x, y = np.rint(keys_2d[8]).astype(int)
    occluder[y - 3:y + 4, x - 3:x + 4] = 1
    assert np.flatnonzero(hidden(back, occluder)[0]).tolist() == [8]


def test_occluders_cover_what_their_mask_says():
    rng = np.random.default_rng(0)
    image = np.full((320, 320, 3), 128, np.uint8)
    keys = rng.uniform(100, 220, (21, 2))
    for _ in range(10):
        out, mask = draw_occluders(rng, image, keys)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
        assert (out[mask == 0] == 128).all()   # nothing drawn outside the mask


def test_skin_regions_of_the_rest_hand(model):
    assets = HandAssets.of(model)
    regions = assets.regions
    verts = model.mano.v_template.double().numpy()
    keys = rest_keypoints(model).double().numpy()
    height = (verts - keys[9]) @ assets.frame[1]         # out of the back of the hand, from the middle MCP
    palm_region = np.linalg.norm(verts - keys[[0, 5, 9, 13, 17]].mean(0), axis=1) < 0.03
    assert regions.palmar[palm_region & (height < 0)].mean() > 0.7
    assert regions.palmar[palm_region & (height > 0)].mean() < 0.3
    for weights in (regions.palmar, regions.nail, regions.crease):
        assert weights.shape == (model.num_vertices,) and 0 <= weights.min() and weights.max() <= 1
    nails = regions.nail > 0.5
    tips = keys[list(kp.FINGERTIPS)]
    assert nails.sum() >= 5 and (np.linalg.norm(verts[nails, None] - tips[None], axis=-1).min(1) < 0.03).all()


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


def test_interrupted_generation_resumes_to_the_same_set(tmp_path, config, model, monkeypatch):
    write_shard, written = synthetic._write_shard, []

    def killed_after_one_shard(job):
        if written:
            raise KeyboardInterrupt
        written.append(job)
        return write_shard(job)

    monkeypatch.setattr(synthetic, "_write_shard", killed_after_one_shard)
    with pytest.raises(KeyboardInterrupt):
        generate_synthetic_set(config, tmp_path / "cut", "val", hand_model=model, progress=False)
    directory = tmp_path / "cut" / "val"
    assert not (directory / "manifest.json").exists()  # an incomplete set has no manifest
    assert len(list(directory.glob("shard_*.npz"))) == 1
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        SyntheticHandDataset(tmp_path / "cut", "val")
    monkeypatch.setattr(synthetic, "_write_shard", write_shard)
    generate_synthetic_set(config, tmp_path / "cut", "val", hand_model=model, progress=False)
    generate_synthetic_set(config, tmp_path / "whole", "val", hand_model=model, progress=False)
    resumed, whole = SyntheticHandDataset(tmp_path / "cut", "val"), SyntheticHandDataset(tmp_path / "whole", "val")
    assert resumed.manifest == whole.manifest
    assert [resumed[i]["index"] for i in range(len(resumed))] == list(range(6))
    for i in range(6):
        for key in ("image", "mask", "occluder_mask", "keypoints_2d", "occluded", "pose"):
            assert np.array_equal(resumed[i][key], whole[i][key]), key
    # Other shard sizes rewrite the set and leave no stale shards behind.
    other = {**config, "synthetic": {**config["synthetic"], "shard_size": 5}}
    generate_synthetic_set(other, tmp_path / "cut", "val", hand_model=model, progress=False)
    assert sorted(p.name for p in directory.glob("shard_*.npz")) == ["shard_0000000_00005.npz",
                                                                      "shard_0000005_00001.npz"]


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
    for key in ("mask", "occluder_mask"):
        assert s[key].shape == (320, 320) and s[key].dtype == np.uint8 and set(np.unique(s[key])) <= {0, 1}
    shapes = {"keypoints_2d": (21, 2), "keypoints_3d": (21, 3), "visible": (21,), "occluded": (21,), "betas": (10,),
              "pose": (10,), "global_orient": (3,), "scale": (1,), "trans": (2,)}
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
    draws = [sample_parameters(rng, SyntheticSettings.from_config(paper), frame, 10, 10) for _ in range(400)]
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


def test_sampled_hands_are_the_rendered_distribution_without_pixels(model, config):
    from wildhands.data.synthetic import SampledHands
    from wildhands.net.train import default_datasets

    hands = SampledHands(model, config, length=40)
    first = hands[3]
    assert "image" not in first and "mask" not in first and first["has_mask"] == 0 and first["has_3d"] == 1
    again = SampledHands(model, config, length=40)[3]
    assert all(np.array_equal(np.asarray(first[k]), np.asarray(again[k])) for k in first)   # seeded by index
    assert not np.array_equal(hands[4]["pose"], first["pose"])
    together = hands.__getitems__([5, 3, 9])   # a DataLoader's batched fetch: same samples as one by one
    assert all(np.array_equal(np.asarray(a[k]), np.asarray(b[k]))
               for a, b in zip(together, [hands[5], first, hands[9]]) for k in a)
    with pytest.raises(IndexError, match="40 sampled hands"):
        hands.__getitems__([1, 40])
    batch = [hands[i] for i in range(40)]
    assert_labels_are_the_training_projection(model, batch[:4])
    for s in batch:  # framed like the rendered set
        edge = np.ptp(s["keypoints_2d"], axis=0).max()
        assert 320 / 2.2 * 0.89 <= edge <= 320 / 2.2 * 1.11
        assert np.abs(s["pose"]).max() <= 2.0
    assert 0.7 < np.stack([s["betas"] for s in batch]).std() < 1.1
    with pytest.raises(IndexError, match="40 sampled hands"):
        hands[40]
    rgb = load_profile("smoke", {"model.variant": "rgb", "pretrain.data": "sampled"})
    with pytest.raises(ValueError, match="no images"):
        default_datasets(rgb, "pretrain", model)


def test_a_photographed_hand_is_drawn_by_its_pinhole_camera(model, config):
    shot = synthetic.render_photographed(model, config, 3, angle_deg=25.0, depth_m=0.6, width=640, height=480)
    camera, keys_3d, keys_2d = shot["intrinsics"], shot["keypoints_3d"], shot["keypoints_2d"]
    centroid = keys_3d.mean(0)
    assert np.linalg.norm(centroid) > 0.6 and centroid[2] == pytest.approx(0.6)
    assert np.degrees(np.arctan(np.hypot(*centroid[:2]) / centroid[2])) == pytest.approx(25.0)
    np.testing.assert_allclose(keys_2d, camera.project(keys_3d), atol=1e-9)
    assert shot["image"].shape == (480, 640, 3) and shot["inside"]
    # the hand is drawn where its keypoints project, as large as they say
    palm = np.round(keys_2d[[0, 5, 9, 13, 17]].mean(0)).astype(int)
    assert shot["mask"][palm[1], palm[0]] == 1
    ys, xs = np.nonzero(shot["mask"])
    box = max(np.ptp(keys_2d[:, 0]), np.ptp(keys_2d[:, 1]))
    assert 0.8 * box < max(np.ptp(xs), np.ptp(ys)) < 1.5 * box
    with pytest.raises(ValueError, match="depth_m"):
        synthetic.render_photographed(model, config, 3, angle_deg=25.0, depth_m=0.0)
