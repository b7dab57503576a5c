import numpy as np
import pytest
import torch
import torchvision
from train_fixtures import make_samples

from wildhands.config import MissingSetting, load_profile
from wildhands.data.augment import (ArticulatedNoise, AugmentSettings, DetectorNoise, WorldLandmarkNoise, articulated_keypoints,
                                    augment_sample, detector_keypoints, world_landmarks)
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import axis_angle_to_matrix
from wildhands.hand.hand_model import HandModel
from wildhands.hand.parameters import PARAMETER_FIELDS, HandParameters
from wildhands.net.encoder import HandEncoder
from wildhands.net.inference import inference_quarter_turns
from wildhands.net.model import build_model, turn_parameters, turned_average
from wildhands.net.samples import heatmaps, network_input


@pytest.fixture
def hand(toy_mano_path):
    return HandModel(toy_mano_path)


@pytest.fixture
def config():
    return load_profile("smoke", {"model.input_size": 32})


@pytest.mark.parametrize("variant,channels", [("rgb", 3), ("2d", 21), ("rgb+2d", 24)])
def test_variants_take_their_channels_and_give_the_26_vector(hand, config, variant, channels):
    model = build_model(config, hand, variant=variant)
    out = model(torch.rand(2, channels, 32, 32))
    assert out.params.to_vector().shape == (2, 26)
    assert out.keypoints_3d.shape == (2, 21, 3) and out.keypoints_2d.shape == (2, 21, 2)
    assert out.vertices.shape == (2, hand.num_vertices, 3) and out.vertices_2d.shape == (2, hand.num_vertices, 2)
    with pytest.raises(ValueError, match="encoder input"):
        model(torch.rand(2, channels + 1, 32, 32))


@pytest.mark.parametrize("head", ["linear", "iterative"])
def test_first_pass_is_the_mean_hand_centred_at_the_right_size(hand, config, head):
    torch.manual_seed(0)
    model = build_model({**config, "model": {**config["model"], "head": head}}, hand).eval()
    out = model(torch.rand(4, 21, 32, 32))
    box_low, box_high = out.keypoints_2d.min(1).values, out.keypoints_2d.max(1).values
    centre, edge = (box_low + box_high) / 2, (box_high - box_low).max(-1).values
    assert (centre - 159.5).abs().max() < 0.05 * 320
    assert ((edge - 320 / 2.2).abs() / (320 / 2.2)).max() < 0.1
    assert out.params.pose.abs().max() < 0.1 and out.params.betas.abs().max() < 0.1


def test_decoder_is_fixed_and_the_hand_model_stays_out_of_the_state_dict(hand, config):
    model = build_model(config, hand)
    assert not any(p.requires_grad for p in model.decoder.parameters())
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all(n.startswith("encoder.") for n in names)
    state = model.state_dict()
    assert not any(k.startswith("decoder.") for k in state)
    fresh = build_model(config, hand)
    fresh.load_state_dict(state)
    x = torch.rand(1, 21, 32, 32)
    model.eval(), fresh.eval()
    assert torch.equal(model(x).keypoints_3d, fresh(x).keypoints_3d)


def test_iterative_head_feeds_its_estimate_back_and_trains(hand, config):
    from wildhands.net.encoder import IterativeHead

    torch.manual_seed(0)
    head = IterativeHead(8, 5, iterations=3, hidden=16)
    features = torch.randn(4, 8)
    inputs = []
    head.mlp[0].register_forward_hook(lambda module, args, out: inputs.append(args[0].detach()))
    estimate = head(features)
    assert len(inputs) == 3 and torch.equal(inputs[0][:, 8:], torch.zeros(4, 5))
    assert torch.allclose(inputs[2][:, 8:] + head.mlp(inputs[2])[:, :], estimate, atol=1e-6)  # y3 = y2 + MLP([f, y2])
    settings = {**config, "model": {**config["model"], "head": "iterative", "head_iterations": 2, "head_hidden": 32}}
    model = build_model(settings, hand)
    model(torch.rand(2, 21, 32, 32)).keypoints_3d.square().sum().backward()
    assert model.encoder.head.mlp[0].weight.grad.abs().sum() > 0
    assert model.encoder.backbone.conv1.weight.grad.abs().sum() > 0
    state = model.state_dict()
    assert build_model(settings, hand).load_state_dict(state)   # the config rebuilds the same head
    with pytest.raises(ValueError, match="model.head"):
        build_model({**config, "model": {**config["model"], "head": "transformer"}}, hand)


def test_keypoints_only_decoding_equals_the_full_decoder(hand, config):
    torch.manual_seed(0)
    model = build_model(config, hand)
    torch.nn.init.normal_(model.encoder.head.weight, std=0.05)   # away from the mean hand
    params = model.encoder(torch.rand(3, 21, 32, 32))
    full, light = model.decoder(params), model.decoder.keypoints_only(params)
    assert light.vertices is None and light.vertices_2d is None
    torch.testing.assert_close(light.keypoints_3d, full.keypoints_3d, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(light.keypoints_2d, full.keypoints_2d, atol=1e-3, rtol=1e-5)
    light.keypoints_3d.square().sum().backward()     # the pretraining L3D term trains through it
    assert model.encoder.backbone.conv1.weight.grad.abs().sum() > 0
    assert not any(k.startswith("decoder.") for k in model.state_dict())


def test_reprojection_is_the_weak_perspective_camera(hand, config):
    model = build_model(config, hand)
    out = model(torch.rand(2, 21, 32, 32))
    p = out.params
    expected = p.scale[:, None, None] * out.keypoints_3d[..., :2] + p.trans[:, None]
    assert torch.allclose(out.keypoints_2d, expected, atol=1e-3)
    assert torch.allclose(out.keypoints_3d[:, kp.ROOT], torch.zeros(2, 3), atol=1e-7)


def _random_parameters(hand, batch=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return HandParameters(rotation=axis_angle_to_matrix(torch.randn(batch, 3, generator=g)),
                          trans=150 + 20 * torch.rand(batch, 2, generator=g), scale=600 + 200 * torch.rand(batch, generator=g),
                          betas=torch.randn(batch, hand.num_betas, generator=g),
                          pose=torch.randn(batch, hand.num_pca_comps, generator=g))


def test_turned_parameters_show_the_hand_as_rot90_turns_the_crop(hand, config):
    decoder = build_model(config, hand).decoder
    params = _random_parameters(hand)
    seen, turned = decoder(params), decoder(turn_parameters(params, 1, 320))
    # rot90 moves pixel (u, v) to (v, 319 - u); in 3D the same turn about the optical axis.
    expected_2d = torch.stack([seen.keypoints_2d[..., 1], 319 - seen.keypoints_2d[..., 0]], -1)
    assert torch.allclose(turned.keypoints_2d, expected_2d, atol=1e-3)
    expected_3d = torch.stack([seen.keypoints_3d[..., 1], -seen.keypoints_3d[..., 0], seen.keypoints_3d[..., 2]], -1)
    assert torch.allclose(turned.keypoints_3d, expected_3d, atol=1e-6)
    maps, maps_turned = (heatmaps(r.keypoints_2d, None, 32, 2.0) for r in (seen, turned))
    assert torch.allclose(maps_turned, torch.rot90(maps, 1, dims=(2, 3)), atol=1e-5)
    back = turn_parameters(turn_parameters(params, 3, 320), -3, 320)
    assert torch.allclose(back.rotation, params.rotation, atol=1e-6) and torch.allclose(back.trans, params.trans)


class _ScriptedEncoder:
    """Answers with ``views``, each expressed in the frame of its turned copy of the input."""
    crop_size = 320

    def __init__(self, views):
        self.views = list(views)

    def __call__(self, x):
        assert len(x) == len(self.views) * len(self.views[0].pose)    # all views in one pass
        turned = [turn_parameters(v, k * 4 // len(self.views), 320) for k, v in enumerate(self.views)]
        return HandParameters(*(torch.cat([getattr(t, name) for t in turned])
                                for name in PARAMETER_FIELDS))


def test_quarter_turn_averaging_turns_views_back_and_averages_those_that_agree(hand, config):
    base = _random_parameters(hand, batch=2)
    small = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, 0.1], [0.1, 0.0, 0.0]]))
    views = [HandParameters(base.rotation @ (small if k % 2 else small.transpose(1, 2)), base.trans + k,
                            base.scale + 10 * k, base.betas + k, base.pose - k) for k in range(4)]
    averaged = turned_average(_ScriptedEncoder(views), torch.zeros(2, 21, 8, 8), 4)
    assert torch.allclose(averaged.rotation, base.rotation, atol=1e-5)
    assert torch.allclose(averaged.trans, base.trans + 1.5) and torch.allclose(averaged.scale, base.scale + 15)
    assert torch.allclose(averaged.pose, base.pose - 1.5) and torch.allclose(averaged.betas, base.betas + 1.5)
    # A view that disagrees with the unturned one by more than 90 degrees takes no part.
    flipped = axis_angle_to_matrix(torch.tensor([[0.0, 3.0, 0.0], [0.0, 0.0, 0.0]]))
    views[2] = HandParameters(views[2].rotation @ flipped, views[2].trans, views[2].scale, views[2].betas + 100,
                              views[2].pose)
    averaged = turned_average(_ScriptedEncoder(views), torch.zeros(2, 21, 8, 8), 4)
    assert torch.allclose(averaged.betas[0], base.betas[0] + 4 / 3)        # views 0, 1, 3
    assert torch.allclose(averaged.betas[1], base.betas[1] + 1.5 + 25)     # all four
    assert torch.allclose(averaged.rotation @ averaged.rotation.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-5)
    half = turned_average(_ScriptedEncoder(views[:2]), torch.zeros(2, 21, 8, 8), 2)
    assert torch.allclose(half.pose, base.pose - 0.5)


def test_quarter_turns_are_configured_and_checked(hand, config):
    model = build_model(config, hand).eval()
    x = torch.rand(2, 21, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.predict(x, 1).keypoints_3d, model(x).keypoints_3d)
        assert torch.allclose(model.predict(x, 4).keypoints_3d,
                              model.decoder(turned_average(model.encoder, x, 4)).keypoints_3d, atol=1e-6)
    with pytest.raises(ValueError, match="quarter_turns"):
        turned_average(model.encoder, x, 3)
    assert inference_quarter_turns(config) == 4 and inference_quarter_turns(load_profile("paper")) == 1
    with pytest.raises(MissingSetting, match=r"\[inference\]"):
        inference_quarter_turns({})


def test_imagenet_weights_come_from_a_local_file(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    encoder = HandEncoder("rgb+2d", "resnet18", pretrained=path)
    conv = encoder.backbone.conv1.weight
    assert conv.shape[1] == 24
    assert torch.equal(conv[:, :3], reference.conv1.weight)
    assert conv[:, 3:].std() < 0.01 * reference.conv1.weight.std() * 10
    assert torch.equal(encoder.backbone.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
    with pytest.raises(FileNotFoundError, match="model.pretrained"):
        HandEncoder("rgb", "resnet18", pretrained=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="backbone"):
        HandEncoder("rgb", "vgg16")
    with pytest.raises(ValueError, match="variant"):
        HandEncoder("depth")


def test_augmentation_keeps_labels_and_camera_consistent(hand, config):
    model = build_model(config, hand)
    sample = make_samples(hand, 1, seed=5)[0]
    rng = np.random.default_rng(0)
    augmented = augment_sample(sample, rng, AugmentSettings(color=0.3, scale=0.2, rotation_deg=40, translation=0.1))
    assert not np.allclose(augmented["keypoints_2d"], sample["keypoints_2d"])
    params = HandParameters(
        rotation=axis_angle_to_matrix(torch.as_tensor(augmented["global_orient"])[None]),
        trans=torch.as_tensor(augmented["trans"])[None], scale=torch.as_tensor(augmented["scale"]),
        betas=torch.as_tensor(sample["betas"])[None], pose=torch.as_tensor(sample["pose"])[None])
    out = model.decoder(params)
    np.testing.assert_allclose(out.keypoints_2d[0].numpy(), augmented["keypoints_2d"], atol=1e-2)
    np.testing.assert_allclose(out.keypoints_3d[0].numpy(), augmented["keypoints_3d"], atol=1e-5)
    # The mask moved with the keypoints: the root keypoint's pixel stays on the hand's silhouette.
    assert augmented["mask"].sum() > 0 and augmented["image"].shape == sample["image"].shape


def test_detector_noise_matches_its_statistics_and_perturbations():
    truth = np.stack([np.arange(21) * 5.0 + 80, np.arange(21) * 2.0 + 100], axis=1).astype(np.float32)
    noise = DetectorNoise(global_shift_px=0.0, global_scale=0.0, hallucinate_probability=0.0,
                          swap_probability=0.0, mirror_probability=0.0, clean_probability=0.0)
    rng = np.random.default_rng(0)
    errors = np.stack([np.linalg.norm(detector_keypoints(truth, rng, noise) - truth, axis=1) for _ in range(400)])
    expected = noise.keypoint_sigma_px * np.sqrt(np.pi / 2)
    np.testing.assert_allclose(errors.mean(0), expected, rtol=0.15)
    mirrored = detector_keypoints(truth, rng, DetectorNoise(keypoint_sigma_px=np.zeros(21), global_shift_px=0,
                                                            global_scale=0, mirror_probability=1.0,
                                                            clean_probability=0.0, hallucinate_probability=0))
    centre = (truth[:, 0].min() + truth[:, 0].max()) / 2
    np.testing.assert_allclose(mirrored[:, 0], 2 * centre - truth[:, 0], atol=1e-4)
    clean = detector_keypoints(truth, rng, DetectorNoise(clean_probability=1.0))
    assert np.array_equal(clean, truth)


def test_world_landmark_noise_bends_bones_without_stretching_them():
    rng = np.random.default_rng(3)
    joints = np.cumsum(rng.normal(0, 0.02, (21, 3)), axis=0)
    joints = joints - joints[kp.ROOT]
    exact = WorldLandmarkNoise(rotation_sigma=0, palm_sigma=0, bone_sigma=0, length_sigma=0, scale_sigma=0)
    np.testing.assert_allclose(world_landmarks(joints, rng, exact), joints, atol=1e-12)

    def bone_lengths(points):
        return np.array([np.linalg.norm(points[c] - points[p]) for p, c in kp.BONES])

    bent = world_landmarks(joints, rng, WorldLandmarkNoise(length_sigma=0, scale_sigma=0))
    np.testing.assert_allclose(bone_lengths(bent), bone_lengths(joints), rtol=1e-9)
    assert np.abs(bent - joints).max() > 0.005 and np.allclose(bent[kp.ROOT], 0)
    # A turn at a knuckle moves the whole finger: errors grow towards the fingertips.
    many = np.stack([world_landmarks(joints, rng, WorldLandmarkNoise(rotation_sigma=0, scale_sigma=0))
                     for _ in range(200)])
    spread = np.linalg.norm(many - joints, axis=-1).mean(0)
    assert (spread[list(kp.FINGERTIPS)] > spread[[1, 5, 9, 13, 17]]).all()
    with pytest.raises(ValueError, match="joints"):
        world_landmarks(joints[:20], rng, WorldLandmarkNoise())
    with pytest.raises(ValueError, match="WorldLandmarkNoise"):
        WorldLandmarkNoise(bone_sigma=-0.1)


def test_articulated_noise_turns_bones_and_keeps_the_hand_a_hand():
    rng = np.random.default_rng(5)
    truth = 160 + np.cumsum(rng.normal(0, 12, (21, 2)), axis=0)
    quiet = DetectorNoise(global_shift_px=0.0, global_scale=0.0, hallucinate_probability=0.0, swap_probability=0.0,
                          mirror_probability=0.0, clean_probability=0.0)
    none = ArticulatedNoise(palm_turn_sigma=0, bone_turn_sigma=0, length_sigma=0, independent_share=0)
    np.testing.assert_allclose(articulated_keypoints(truth, rng, quiet, none), truth, atol=1e-4)

    def bone_lengths(points):
        return np.array([np.linalg.norm(points[c] - points[p]) for p, c in kp.BONES])

    turned = ArticulatedNoise(length_sigma=0, independent_share=0)
    bent = articulated_keypoints(truth, rng, quiet, turned)
    np.testing.assert_allclose(bone_lengths(bent), bone_lengths(truth), rtol=1e-5)
    assert np.allclose(bent[kp.ROOT], truth[kp.ROOT], atol=1e-4) and np.abs(bent - truth).max() > 1.0
    # turns accumulate down each finger, and error_scale scales them as it scales the jitter
    many = np.stack([articulated_keypoints(truth, rng, quiet, turned) for _ in range(300)])
    spread = np.linalg.norm(many - truth, axis=-1).mean(0)
    assert (spread[list(kp.FINGERTIPS)] > spread[[1, 5, 9, 13, 17]]).all()
    half = np.stack([articulated_keypoints(truth, rng, DetectorNoise(**{**quiet.__dict__, "error_scale": 0.5}), turned)
                     for _ in range(300)])
    np.testing.assert_allclose(np.linalg.norm(half - truth, axis=-1).mean(), 0.5 * spread.mean(), rtol=0.15)
    with pytest.raises(ValueError, match="keypoints_2d"):
        articulated_keypoints(truth[:20], rng, quiet)
    with pytest.raises(ValueError, match="ArticulatedNoise"):
        ArticulatedNoise(bone_turn_sigma=-1.0)


def test_heatmaps_peak_at_the_keypoints_at_the_input_resolution():
    points = torch.tensor([[[0.0, 0.0], [319.0, 319.0], [162.0, 82.0]] + [[10.0, 10.0]] * 18])
    maps = heatmaps(points, None, 64, sigma=1.5)
    assert maps.shape == (1, 21, 64, 64)
    flat = maps[0, :3].reshape(3, -1).argmax(-1)
    np.testing.assert_array_equal(np.stack([flat % 64, flat // 64], 1), [[0, 0], [63, 63], [32, 16]])
    x = network_input("rgb+2d", 64, 1.5, images=torch.zeros(1, 64, 64, 3, dtype=torch.uint8), keypoints_2d=points)
    assert x.shape == (1, 24, 64, 64)
    with pytest.raises(ValueError, match="images"):
        network_input("rgb", 64, 1.5, keypoints_2d=points)


def test_samples_without_3d_labels_or_parameters_batch_with_full_ones(hand, config):
    from wildhands.net.samples import TrainingSamples

    full = make_samples(hand, 2, seed=1)
    partial = {k: v for k, v in full[1].items() if k not in ("keypoints_3d", "has_3d", "betas", "pose",
                                                             "global_orient", "scale", "trans", "has_params")}
    data = TrainingSamples([full[0], partial], config, "2d", seed=0, stage="finetune", with_masks=True)
    batch = torch.utils.data.default_collate([data[0], data[1]])
    assert batch["has_3d"].tolist() == [1.0, 0.0] and batch["has_params"].tolist() == [1.0, 0.0]
    together = data.__getitems__([(1, 7), (0, 5)])   # a DataLoader's batched fetch, (index, draw) pairs
    for got, want in zip(together, [data[(1, 7)], data[(0, 5)]]):
        assert all(np.array_equal(got[k], want[k]) for k in want)
    assert batch["keypoints_3d"].shape == (2, 21, 3) and batch["soft_mask"].shape == (2, 320, 320)


def test_every_variant_sees_the_same_detector_like_keypoints_at_evaluation(hand, config):
    from wildhands.net.samples import TrainingSamples

    samples = make_samples(hand, 3, seed=2)
    noisy = {v: TrainingSamples(samples, config, v, seed=0, stage="eval", augment=False, noise=True)
             for v in ("2d", "rgb", "rgb+2d")}
    for i in range(3):
        reference = noisy["2d"][i]["input_keypoints_2d"]
        assert np.abs(reference - samples[i]["keypoints_2d"]).max() > 0   # noised, not the labels
        for variant in ("rgb", "rgb+2d"):                # the RGB refinement fits what a detector gives
            np.testing.assert_array_equal(noisy[variant][i]["input_keypoints_2d"], reference)
    clean_rgb = TrainingSamples(samples, config, "rgb", seed=0, stage="eval", augment=False, noise=False)
    assert "input_keypoints_2d" not in clean_rgb[0]
