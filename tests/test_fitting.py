import pickle

import numpy as np
import pytest
import torch
from conftest import toy_mano_arrays

from wildhands.config import MissingSetting, load_profile
from wildhands.fit.fit2d import Fit2D, FitOptions, FitSettings, fit_keypoints_2d
from wildhands.fit.lm import _jacobian
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import axis_angle_to_matrix, pinhole_project, weak_perspective_project
from wildhands.hand.hand_model import HandModel
from wildhands.hand.keypoint_model import KeypointModel


def _write(path, posedirs_scale=0.0):
    arrays = toy_mano_arrays()
    if posedirs_scale:
        arrays["posedirs"] = np.random.default_rng(1).normal(scale=posedirs_scale, size=arrays["posedirs"].shape)
    with open(path, "wb") as f:
        pickle.dump(arrays, f, protocol=2)
    return path


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    return HandModel(_write(tmp_path_factory.mktemp("hand") / "TOY_RIGHT.pkl"), dtype=torch.float64)


def _synthetic(model, count, seed=0):
    """Noise-free keypoints of random hands seen from random views, and their parameters."""
    g = torch.Generator().manual_seed(seed)
    betas = torch.randn(count, model.num_betas, generator=g, dtype=torch.float64).clamp(-2, 2)
    pose = 4 * torch.rand(count, model.num_pca_comps, generator=g, dtype=torch.float64) - 2
    axis = torch.nn.functional.normalize(torch.randn(count, 3, generator=g, dtype=torch.float64), dim=1)
    rotation = axis_angle_to_matrix(axis * np.pi * torch.rand(count, 1, generator=g, dtype=torch.float64))
    scale = 700 + 200 * torch.rand(count, generator=g, dtype=torch.float64)
    trans = 160 + 20 * torch.randn(count, 2, generator=g, dtype=torch.float64)
    keypoints = model(betas=betas, pose=pose).keypoints
    keypoints_2d = weak_perspective_project(keypoints, rotation, scale, trans, keypoints[:, kp.ROOT])
    params = {"rotation": rotation, "trans": trans, "scale": scale, "betas": betas, "pose": pose}
    return keypoints_2d, params


@pytest.mark.parametrize("posedirs_scale", [0.0, 1e-3])
def test_keypoint_model_equals_hand_model(tmp_path, posedirs_scale):
    model = HandModel(_write(tmp_path / "TOY_RIGHT.pkl", posedirs_scale), dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    betas = torch.randn(6, 10, generator=g, dtype=torch.float64)
    pose = 4 * torch.rand(6, 10, generator=g, dtype=torch.float64) - 2
    reduced = KeypointModel(model)
    assert (reduced(betas, pose) - model(betas=betas, pose=pose).keypoints).abs().max() < 1e-5
    # The 45 axis-angle path against the hand model without PCA.
    full = HandModel(model.path, num_pca_comps=45, dtype=torch.float64)
    offsets = 0.4 * torch.randn(6, 45, generator=g, dtype=torch.float64)
    expected = full(betas=betas, pose=offsets).keypoints
    assert (reduced.keypoints(betas, offsets + reduced.pose_mean) - expected).abs().max() < 1e-5


@pytest.mark.parametrize("pose_space", ["pca", "full"])
def test_analytic_jacobian_matches_autodiff(tmp_path, pose_space):
    model = HandModel(_write(tmp_path / "TOY_RIGHT.pkl", 1e-3), dtype=torch.float64)
    fit = Fit2D(model, alpha_beta=2.0, w_theta=0.5, pose_space=pose_space)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, fit.num_params, generator=g, dtype=torch.float64)
    x[:, 5] = 6.5
    x[0, fit.layout.betas.start] = 4.0          # beyond SHAPE_LIMIT: the shape range's rows
    x[1, fit.layout.betas.start + 1] = -3.5
    targets = 160 + 50 * torch.randn(3, 21, 2, generator=g, dtype=torch.float64)
    weights = torch.rand(3, 21, generator=g, dtype=torch.float64)
    r_auto, j_auto = _jacobian(lambda v: fit.residuals(v, targets, weights), x)
    r, j = fit.residuals_and_jacobian(x, targets, weights)
    torch.testing.assert_close(r, r_auto)
    torch.testing.assert_close(j, j_auto, rtol=1e-9, atol=1e-9)
    # With the prediction as a prior (the refinement's anchor): extra rows, same agreement.
    anchor = x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    scale = fit._anchor_scale({"rotation": 0.2, "betas": 0.5, "pose": 2.0}).expand(3, -1)
    r_auto, j_auto = _jacobian(lambda v: fit.residuals(v, targets, weights, anchor, scale), x)
    r_anchor, j_anchor = fit.residuals_and_jacobian(x, targets, weights, anchor, scale)
    assert r_anchor.shape[1] == r.shape[1] + 3 + model.num_betas + fit.num_pose
    torch.testing.assert_close(r_anchor, r_auto)
    torch.testing.assert_close(j_anchor, j_auto, rtol=1e-9, atol=1e-9)
    # With a detector's 3D keypoints (the refinement's 3D term): 63 more rows, same agreement.
    points = 0.05 * torch.randn(3, 21, 3, generator=g, dtype=torch.float64)
    sqrt_w = 1 / 0.015 * torch.rand(3, 21, generator=g, dtype=torch.float64)
    extra = dict(anchor=anchor, anchor_scale=scale, targets_3d=points, sqrt_weight_3d=sqrt_w)
    r_auto, j_auto = _jacobian(lambda v: fit.residuals(v, targets, weights, **extra), x)
    r_3d, j_3d = fit.residuals_and_jacobian(x, targets, weights, **extra)
    assert r_3d.shape[1] == r_anchor.shape[1] + 63
    torch.testing.assert_close(r_3d, r_auto)
    torch.testing.assert_close(j_3d, j_auto, rtol=1e-9, atol=1e-9)
    # Under a pinhole camera (the photo's, in crop pixels): the same rows, the same agreement.
    pinhole = torch.tensor([[900.0, 150.0, 170.0], [400.0, -300.0, 40.0], [2000.0, 160.0, 160.0]],
                           dtype=torch.float64)
    extra["pinhole"] = pinhole
    r_auto, j_auto = _jacobian(lambda v: fit.residuals(v, targets, weights, **extra), x)
    r_pin, j_pin = fit.residuals_and_jacobian(x, targets, weights, **extra)
    assert r_pin.shape == r_3d.shape and not torch.allclose(r_pin, r_3d)
    torch.testing.assert_close(r_pin, r_auto)
    torch.testing.assert_close(j_pin, j_auto, rtol=1e-9, atol=1e-9)


def test_fit_recovers_noise_free_keypoints(toy_model):
    keypoints_2d, truth = _synthetic(toy_model, 16)
    result = Fit2D(toy_model).fit(keypoints_2d, options=FitOptions(num_inits=4, iterations=30))
    assert (result.error_px < 1.0).sum() >= 14
    assert result.keypoints_2d.shape == (16, 21, 2) and result.keypoints_3d.shape == (16, 21, 3)
    assert result.to_vector().shape == (16, 26) and result.iterations.max() <= 30
    # The parameters reproduce the keypoints through the project's own model and camera.
    hand = toy_model(betas=result.betas, pose=result.pose).keypoints
    reprojected = weak_perspective_project(hand, result.rotation, result.scale, result.trans, hand[:, kp.ROOT])
    torch.testing.assert_close(reprojected, result.keypoints_2d)
    summary = result.summary()
    assert summary["hands"] == 16 and summary["median_error_px"] < 1.0


def test_pinhole_fit_recovers_a_near_hand_that_weak_perspective_cannot(toy_model):
    """Keypoints of hands 25-40 cm from a camera of focal 600 px (crop pixels): the pinhole fit from
    the true weak-perspective start explains them; the weak-perspective fit keeps pixels of error."""
    _, truth = _synthetic(toy_model, 6, seed=2)
    hand = toy_model(betas=truth["betas"], pose=truth["pose"]).keypoints
    cam = torch.einsum("bij,bkj->bki", truth["rotation"], hand - hand[:, kp.ROOT:kp.ROOT + 1])
    focal = 600.0
    truth["scale"] = focal / torch.linspace(0.25, 0.4, 6, dtype=torch.float64)     # root depth f / s
    pinhole = torch.tensor([[focal, 140.0, 180.0]], dtype=torch.float64).expand(6, 3)
    keypoints_2d = pinhole_project(cam, truth["scale"], truth["trans"], pinhole)
    weak = weak_perspective_project(hand, truth["rotation"], truth["scale"], truth["trans"], hand[:, kp.ROOT])
    assert (keypoints_2d - weak).norm(dim=-1).mean() > 3.0            # perspective shows at this range
    options = FitOptions(num_inits=1, iterations=30)
    fit = Fit2D(toy_model, alpha_beta=1e-6, w_theta=1e-6)
    pinned = fit.fit(keypoints_2d, init=truth, options=options, pinhole=pinhole)
    flat = fit.fit(keypoints_2d, init=truth, options=options)
    assert pinned.error_px.max() < 0.05 < 1.0 < flat.error_px.median()
    assert pinned.settings["projection"] == "pinhole" and flat.settings["projection"] == "weak perspective"
    torch.testing.assert_close(pinned.keypoints_2d, pinhole_project(pinned.keypoints_3d, pinned.scale, pinned.trans,
                                                                    pinhole))
    with pytest.raises(ValueError, match="pinhole"):
        fit.fit(keypoints_2d, init=truth, options=options, pinhole=pinhole[:2])


@pytest.mark.slow
def test_robust_fit_ignores_a_hallucinated_keypoint(toy_model):
    keypoints_2d, truth = _synthetic(toy_model, 8, seed=5)
    corrupted = keypoints_2d.clone()
    corrupted[:, 8] += torch.tensor([90.0, -70.0], dtype=corrupted.dtype)   # index fingertip far off
    fit = Fit2D(toy_model)
    squared = fit.fit(corrupted, options=FitOptions(num_inits=4, iterations=30))
    robust = fit.fit(corrupted, options=FitOptions(num_inits=4, iterations=30, robust=3.0, robust_rounds=3))
    others = [i for i in range(21) if i != 8]

    def error_on_others(result):   # px, to the true keypoints the corruption left alone
        return (result.keypoints_2d[:, others] - keypoints_2d[:, others]).norm(dim=-1).mean(1)
    assert error_on_others(robust).median() < 1.0 < error_on_others(squared).median()
    assert (robust.keypoints_2d[:, 8] - corrupted[:, 8]).norm(dim=-1).min() > 50    # the outlier is left out
    assert robust.settings["robust"] == 3.0 and "robust" not in squared.settings
    per_hand = np.array([3.0] * 4 + [0.0] * 4)
    mixed = fit.fit(corrupted, options=FitOptions(num_inits=4, iterations=30, robust=per_hand))
    assert error_on_others(mixed)[:4].median() < 1.0 < error_on_others(mixed)[4:].median()
    with pytest.raises(ValueError, match="one per hand"):
        fit.fit(corrupted, options=FitOptions(robust=np.ones(3)))
    with pytest.raises(ValueError, match="robust"):
        fit.fit(corrupted, options=FitOptions(robust=-1.0))


def test_zero_confidence_ignores_a_keypoint(toy_model):
    keypoints_2d, _ = _synthetic(toy_model, 3, seed=1)
    confidences = torch.ones(3, 21, dtype=torch.float64)
    confidences[:, 8] = 0
    wild = keypoints_2d.clone()
    wild[:, 8] = torch.tensor([5000.0, -3000.0])
    wild[0, 12] = float("nan")
    confidences[0, 12] = 0
    clean = keypoints_2d.clone()
    clean[0, 12] = 0.0
    fit = Fit2D(toy_model)
    a = fit.fit(wild, confidences, options=FitOptions(num_inits=4, iterations=15))
    b = fit.fit(clean, confidences, options=FitOptions(num_inits=4, iterations=15))
    torch.testing.assert_close(a.to_vector(), b.to_vector())
    assert torch.isfinite(a.error_px).all() and (a.error_px < 5).all()


def test_batch_of_one_and_profile_settings(toy_model):
    keypoints_2d, _ = _synthetic(toy_model, 1, seed=2)
    settings = FitSettings.from_config(load_profile("smoke")).replace(iterations=20)
    result = fit_keypoints_2d(toy_model, keypoints_2d.numpy(), settings)
    assert result.error_px.shape == (1,) and result.settings["num_inits"] == 2
    assert result.settings["iterations"] == 20


@pytest.mark.parametrize("pose_space", ["pca", "full"])
def test_refinement_from_a_given_start(toy_model, pose_space):
    keypoints_2d, truth = _synthetic(toy_model, 4, seed=4)
    g = torch.Generator().manual_seed(5)
    start = {k: v.clone() for k, v in truth.items()}
    start["pose"] = start["pose"] + 0.3 * torch.randn(start["pose"].shape, generator=g, dtype=torch.float64)
    start["trans"] = start["trans"] + 5
    start["rotation"] = axis_angle_to_matrix(torch.tensor([[0.1, -0.1, 0.05]], dtype=torch.float64)) @ start["rotation"]
    fit = Fit2D(toy_model, pose_space=pose_space)
    before = (fit.project(fit.pack(start)) - keypoints_2d).norm(dim=-1).mean(1)
    result = fit.fit(keypoints_2d, init=start, options=FitOptions(iterations=30))
    assert (result.start == -1).all()
    assert (result.error_px < 1.0).all() and (result.error_px < before).all()
    assert result.pose.shape == (4, 10 if pose_space == "pca" else 45)


def test_extra_starts_rescue_a_far_off_prediction(toy_model):
    keypoints_2d, truth = _synthetic(toy_model, 6, seed=8)
    flip = axis_angle_to_matrix(torch.tensor([[0.0, np.pi * 0.9, 0.0]], dtype=torch.float64))
    far_off = {**truth, "rotation": truth["rotation"] @ flip, "pose": torch.zeros_like(truth["pose"])}
    fit = Fit2D(toy_model)
    alone = fit.fit(keypoints_2d, init=far_off, options=FitOptions(iterations=30))
    rescued = fit.fit(keypoints_2d, init=far_off, options=FitOptions(iterations=30, extra_starts=8))
    assert (rescued.error_px <= alone.error_px + 1e-6).all()       # the prediction is one of the starts
    assert rescued.error_px.median() < 1.0 < alone.error_px.median()
    # An anchor stays on the prediction for every start: a tight one keeps the flipped hand.
    held = fit.fit(keypoints_2d, init=far_off, options=FitOptions(iterations=30, extra_starts=8),
                   anchor_sigma={"rotation": 1e-4, "betas": 1e-4, "pose": 1e-4})
    torch.testing.assert_close(held.rotation, far_off["rotation"], atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="extra_starts"):
        fit.fit(keypoints_2d, init=far_off, options=FitOptions(extra_starts=99))


def test_anchor_holds_a_prediction_against_noisy_keypoints(toy_model):
    keypoints_2d, truth = _synthetic(toy_model, 8, seed=6)
    g = torch.Generator().manual_seed(7)
    noisy = keypoints_2d + 12 * torch.randn(keypoints_2d.shape, generator=g, dtype=torch.float64)
    weights = torch.full((8, 21), 1 / 12 ** 2, dtype=torch.float64)   # each residual in units of its error
    fit = Fit2D(toy_model)

    def pose_error(result):
        return (result.pose - truth["pose"]).norm(dim=1).mean()

    thirty = FitOptions(iterations=30)
    free = fit.fit(noisy, weights, init=truth, options=thirty)
    held = fit.fit(noisy, weights, init=truth, options=thirty, anchor_sigma={"rotation": 0.1, "betas": 0.5, "pose": 0.5})
    tight = fit.fit(noisy, weights, init=truth, options=thirty,
                    anchor_sigma={"rotation": 1e-4, "betas": 1e-4, "pose": 1e-4})
    # A tight prior keeps the start; a moderate one lets the noise move the pose less than none.
    torch.testing.assert_close(tight.pose, truth["pose"], atol=1e-3, rtol=0)
    torch.testing.assert_close(tight.rotation, truth["rotation"], atol=1e-3, rtol=0)
    assert pose_error(held) < pose_error(free)
    assert free.error_px.mean() <= held.error_px.mean() <= tight.error_px.mean()
    assert held.settings["anchor_sigma"]["pose"] == 0.5
    with pytest.raises(ValueError, match="anchor_sigma: needs init"):
        fit.fit(noisy, weights, anchor_sigma={"rotation": 0.1, "betas": 0.5, "pose": 0.5})
    with pytest.raises(ValueError, match="anchor_sigma: expected keys"):
        fit.fit(noisy, weights, init=truth, anchor_sigma={"rotation": 0.1})
    with pytest.raises(ValueError, match="pose must be > 0"):
        fit.fit(noisy, weights, init=truth, anchor_sigma={"rotation": 0.1, "betas": 0.5, "pose": 0})


def test_3d_term_pulls_a_wrong_start_towards_the_detector_3d_keypoints(toy_model):
    """A prediction with the wrong rotation and pose, 2D keypoints too noisy to fix it, and the
    detector's 3D keypoints of the true hand (at another size): the 3D term brings it back."""
    keypoints_2d, truth = _synthetic(toy_model, 6, seed=11)
    g = torch.Generator().manual_seed(12)
    noisy = keypoints_2d + 15 * torch.randn(keypoints_2d.shape, generator=g, dtype=torch.float64)
    weights = torch.full((6, 21), 1 / 15 ** 2, dtype=torch.float64)
    turn = axis_angle_to_matrix(torch.tensor([[0.0, 0.5, 0.0]], dtype=torch.float64).expand(6, -1))
    wrong = {**truth, "rotation": turn @ truth["rotation"], "pose": truth["pose"] + 0.8}
    true_3d = torch.einsum("bij,bkj->bki", truth["rotation"],
                           (lambda k: k - k[:, :1])(toy_model(betas=truth["betas"], pose=truth["pose"]).keypoints))
    world = 1.3 * true_3d + 0.2          # another size and origin: the term is up to a scale, root-relative
    fit = Fit2D(toy_model)
    anchor = {"rotation": 0.4, "betas": 2.0, "pose": 4.0}

    def errors(result):
        joints = result.keypoints_3d
        return float((joints - true_3d).norm(dim=-1).mean() * 1000), float(torch.linalg.matrix_norm(
            result.rotation - truth["rotation"]).mean())

    thirty = FitOptions(iterations=30)
    alone = fit.fit(noisy, weights, init=wrong, options=thirty, anchor_sigma=anchor)
    with_3d = fit.fit(noisy, weights, init=wrong, options=thirty, anchor_sigma=anchor, keypoints_3d=world,
                      weights_3d=torch.full((6, 21), 1 / 0.01 ** 2, dtype=torch.float64))
    (mm_alone, rot_alone), (mm_3d, rot_3d) = errors(alone), errors(with_3d)
    assert mm_3d < 0.5 * mm_alone and rot_3d < 0.5 * rot_alone
    assert with_3d.settings["keypoints_3d"] is True
    # Zero 3D weights change nothing: the 2D term alone.
    none = fit.fit(noisy, weights, init=wrong, options=thirty, anchor_sigma=anchor, keypoints_3d=world,
                   weights_3d=torch.zeros(6, 21, dtype=torch.float64))
    torch.testing.assert_close(none.keypoints_3d, alone.keypoints_3d)
    with pytest.raises(ValueError, match="weights_3d: needed"):
        fit.fit(noisy, weights, init=wrong, keypoints_3d=world)
    with pytest.raises(ValueError, match="keypoints_3d: expected shape"):
        fit.fit(noisy, weights, init=wrong, keypoints_3d=world[:, :20], weights_3d=torch.ones(6, 21))


@pytest.mark.parametrize("keypoints,confidences,match", [
    (np.zeros((2, 20, 2)), None, "keypoints_2d: expected shape"),
    (np.zeros((2, 21, 3)), None, "keypoints_2d: expected shape"),
    (np.full((1, 21, 2), np.nan), None, "keypoints_2d: NaN"),
    (np.zeros((2, 21, 2)), np.ones((2, 20)), "confidences: expected shape"),
    (np.zeros((1, 21, 2)), np.eye(1, 21), "fewer than 2"),
    (np.zeros((1, 21, 2)), -np.ones((1, 21)), "confidences"),
])
def test_bad_input_is_a_clear_error(toy_model, keypoints, confidences, match):
    with pytest.raises(ValueError, match=match):
        Fit2D(toy_model).fit(keypoints, confidences)


def test_bad_settings_are_clear_errors(toy_model):
    keypoints_2d, _ = _synthetic(toy_model, 1)
    with pytest.raises(ValueError, match="num_inits"):
        Fit2D(toy_model).fit(keypoints_2d, options=FitOptions(num_inits=0))
    with pytest.raises(ValueError, match="pose_space"):
        Fit2D(toy_model, pose_space="euler")
    with pytest.raises(ValueError, match="unknown settings"):
        FitSettings.from_config({"fit2d": {"iters": 3}})
    with pytest.raises(MissingSetting, match=r"\[fit2d\] pose_space"):
        FitSettings.from_config({"fit2d": {"iterations": 3}})
    with pytest.raises(MissingSetting, match=r"\[fit2d\]"):
        FitSettings.from_config({})
    with pytest.raises(ValueError, match="unknown iters"):
        FitSettings.from_config(load_profile("quick")).replace(iters=3)
    with pytest.raises(ValueError, match="init: missing trans"):
        Fit2D(toy_model).fit(keypoints_2d, init={"rotation": torch.eye(3)[None]})


def test_refinement_weights_follow_the_expected_keypoint_error():
    from wildhands.data.augment import DetectorNoise
    from wildhands.fit.refine import RefineSettings

    config = load_profile("quick")
    settings = RefineSettings.from_config(config)
    sigma = DetectorNoise.from_config(config).keypoint_sigma_px
    detector = settings.keypoint_weights("detector", sigma_px=sigma)
    scaled = settings.keypoint_sigma_scale * sigma
    assert np.allclose(detector, 1.0 / scaled ** 2) and (detector < 1.0).all()   # MediaPipe: 4-16 px
    assert np.allclose(settings.keypoint_weights("labels"), 1.0)               # eq. 10 as the paper weights it
    loose = RefineSettings.from_config(load_profile("quick", {"refine.label_sigma_px": 2.0}))
    confidence = np.linspace(0, 1, 21)
    assert np.allclose(loose.keypoint_weights("labels", confidence), confidence / 4.0)
    with pytest.raises(ValueError, match="keypoint source"):
        settings.keypoint_weights("openpose")
    with pytest.raises(ValueError, match="sigma_px"):
        settings.keypoint_weights("detector")


def test_refinement_settings_come_from_the_profile():
    from wildhands.fit.refine import RefineSettings
    from wildhands.net.variants import variant_config

    config = load_profile("quick")
    refine = config["refine"]
    settings = RefineSettings.from_config(config)
    assert settings.anchor_sigma == {"rotation": refine["anchor_rotation_rad"], "betas": refine["anchor_betas"],
                                     "pose": refine["anchor_pose"]}
    assert RefineSettings.from_config(variant_config(config, "rgb")).anchor_sigma is None   # the quick RGB network
    options = settings.options_for("detector")
    assert (options.num_inits, options.robust, options.robust_rounds, options.extra_starts, options.iterations) == (
        1, refine["robust"], refine["robust_rounds"], refine["extra_starts"], refine["iterations"])
    assert options.robust > 0 and options.tolerance == config["fit2d"]["tolerance"]
    # A prediction that may be far off: more starts for the RGB network.
    assert RefineSettings.from_config(variant_config(config, "rgb")).options.extra_starts > 0
    assert settings.options_for("labels").robust == 0.0                # annotated keypoints: squared residuals
    # ... in one round, which takes the rounds' iterations
    assert settings.options_for("labels").iterations == refine["iterations"] * (1 + refine["robust_rounds"])
    assert settings.options_for(["labels", "detector"]).iterations == refine["iterations"]
    per_hand = settings.options_for(["detector", "labels", "detector"]).robust
    assert per_hand.tolist() == [refine["robust"], 0.0, refine["robust"]]
    # [refine] and [refine.with_3d] replace [fit2d]'s pose space and priors where they set them.
    assert settings.energy_for(False).pose_space == config["fit2d"]["pose_space"]
    assert settings.energy_for(True).pose_space == refine["with_3d"]["pose_space"]
    assert settings.energy_for(True).pose_std_floor == refine["with_3d"]["pose_std_floor"]
    fit_settings = settings.fit_settings(["detector"], with_3d=True)
    assert fit_settings.energy == settings.energy_with_3d and fit_settings.options.robust.tolist() == [refine["robust"]]
    with pytest.raises(ValueError, match="keypoint source"):
        settings.options_for(["openpose"])
    with pytest.raises(ValueError, match="robust"):
        RefineSettings.from_config(load_profile("quick", {"refine.robust": -2}))
    with pytest.raises(ValueError, match="anchor_pose"):
        RefineSettings.from_config({**config, "refine": {k: v for k, v in refine.items() if k != "anchor_pose"}})
    with pytest.raises(KeyError, match="'iterations' there"):                 # a misspelt or misplaced --set
        load_profile("quick", {"refine.with_3d.iterations": 3})
    with pytest.raises(ValueError, match=r"\[refine.with_3d\]: unknown settings iterations"):
        RefineSettings.from_config({**config, "refine": {**refine, "with_3d": {**refine["with_3d"], "iterations": 3}}})
    # the pose space and priors [refine] and [refine.with_3d] may override without listing them
    assert RefineSettings.from_config(load_profile("quick", {"refine.with_3d.w_theta": 0.5})).energy_with_3d.w_theta == 0.5
    with pytest.raises(MissingSetting, match=r"\[refine\] world_sigma_mm"):
        RefineSettings.from_config({**config, "refine": {k: v for k, v in refine.items() if k != "world_sigma_mm"}})
    with pytest.raises(MissingSetting, match=r"\[refine.with_3d\]"):
        RefineSettings.from_config({**config, "refine": {k: v for k, v in refine.items() if k != "with_3d"}})


@pytest.mark.slow
def test_real_photo_residuals_of_hands_the_model_made(tmp_path):
    """Labels made by the open hand model itself fit to near zero in both pose spaces; left hands
    are fitted through their mirror image."""
    import json

    from wildhands.eval.protocol import real_photo_residuals

    model = HandModel()
    generator = torch.Generator().manual_seed(3)
    pose = torch.rand(3, 10, generator=generator) * 2 - 1
    with torch.no_grad():
        out = model(betas=torch.zeros(3, 10), pose=pose)
    rotation = axis_angle_to_matrix(torch.tensor([[2.0, 0.3, 0.1], [1.4, -0.5, 0.4], [0.2, 2.2, 0.0]]))
    points = weak_perspective_project(out.keypoints, rotation, torch.full((3,), 900.0),
                                      torch.tensor([[400.0, 300.0]] * 3), out.keypoints[:, kp.ROOT]).numpy()
    entries = []
    for i, (p, side) in enumerate(zip(points, ("right", None, "left"))):
        if side == "left":
            p = p.copy()
            p[:, 0] = 1000.0 - p[:, 0]
        entries.append({"image": f"hand{i}.jpg", "side": side,
                        "keypoints_2d": np.concatenate([p, np.ones((21, 1))], 1).tolist()})
    (tmp_path / "labels.json").write_text(json.dumps(entries))
    config = load_profile("quick")
    for space in ("pca", "full"):
        result = real_photo_residuals(model, tmp_path / "labels.json", config, pose_space=space)
        assert result["hands"] == 3 and result["pose_space"] == space
        assert result["median_px"] < 0.5, (space, result["per_hand_median_px"])
        # Under weak perspective a mirrored hand projects as a turned one: the unlabelled side may go either way.
        assert result["side_used"]["hand0.jpg"] == "right" and result["side_used"]["hand2.jpg"] == "left"


def test_fit2d_baseline_weighs_keypoints_by_their_expected_error(toy_model):
    from wildhands.data.augment import DetectorNoise
    from wildhands.eval.protocol import evaluate_fit2d
    from wildhands.fit.refine import RefineSettings

    config = load_profile("smoke")
    keypoints_2d, truth = _synthetic(toy_model, 4, seed=8)
    joints = toy_model(betas=truth["betas"], pose=truth["pose"]).keypoints
    relative = joints - joints[:, kp.ROOT:kp.ROOT + 1]
    labels = {"keypoints_3d": torch.einsum("bij,bkj->bki", truth["rotation"], relative).numpy(),
              "keypoints_2d": keypoints_2d.numpy(), "visible": np.ones((4, 21)), "has_3d": np.ones(4)}
    weighted = evaluate_fit2d(toy_model, keypoints_2d.numpy(), labels, config)
    weights = RefineSettings.from_config(config).keypoint_weights(
        "detector", sigma_px=DetectorNoise.from_config(config).keypoint_sigma_px)
    direct = fit_keypoints_2d(toy_model, keypoints_2d, FitSettings.from_config(config), np.tile(weights, (4, 1)))
    np.testing.assert_allclose(weighted["raw"]["pred_keypoints_3d"], direct.keypoints_3d.numpy())
    uniform = evaluate_fit2d(toy_model, keypoints_2d.numpy(), labels, config, source=None)
    np.testing.assert_allclose(uniform["raw"]["pred_keypoints_3d"],
                               fit_keypoints_2d(toy_model, keypoints_2d, FitSettings.from_config(config)).keypoints_3d.numpy())
    assert uniform["summary"]["2d"]["mean_px"] < 2.0 and uniform["summary"]["3d"]["root"]["mean_mm"] >= 0


def test_keypoint_sigma_scale_weights_detector_keypoints_but_not_labels():
    from wildhands.config import apply_overrides, load_profile
    from wildhands.fit.refine import RefineSettings

    config = load_profile("smoke")
    sigma = np.linspace(4.0, 12.0, 21)
    base = RefineSettings.from_config(apply_overrides(config, {"refine.keypoint_sigma_scale": 1.0}))
    half = RefineSettings.from_config(apply_overrides(config, {"refine.keypoint_sigma_scale": 0.5}))
    np.testing.assert_allclose(half.keypoint_weights("detector", sigma_px=sigma),
                               4 * base.keypoint_weights("detector", sigma_px=sigma))
    np.testing.assert_allclose(half.keypoint_weights("labels"), base.keypoint_weights("labels"))
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="keypoint_sigma_scale"):
            RefineSettings.from_config(apply_overrides(config, {"refine.keypoint_sigma_scale": bad}))


def test_error_breakdown_puts_the_error_on_the_part_that_is_wrong(toy_model):
    from wildhands.eval.protocol import error_breakdown
    from wildhands.hand.camera import matrix_to_axis_angle

    _, params = _synthetic(toy_model, 6, seed=3)
    true = torch.cat([matrix_to_axis_angle(params["rotation"]), params["trans"], params["scale"][:, None],
                      params["betas"], params["pose"]], dim=1).numpy()
    exact = error_breakdown(toy_model, true, true)
    assert max(v for v in exact.values()) < 1e-3
    tilted = true.copy()
    spin = axis_angle_to_matrix(torch.tensor([[0.2, 0.0, 0.0]], dtype=torch.float64))   # about the camera x axis
    tilted[:, :3] = matrix_to_axis_angle(spin @ params["rotation"]).numpy()
    b = error_breakdown(toy_model, tilted, true)
    assert b["none"] > 5 and b["betas"] == pytest.approx(b["none"]) and b["pose"] == pytest.approx(b["none"])
    assert b["rotation"] < 1e-3 and b["rotation+pose"] < 1e-3
    assert b["rotation_deg"] == pytest.approx(np.degrees(0.2), rel=1e-4)
    assert b["rotation_out_of_plane_deg"] == pytest.approx(np.degrees(0.2), rel=1e-4) and b["rotation_in_plane_deg"] < 1e-6
    with pytest.raises(ValueError, match="pred_vectors"):
        error_breakdown(toy_model, true[:, :5], true)
