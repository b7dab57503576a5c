"""The 2d+depth input variant (issue 15): the depth cue, its channels, a start that answers as the 2D network,
its training draws, the evaluation's and predict's depth."""
import pickle

import numpy as np
import pytest
import torch
from conftest import toy_mano_arrays
from train_fixtures import ListDataset, make_samples, moved_from_2d

from wildhands.config import load_profile
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import rotation_z
from wildhands.hand.hand_model import HandModel
from wildhands.net.checkpoints import load_encoder_weights_from_variant, read_checkpoint, save_checkpoint
from wildhands.net.encoder import VARIANTS, channel_layout
from wildhands.net.model import build_model
from wildhands.net.samples import TrainingSamples, depth_cue, heatmaps, network_input
from wildhands.net.train import parse_args, predict_dataset, pretrain

TINY = {"model.input_size": 32, "pretrain.steps": 1, "pretrain.batch_size": 2, "pretrain.log_every": 1,
        "pretrain.workers": 0, "pretrain.checkpoint_every": 0}


def _hand() -> np.ndarray:
    """(21, 3) a hand in metres: every finger straight along +x, its keypoints rising in z by 1 cm each,
    the wrist at z = 0.5 m (away from the camera) and the middle MCP 8 cm from it."""
    world = np.zeros((kp.NUM_KEYPOINTS, 3))
    for f, finger in enumerate(kp.FINGERS):
        for j, k in enumerate(kp.FINGER_KEYPOINTS[finger]):
            world[k] = [0.06 + 0.02 * j, 0.02 * (f - 2), 0.01 * (j + 1)]
    world[kp.KEYPOINT_NAMES.index("middle_mcp")] = [0.08, 0.0, 0.0]
    return world + [0.1, -0.2, 0.5]


def test_depth_cue_is_root_relative_z_over_the_palm_length():
    world = _hand()
    cue = depth_cue(world)
    assert cue.shape == (21,) and cue.dtype == np.float32 and cue[kp.ROOT] == 0
    assert np.allclose(cue[list(kp.FINGER_KEYPOINTS["index"])], np.array([1, 2, 3, 4]) * 0.01 / 0.08)
    assert cue[kp.KEYPOINT_NAMES.index("middle_mcp")] == 0
    # the same for a hand of another size or place, turned in the image plane, or mirrored (a left hand)
    assert np.allclose(depth_cue(3.0 * world + 7.0), cue, atol=1e-6)
    assert np.allclose(depth_cue(world @ rotation_z(0.7).T), cue, atol=1e-6)
    assert np.allclose(depth_cue(world * [-1.0, 1.0, 1.0]), cue)
    # no usable landmarks: zeros; landmarks of the wrong shape: an error naming them
    assert not depth_cue(None).any() and not depth_cue(np.zeros((21, 3))).any()
    assert not depth_cue(np.where(np.arange(21)[:, None] == 3, np.nan, world)).any()
    with pytest.raises(ValueError, match=r"world landmarks: expected \(21, 3\)"):
        depth_cue(np.zeros((20, 3)))


def test_depth_channels_are_the_heatmaps_times_each_keypoints_cue():
    assert VARIANTS["2d+depth"] == 42 and channel_layout("2d+depth")["depth"] == slice(21, 42)
    assert channel_layout("rgb+2d") == {"image": slice(0, 3), "heatmaps": slice(3, 24), "depth": slice(24, 24)}
    points = torch.rand(2, 21, 2) * 200 + 60
    confidence = torch.rand(2, 21)
    depth = torch.randn(2, 21)
    x = network_input("2d+depth", 32, 1.5, keypoints_2d=points, confidence=confidence, depth=depth)
    maps = heatmaps(points, confidence, 32, 1.5)
    assert x.shape == (2, 42, 32, 32)
    assert torch.equal(x[:, :21], network_input("2d", 32, 1.5, keypoints_2d=points, confidence=confidence))
    assert torch.allclose(x[:, 21:], maps * depth[:, :, None, None])
    assert not network_input("2d+depth", 32, 1.5, keypoints_2d=points)[:, 21:].any()   # no depth: zero channels
    with pytest.raises(ValueError, match=r"depth: variant '2d\+depth' needs \(2, 21\)"):
        network_input("2d+depth", 32, 1.5, keypoints_2d=points, depth=torch.zeros(2, 20))
    with pytest.raises(ValueError, match="depth: variant '2d' takes no depth"):
        network_input("2d", 32, 1.5, keypoints_2d=points, depth=depth)


def test_a_depth_network_started_from_a_2d_one_answers_exactly_as_it_whatever_the_depth(toy_mano_path, tmp_path):
    hand = HandModel(toy_mano_path)
    config = load_profile("smoke", {"model.input_size": 32})
    source, target, _ = moved_from_2d(hand, config, tmp_path, "2d+depth", stage="finetune")
    conv1 = target.encoder.state_dict()["backbone.conv1.weight"]
    assert torch.equal(conv1[:, :21], source.encoder.state_dict()["backbone.conv1.weight"])
    assert not conv1[:, 21:].any()
    points = torch.rand(3, 21, 2) * 200 + 60
    with torch.no_grad():
        before = source(network_input("2d", 32, 1.5, keypoints_2d=points))
        after = target(network_input("2d+depth", 32, 1.5, keypoints_2d=points, depth=10 * torch.randn(3, 21)))
    assert torch.equal(before.keypoints_3d, after.keypoints_3d) and torch.equal(before.params.trans, after.params.trans)
    back = build_model(config, hand, variant="2d")   # and back: the depth filters are dropped
    depth_path = save_checkpoint(tmp_path / "depth.pt", model=target, config=config, stage="finetune", step=1)
    load_encoder_weights_from_variant(back, read_checkpoint(depth_path), depth_path)
    assert torch.equal(back.encoder.state_dict()["backbone.conv1.weight"], conv1[:, :21])


@pytest.fixture
def toy_samples(toy_mano_path):
    hand = HandModel(toy_mano_path)
    return hand, ListDataset(make_samples(hand, 6, seed=0, with_images=False))


def test_training_draws_carry_noisy_depth_with_the_dropout_and_leave_the_2d_draws_as_they_were(toy_samples):
    _, data = toy_samples
    config = load_profile("smoke", {"model.depth_dropout": 0.3})
    depth = TrainingSamples(data, config, "2d+depth", seed=0)
    plain = TrainingSamples(data, config, "2d", seed=0)
    draws = [depth[(i % 6, i)] for i in range(60)]
    cues = np.stack([d["input_depth"] for d in draws])
    dropped = ~cues.any(axis=1)
    assert cues.shape == (60, 21) and 0.1 < dropped.mean() < 0.5          # about 0.3 of them zeroed
    assert "input_depth" not in plain[(0, 0)]
    for i in (0, 7, 30):                                                     # same seed: the 2D input as the 2d run's
        assert np.array_equal(draws[i]["input_keypoints_2d"], plain[(i % 6, i)]["input_keypoints_2d"])
    # The cue comes from simulated world landmarks of the (augmented) 3D keypoints: near the true one.
    kept = np.flatnonzero(~dropped)
    truth = np.stack([depth_cue(draws[i]["keypoints_3d"]) for i in kept])
    assert 0.02 < np.abs(cues[kept] - truth).mean() < 0.5
    # Evaluation: no dropout, the true depths without noise, a sample's own world landmarks where it has them.
    clean = TrainingSamples(data, config, "2d+depth", seed=0, stage="eval", augment=False, noise=False)
    assert np.allclose(clean[(2, 2)]["input_depth"], depth_cue(data[2]["keypoints_3d"]), atol=1e-6)
    given = ListDataset([{**s, "world_landmarks": _hand()} for s in data.samples])
    noisy = TrainingSamples(given, config, "2d+depth", seed=0, stage="eval", augment=False, noise=True)
    assert all(np.array_equal(noisy[(i, i)]["input_depth"], depth_cue(_hand())) for i in range(6))
    none = TrainingSamples(data, load_profile("smoke", {"model.depth_dropout": 1.0}), "2d+depth", seed=0)
    assert not any(none[(i, i)]["input_depth"].any() for i in range(6))
    missing = ListDataset([{**s, "has_3d": np.float32(0)} for s in data.samples])       # a 2D-only sample
    assert not TrainingSamples(missing, config, "2d+depth", seed=0, stage="eval")[(0, 0)]["input_depth"].any()
    with pytest.raises(ValueError, match="model.depth_dropout"):
        TrainingSamples(data, load_profile("smoke", {"model.depth_dropout": 1.5}), "2d+depth", seed=0)


def test_the_evaluation_gives_a_depth_network_the_world_landmarks_and_a_2d_network_nothing(toy_samples):
    from wildhands.eval.real_pose_lifting import Views

    hand, data = toy_samples
    config = load_profile("smoke", {"model.input_size": 32})
    samples = data.samples[:4]
    worlds = np.stack([_hand() + 0.01 * i for i in range(4)])
    with pytest.raises(ValueError, match="worlds"):
        Views(samples, worlds[:3])
    torch.manual_seed(0)
    depth_net = build_model(config, hand, variant="2d+depth")
    pred = predict_dataset(depth_net, Views(samples, worlds), config, noise=True, quarter_turns=1)
    assert np.allclose(pred["input_depth"], np.stack([depth_cue(w) for w in worlds]))
    plain = build_model(config, hand, variant="2d")
    with_worlds = predict_dataset(plain, Views(samples, worlds), config, noise=True, quarter_turns=1)
    without = predict_dataset(plain, Views(samples), config, noise=True, quarter_turns=1)
    assert "input_depth" not in with_worlds
    assert all(np.array_equal(with_worlds[k], without[k]) for k in without)


def test_pretraining_starts_from_a_given_2d_checkpoint_and_the_command_line_takes_the_variant(toy_samples, tmp_path,
                                                                                               monkeypatch):
    monkeypatch.setattr("wildhands.net.train.OUTPUTS_DIR", tmp_path / "outputs")
    hand, data = toy_samples
    config = load_profile("smoke", {**TINY, "pretrain.lr": 1e-12})
    common = dict(datasets=(data, ListDataset(data.samples[:2])), hand_model=hand, progress=False)
    two_d = pretrain(config, variant="2d", run_dir=tmp_path / "2d", **common)
    start = read_checkpoint(two_d.checkpoint)["encoder"]
    for variant in ("2d", "2d+depth"):   # the same network continued, or the depth network started from it
        result = pretrain(config, variant=variant, init_checkpoint=two_d.checkpoint, run_dir=tmp_path / variant,
                          **common)
        conv1 = result.model.encoder.state_dict()["backbone.conv1.weight"]
        assert (conv1[:, :21] - start["backbone.conv1.weight"]).abs().max() < 1e-6, variant
        assert (result.model.encoder.state_dict()["head.weight"] - start["head.weight"]).abs().max() < 1e-6
        assert not (conv1[:, 21:].abs() > 1e-6).any()
    assert parse_args(["--variant", "2d+depth", "--stage", "pretrain", "--init", "x.pt"]).variant == "2d+depth"


@pytest.fixture
def depth_checkpoint(tmp_path):
    path = tmp_path / "TOY_RIGHT.pkl"
    path.write_bytes(pickle.dumps(toy_mano_arrays(), protocol=2))
    config = load_profile("smoke", {"hand_model.path": str(path), "model.variant": "2d+depth",
                                    "model.input_size": 64})
    torch.manual_seed(0)
    model = build_model(config, HandModel(path))
    with torch.no_grad():   # depth filters that matter, as a trained network's would
        depth_filters = model.encoder.backbone.conv1.weight[:, 21:]
        depth_filters.copy_(0.5 * torch.randn_like(depth_filters))
        model.encoder.head.weight.normal_(std=0.05)
    return save_checkpoint(tmp_path / "depth.pt", model=model, config=config, stage="finetune", step=0)


def _fan(cx, cy, size=60.0):
    angles = np.linspace(-2.4, -0.7, 5)
    return np.array([[cx, cy]] + [[cx + np.cos(a) * size * j / 4, cy + np.sin(a) * size * j / 4]
                                  for a in angles for j in range(1, 5)])


def test_predict_feeds_each_hands_depth_mirrored_with_a_left_hand(depth_checkpoint):
    from types import SimpleNamespace

    from wildhands.app.predict import HandInput, Predictor
    from wildhands.data.detection import Detection, tight_box

    image = np.random.default_rng(1).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    right_2d = _fan(120, 130)
    left_2d = right_2d * [-1, 1] + [image.shape[1] - 1, 0]
    world = _hand() - _hand()[kp.ROOT]
    world[:, 2] += 0.03 * np.sin(np.arange(21))       # a hand that is not flat
    right = Detection(right_2d, "right", 0.9, tight_box(right_2d), world_landmarks=world)
    left = Detection(left_2d, "left", 0.9, tight_box(left_2d), world_landmarks=world * [-1, 1, 1])
    found = []                                         # what the stand-in detector finds in the photo
    predictor = Predictor(depth_checkpoint, refine=False, detector=SimpleNamespace(detect=lambda image: found))
    assert predictor.reads_depth
    hands = [HandInput.from_detection(d) for d in (right, left)]
    labels = HandInput(right_2d, np.ones(21), source="keypoints")          # --keypoints: no detection of its own
    transforms = [predictor._prepare(image, h, 0)[0] for h in hands]
    cues = predictor.depth_cues(hands + [labels], transforms + transforms[:1])
    assert torch.allclose(cues[0], torch.as_tensor(depth_cue(world))) and torch.equal(cues[0], cues[1])
    assert not cues[2].any()
    (r,) = predictor.predict(image, [hands[0]])
    (l,) = predictor.predict(image[:, ::-1], [hands[1]])
    assert l.crop.mirrored and np.allclose(l.joints_3d, r.joints_3d * [-1, 1, 1], atol=1e-5)
    (bare,) = predictor.predict(image, [labels])                           # no detection matches: zero depth
    assert np.abs(bare.joints_3d - r.joints_3d).max() > 1e-4               # (so the depth reached the network)
    found.append(right)                                                    # the detector finds the labelled hand
    (matched,) = predictor.predict(image, [labels])
    assert np.allclose(matched.joints_3d, r.joints_3d, atol=1e-6)


@pytest.mark.parametrize("mode", ["offline", "online"])
def test_videos_feed_each_tracked_hands_depth(tmp_path, mode, monkeypatch):
    import cv2

    import wildhands.app.predict as predict_module
    from wildhands.app.video import KnownKeypoints, predict_video
    from wildhands.data.synthetic_video import render_video
    from wildhands.hand.hand_model import hand_model_from_config

    config = load_profile("smoke", {"model.variant": "2d+depth", "model.input_size": 32})
    hand = hand_model_from_config(config)
    clip = render_video(hand, config, frames=4, width=160, height=120, side="left")
    checkpoint = save_checkpoint(tmp_path / "depth.pt", model=build_model(config, hand), config=config,
                                 stage="finetune", step=0)
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(clip.frames):
        cv2.imwrite(str(folder / f"frame_{t + 1:04d}.png"), np.ascontiguousarray(frame[..., ::-1]))
    world = clip.keypoints_3d - clip.keypoints_3d[:, :1]     # the camera frame's (unmirrored) landmarks
    fed, original = [], predict_module.network_input

    def recorded(*args, **kwargs):
        fed.append(kwargs["depth"])
        return original(*args, **kwargs)

    monkeypatch.setattr(predict_module, "network_input", recorded)
    predict_video(folder, tmp_path / "out", checkpoint=checkpoint, sequence=True, mode=mode, progress=False,
                  detector=KnownKeypoints(list(clip.keypoints_2d), "left", world=world))
    cues = torch.cat(fed)
    assert cues.shape == (4, 21)
    assert torch.allclose(cues, torch.as_tensor(np.stack([depth_cue(w) for w in world])), atol=1e-6)
