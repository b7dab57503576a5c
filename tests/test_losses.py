from dataclasses import replace

import numpy as np
import pytest
import torch
from train_fixtures import make_samples

from wildhands.config import load_profile
from wildhands.hand.camera import axis_angle_to_matrix
from wildhands.hand.hand_model import HandModel
from wildhands.hand.parameters import HandParameters
from wildhands.net.losses import (LossSettings, ParameterWeights, keypoint_errors, parameter_losses,
                                  reconstruction_losses, sample_soft_mask, soft_mask)
from wildhands.net.model import build_model
from wildhands.net.samples import TrainingSamples

LOSS = LossSettings(w2d=1.0, w3d=100.0, wmask=100.0, wreg=10.0, alpha_beta=2.0, l3d_unit_m=0.1, mask_margin_px=2.0,
                    mask_decay_px=20.0)


def _params(batch, **values):
    zeros = {"rotation": torch.eye(3).expand(batch, 3, 3), "trans": torch.zeros(batch, 2),
             "scale": torch.ones(batch), "betas": torch.zeros(batch, 10), "pose": torch.zeros(batch, 10)}
    zeros.update(values)
    return HandParameters(**zeros)


class _Output:
    def __init__(self, kp2d, kp3d, verts2d, params):
        self.keypoints_2d, self.keypoints_3d, self.vertices_2d, self.params = kp2d, kp3d, verts2d, params


def _batch(batch=2, size=32):
    return {"keypoints_2d": torch.zeros(batch, 21, 2), "visible": torch.ones(batch, 21),
            "keypoints_3d": torch.zeros(batch, 21, 3), "has_3d": torch.ones(batch),
            "soft_mask": torch.ones(batch, size, size), "has_mask": torch.ones(batch)}


def test_soft_mask_is_one_inside_and_decays_outside():
    mask = np.zeros((40, 40), np.uint8)
    mask[10:20, 10:20] = 1
    h = soft_mask(mask, margin_px=2.0, decay_px=5.0)
    assert h[10:20, 10:20].min() == 1.0 and h[8, 15] == 1.0   # inside, and within the margin
    np.testing.assert_allclose(h[15, 25], np.exp(-(6 - 2) / 5.0), rtol=1e-4)
    row = h[15, 19:]
    assert np.all(np.diff(row) <= 0) and row[-1] < row[0]
    assert soft_mask(np.zeros((8, 8), np.uint8)).max() == 0.0
    with pytest.raises(ValueError, match="mask"):
        soft_mask(np.zeros((2, 8, 8)))


def test_soft_mask_sampling_is_bilinear_with_border_padding():
    soft = torch.arange(16.0).reshape(1, 4, 4)
    points = torch.tensor([[[0.0, 0.0], [3.0, 2.0], [1.5, 0.0], [-10.0, 1.0], [2.0, 99.0]]])
    values = sample_soft_mask(soft, points)
    np.testing.assert_allclose(values[0].numpy(), [0.0, 11.0, 1.5, 4.0, 14.0], atol=1e-5)


def test_l2d_is_mean_l1_over_visible_coordinates_in_pixels():
    batch = _batch()
    kp2d = torch.zeros(2, 21, 2)
    kp2d[0, 3] = torch.tensor([3.0, -4.0])     # |3| + |-4| = 7 px over 2 coordinates
    kp2d[1, 5] = torch.tensor([100.0, 100.0])  # invisible: ignored
    batch["visible"][1, 5] = 0
    out = _Output(kp2d, torch.zeros(2, 21, 3), torch.zeros(2, 5, 2), _params(2))
    terms = reconstruction_losses(out, batch, LOSS)
    assert terms["raw_l2d"].item() == pytest.approx(7.0 / (2 * 41))


def test_l3d_is_squared_distance_in_configured_units_for_labelled_samples():
    batch = _batch()
    kp3d = torch.zeros(2, 21, 3)
    kp3d[0, 8] = torch.tensor([0.0, 0.03, 0.04])  # 5 cm = 0.5 dm off
    kp3d[1] = 1.0                                 # sample without 3D labels: ignored
    batch["has_3d"][1] = 0
    out = _Output(torch.zeros(2, 21, 2), kp3d, torch.zeros(2, 5, 2), _params(2))
    terms = reconstruction_losses(out, batch, LOSS)
    assert terms["raw_l3d"].item() == pytest.approx(0.25 / 21)
    assert terms["l3d"].item() == pytest.approx(100 * 0.25 / 21)
    cm = reconstruction_losses(out, batch, replace(LOSS, l3d_unit_m=0.01))
    assert cm["raw_l3d"].item() == pytest.approx(25 / 21)


def test_mask_term_and_regulariser_and_total():
    batch = _batch(size=32)
    batch["soft_mask"][:, :, 16:] = 0.25        # right half of the crop is "outside"
    verts = torch.tensor([[[4.0, 4.0], [8.0, 8.0]], [[20.0, 4.0], [4.0, 4.0]]])
    batch["has_mask"][:] = 1
    pose = torch.full((2, 10), 2.0)
    betas = torch.ones(2, 10)
    out = _Output(torch.zeros(2, 21, 2), torch.zeros(2, 21, 3), verts, _params(2, pose=pose, betas=betas))
    terms = reconstruction_losses(out, batch, LOSS)
    assert terms["raw_mask"].item() == pytest.approx((0.0 + (1 - 0.625)) / 2)
    assert terms["raw_reg"].item() == pytest.approx(4.0 + 2.0 * 1.0)
    assert terms["loss"].item() == pytest.approx(sum(terms[k].item() for k in ("l2d", "l3d", "mask", "reg")))
    assert terms["reg"].item() == pytest.approx(10 * terms["raw_reg"].item())
    batch["has_mask"][:] = 0                       # no masks in the batch: no mask term
    assert reconstruction_losses(out, batch, LOSS)["raw_mask"].item() == 0.0


@pytest.fixture
def toy_setup(toy_mano_path):
    hand = HandModel(toy_mano_path)
    config = load_profile("smoke", {"model.input_size": 32})
    torch.manual_seed(0)
    return hand, config, make_samples(hand, 4, seed=3)


def _collate(config, samples, variant="2d"):
    data = TrainingSamples(samples, config, variant, seed=0, stage="finetune", augment=False, noise=False,
                           with_masks=True)
    return torch.utils.data.default_collate([data[i] for i in range(len(samples))])


def _true_params(batch) -> HandParameters:
    return HandParameters(rotation=axis_angle_to_matrix(batch["global_orient"]), trans=batch["trans"],
                          scale=batch["scale"][:, 0], betas=batch["betas"], pose=batch["pose"])


def test_true_parameters_give_zero_data_terms_and_shrinking_raises_the_loss(toy_setup):
    hand, config, samples = toy_setup
    model = build_model(config, hand)
    batch = _collate(config, samples)
    truth = _true_params(batch)
    loss = replace(LossSettings.from_config(config), wreg=0.0)
    at_truth = reconstruction_losses(model.decoder(truth), batch, loss)
    for name in ("raw_l2d", "raw_l3d", "raw_mask"):
        assert at_truth[name].item() == pytest.approx(0.0, abs=1e-4), name
    previous_total, previous_mask = at_truth["loss"].item(), at_truth["raw_mask"].item()
    for factor in (0.98, 0.9, 0.7, 0.5):
        shrunk = HandParameters(truth.rotation, truth.trans, truth.scale * factor, truth.betas, truth.pose)
        terms = reconstruction_losses(model.decoder(shrunk), batch, loss)
        assert terms["loss"].item() > previous_total
        assert terms["raw_mask"].item() >= previous_mask - 1e-6
        previous_total, previous_mask = terms["loss"].item(), terms["raw_mask"].item()
    with_reg = reconstruction_losses(model.decoder(_params(4, scale=truth.scale * 0.7, trans=truth.trans,
                                                           rotation=truth.rotation, betas=truth.betas,
                                                           pose=truth.pose)), batch, LossSettings.from_config(config))
    assert with_reg["loss"].item() > reconstruction_losses(model.decoder(truth), batch, LossSettings.from_config(config))["loss"].item()


@pytest.mark.parametrize("term", ["l2d", "l3d", "mask", "reg"])
def test_each_term_sends_gradients_to_the_encoder(toy_setup, term):
    hand, config, samples = toy_setup
    model = build_model(config, hand)
    batch = _collate(config, samples)
    batch["soft_mask"] = batch["soft_mask"] * 0.5  # nowhere saturated, so the mask term has a gradient
    from wildhands.net.samples import batch_input
    output = model(batch_input(batch, "2d", config))
    reconstruction_losses(output, batch, LossSettings.from_config(config))[term].backward()
    grad = model.encoder.backbone.conv1.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert all(p.grad is None for p in model.decoder.parameters())


def test_parameter_losses_vanish_at_the_truth_and_ignore_axis_angle_wraparound(toy_setup):
    hand, config, samples = toy_setup
    batch = _collate(config, samples)
    truth = _true_params(batch)
    weights = ParameterWeights.from_config(config)
    assert parameter_losses(truth, batch, weights)["loss"].item() == pytest.approx(0.0, abs=1e-6)
    aa = batch["global_orient"]
    angle = aa.norm(dim=-1, keepdim=True)
    wrapped = dict(batch, global_orient=aa * (1 - 2 * np.pi / angle))  # the same rotation
    assert parameter_losses(truth, wrapped, weights)["raw_rotation"].item() == pytest.approx(0.0, abs=1e-5)
    off = HandParameters(truth.rotation, truth.trans + 10.0, truth.scale * 1.1, truth.betas + 1, truth.pose - 1)
    terms = parameter_losses(off, batch, weights)
    assert terms["raw_trans"].item() == pytest.approx(2.0)          # 200 px^2 / 100
    assert terms["raw_scale"].item() == pytest.approx(np.log(1.1) ** 2, rel=1e-4)
    assert terms["raw_betas"].item() == pytest.approx(1.0) and terms["raw_pose"].item() == pytest.approx(1.0)
    no_params = dict(batch, has_params=torch.zeros(4))
    assert parameter_losses(off, no_params, weights)["loss"].item() == 0.0


def test_pretraining_keypoint_term_is_l3d_on_the_decoded_hand(toy_setup):
    hand, config, samples = toy_setup
    model = build_model(config, hand)
    batch = _collate(config, samples)
    truth = _true_params(batch)
    weights = replace(ParameterWeights.from_config(config), w_keypoints=50.0)
    out = model.decoder(truth)
    assert parameter_losses(truth, batch, weights, out, unit_m=0.1)["raw_keypoints"].item() == pytest.approx(0.0, abs=1e-8)
    out.keypoints_3d = out.keypoints_3d + torch.tensor([0.01, 0.0, 0.0])     # 1 cm = 0.1 decimetre everywhere
    batch["has_3d"][0] = 0                                                    # not counted
    terms = parameter_losses(truth, batch, weights, out, unit_m=0.1)
    assert terms["raw_keypoints"].item() == pytest.approx(0.01, rel=1e-4)
    assert terms["keypoints"].item() == pytest.approx(0.5, rel=1e-4)
    assert terms["loss"].item() == pytest.approx(0.5, rel=1e-3)              # the parameters are exact
    assert "keypoints" not in parameter_losses(truth, batch, ParameterWeights.from_config(config))    # off by default
    with pytest.raises(ValueError, match="decoded output"):
        parameter_losses(truth, batch, weights)


def test_keypoint_errors_in_mm_and_pixels(toy_setup):
    hand, config, samples = toy_setup
    model = build_model(config, hand)
    batch = _collate(config, samples)
    out = model.decoder(_true_params(batch))
    out.keypoints_3d = out.keypoints_3d + torch.tensor([0.003, 0.004, 0.0])
    out.keypoints_2d = out.keypoints_2d + torch.tensor([3.0, 4.0])
    batch["has_3d"][0] = 0
    errors = keypoint_errors(out, batch)
    assert np.isnan(errors["mpjpe_3d_mm"][0].item())
    np.testing.assert_allclose(errors["mpjpe_3d_mm"][1:].numpy(), 5.0, atol=1e-3)
    np.testing.assert_allclose(errors["error_2d_px"].numpy(), 5.0, atol=1e-3)
