"""The predict contract: JSON fields, round trip to original pixels, left hands mirrored back,
several hands, and bad inputs that never stop the batch."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from wildhands.app.predict import Predictor, main, predict_paths
from wildhands.config import load_profile
from wildhands.hand.hand_model import HandModel
from wildhands.net.checkpoints import save_checkpoint
from wildhands.net.model import build_model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import pickle

    from conftest import toy_mano_arrays

    root = tmp_path_factory.mktemp("predict")
    model_path = root / "TOY_RIGHT.pkl"
    model_path.write_bytes(pickle.dumps(toy_mano_arrays(), protocol=2))
    config = load_profile("smoke", {"hand_model.path": str(model_path), "model.variant": "2d",
                                    "model.backbone": "resnet18", "model.input_size": 64})
    torch.manual_seed(0)
    model = build_model(config, HandModel(model_path))
    return save_checkpoint(root / "toy.pt", model=model, config=config, stage="finetune", step=0, half=True)


def _hand_keypoints(cx, cy, size=60.0):
    angles = np.linspace(-2.4, -0.7, 5)
    pts = [[cx, cy]]
    for a in angles:
        for j in range(1, 5):
            pts.append([cx + np.cos(a) * size * j / 4, cy + np.sin(a) * size * j / 4])
    return np.array(pts)


def _photo(tmp_path, name="photo.png", size=(240, 320)):
    image = np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / name)
    return tmp_path / name


def test_json_contract_round_trip_and_files(tmp_path, checkpoint):
    photo = _photo(tmp_path)
    hands = [_hand_keypoints(90, 150).tolist(), {"keypoints_2d": _hand_keypoints(230, 160).tolist(),
                                                 "handedness": "left"}]
    (tmp_path / "kp.json").write_text(json.dumps(hands))
    summary = predict_paths([photo], tmp_path / "out", checkpoint, keypoints=tmp_path / "kp.json", progress=False,
                            log=lambda *_: None)
    assert summary["processed"] == 1 and summary["hands"] == 2
    record = json.loads((tmp_path / "out" / "photo.json").read_text())
    assert [h["handedness"] for h in record["hands"]] == ["right", "left"]
    for hand in record["hands"]:
        assert np.shape(hand["keypoints_2d"]) == (21, 2) and np.shape(hand["joints_3d"]) == (21, 3)
        assert np.allclose(hand["joints_3d"][0], 0, atol=1e-6)  # root-relative
        for key in ("score", "crop_box", "vertices", "params", "camera", "method"):
            assert key in hand
    # Refined by the 2D fit, the reprojection comes near the given keypoints, in original pixels: nearer
    # than the untrained network's own (the toy hand's shape blend shapes move it by a millimetre, so
    # within fit2d.SHAPE_LIMIT it cannot bend to the fan of straight fingers exactly).
    predict_paths([photo], tmp_path / "raw", checkpoint, keypoints=tmp_path / "kp.json", progress=False,
                  log=lambda *_: None, refine=False)
    raw = json.loads((tmp_path / "raw" / "photo.json").read_text())
    for hand, network in zip(record["hands"], raw["hands"]):
        given = np.asarray(hands[0] if hand["handedness"] == "right" else hands[1]["keypoints_2d"])
        refined, alone = (np.median(np.linalg.norm(np.asarray(h["keypoints_2d"]) - given, axis=1))
                          for h in (hand, network))
        assert refined < 25 and refined < alone, (refined, alone)
    assert (tmp_path / "out" / "photo_overlay.png").is_file()
    assert sorted(p.name for p in (tmp_path / "out").glob("*.obj")) == ["photo_hand0.obj", "photo_hand1.obj"]


def test_left_hand_is_mirrored_back(tmp_path, checkpoint):
    image = np.random.default_rng(1).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    right = _hand_keypoints(120, 130)
    left = right.copy()
    left[:, 0] = image.shape[1] - 1 - left[:, 0]
    from wildhands.app.predict import HandInput

    predictor = Predictor(checkpoint, refine=False)
    (r,) = predictor.predict(image, [HandInput(right, np.ones(21), "right")])
    (l,) = predictor.predict(image[:, ::-1], [HandInput(left, np.ones(21), "left")])
    assert l.crop.mirrored and not r.crop.mirrored
    assert np.allclose(l.keypoints_2d[:, 0], image.shape[1] - 1 - r.keypoints_2d[:, 0], atol=1e-3)
    assert np.allclose(l.keypoints_2d[:, 1], r.keypoints_2d[:, 1], atol=1e-3)
    assert np.allclose(l.joints_3d[:, 0], -r.joints_3d[:, 0], atol=1e-5)
    assert np.allclose(l.joints_3d[:, 1:], r.joints_3d[:, 1:], atol=1e-5)


def test_a_hand_not_refined_is_turned_by_the_ray_to_it(checkpoint):
    # The network (or any weak-perspective fit) answers in its crop's view: an off-axis hand seen along
    # the ray to it. Its 3D and parameters are turned by that ray into the camera frame.
    from wildhands.app.predict import HandInput
    from wildhands.hand.camera import rotation_matrices
    from wildhands.hand.camera_space import default_intrinsics, intrinsics_from_focal

    image = np.random.default_rng(2).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    hands = [HandInput(_hand_keypoints(240, 150), np.ones(21), "right")]
    predictor = Predictor(checkpoint, refine=False)
    camera = default_intrinsics(300, 200)
    (turned,) = predictor.predict(image, hands, intrinsics=camera)
    (seen,) = predictor.predict(image, hands, intrinsics=intrinsics_from_focal(1e12, 300, 200))  # on the axis
    view = np.asarray(turned.camera["view_rotation"])
    middle = turned.keypoints_2d.mean(0) - [camera.cx, camera.cy]
    ray = np.append(middle / camera.focal, 1.0)
    assert np.allclose(view @ [0, 0, 1], ray / np.linalg.norm(ray), atol=1e-6)
    assert np.degrees(np.arccos(view[2, 2])) > 10                                  # well off the axis
    assert np.allclose(turned.keypoints_2d, seen.keypoints_2d, atol=1e-4)          # the crop's view is kept
    assert np.allclose(turned.joints_3d, seen.joints_3d @ view.T, atol=1e-5)
    assert np.allclose(rotation_matrices(turned.params["global_orient"]),
                       view @ rotation_matrices(seen.params["global_orient"]), atol=1e-5)
    assert "view_rotation" not in Predictor(checkpoint).predict(image, hands, intrinsics=camera)[0].camera


def test_bad_inputs_never_stop_the_batch(tmp_path, checkpoint):
    good = _photo(tmp_path, "good.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "dot.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "gray.png")
    Image.fromarray(np.zeros((64, 64, 4), np.uint8)).save(tmp_path / "rgba.png")
    nan = _hand_keypoints(100, 100)
    nan[:18] = np.nan
    (tmp_path / "kp.json").write_text(json.dumps({"good.png": [_hand_keypoints(100, 120).tolist()],
                                                  "gray.png": [nan.tolist()],
                                                  "rgba.png": [(_hand_keypoints(100, 100) + 1000).tolist()]}))
    out = tmp_path / "out"
    summary = predict_paths([tmp_path], out, checkpoint, keypoints=tmp_path / "kp.json", progress=False,
                            log=lambda *_: None)
    failed = {f["image"].split("/")[-1]: f["error"] for f in summary["failed"]}
    assert set(failed) == {"empty.jpg", "text.png", "dot.png", "gray.png", "rgba.png"}
    assert "empty" in failed["empty.jpg"] and "not an image" in failed["text.png"]
    assert "too small" in failed["dot.png"] and "keypoints" in failed["gray.png"]
    assert "inside" in failed["rgba.png"]
    assert summary["processed"] == 1 and json.loads((out / "good.json").read_text())["hands"]
    assert "error" in json.loads((out / "text.json").read_text())
    assert not list(out.glob(".*tmp"))  # nothing half-written
    # Exit code: 0 when something was processed, 1 when nothing could be.
    assert main([str(good), "--out", str(out), "--checkpoint", str(checkpoint),
                 "--keypoints", str(tmp_path / "kp.json")]) == 0
    assert main([str(tmp_path / "text.png"), "--out", str(out), "--checkpoint", str(checkpoint),
                 "--keypoints", str(tmp_path / "kp.json")]) == 1


def test_checkpoint_for_another_hand_model_is_refused(tmp_path, checkpoint):
    import pickle

    from conftest import toy_mano_arrays

    other = tmp_path / "OTHER.pkl"
    other.write_bytes(pickle.dumps(toy_mano_arrays(seed=3), protocol=2))
    with pytest.raises(Exception, match="run_all.sh|--checkpoint"):
        Predictor(checkpoint, hand_model=HandModel(other))


def test_fit2d_method_fits_the_given_keypoints(tmp_path):
    import pickle

    from conftest import toy_mano_arrays

    from wildhands.app.predict import HandInput

    path = tmp_path / "TOY_RIGHT.pkl"
    path.write_bytes(pickle.dumps(toy_mano_arrays(), protocol=2))
    model = HandModel(path)
    with torch.no_grad():
        target = model(pose=torch.full((1, 10), 0.3)).keypoints[0, :, :2].numpy() * 1500 + [150, 120]
    predictor = Predictor(method="fit2d", hand_model=model)
    (hand,) = predictor.predict(np.zeros((240, 300, 3), np.uint8), [HandInput(target, np.ones(21))])
    assert hand.method == "fit2d" and hand.fit_error_px < 2.0


def test_shipped_checkpoint_loads_against_the_current_hand_model():
    from wildhands.app.predict import DEFAULT_CHECKPOINT
    from wildhands.net.checkpoints import load_model

    assert DEFAULT_CHECKPOINT.is_file(), "the default 2D checkpoint must ship in params/checkpoints/"
    assert DEFAULT_CHECKPOINT.stat().st_size <= 15 * 1024 * 1024
    model, config = load_model(DEFAULT_CHECKPOINT, hand_model=HandModel())
    assert model.variant == "2d"


def test_checkpoints_take_the_inference_settings_of_their_profile_as_it_is_now():
    from wildhands.config import MissingSetting
    from wildhands.net.inference import InferenceSettings, current_inference_config
    from wildhands.net.variants import variant_config

    quick = load_profile("quick")
    for variant in ("2d", "rgb"):
        trained = variant_config(quick, variant)
        trained["refine"] = {"label_sigma_px": 3.0}          # as a checkpoint from an older profile holds it
        trained["fit2d"] = {"iterations": 1}
        current = current_inference_config(trained)
        assert current["refine"] == variant_config(quick, variant)["refine"]
        assert current["fit2d"] == quick["fit2d"] and current["model"] == trained["model"]
        assert InferenceSettings.for_checkpoint(trained) == InferenceSettings.from_config(variant_config(quick, variant))
    assert InferenceSettings.for_checkpoint(variant_config(quick, "2d")).refine.anchor_sigma is not None
    assert InferenceSettings.for_checkpoint(variant_config(quick, "rgb")).refine.anchor_sigma is None
    settings = InferenceSettings.for_checkpoint(variant_config(quick, "2d"), {"inference.quarter_turns": 2})
    assert settings.quarter_turns == 2 and settings.fit.options.iterations == quick["fit2d"]["iterations"]
    custom = {**variant_config(quick, "2d"), "profile": "my-lab-profile", "refine": {"label_sigma_px": 3.0}}
    assert current_inference_config(custom)["refine"] == {"label_sigma_px": 3.0}
    with pytest.raises(MissingSetting, match=r"\[refine\] \w+: missing from profile 'my-lab-profile'"):
        InferenceSettings.for_checkpoint(custom)
    with pytest.raises(ValueError, match="quarter_turns"):
        InferenceSettings.from_config(load_profile("quick", {"inference.quarter_turns": 3}))


def _detected(keypoints_2d, side="right", world=True):
    from wildhands.data.detector import Detection, tight_box

    rng = np.random.default_rng(1)
    world_m = (keypoints_2d - keypoints_2d[0]) / 600.0
    world_m = np.c_[world_m, 0.01 * rng.standard_normal(21)] if world else None
    return Detection(keypoints_2d, side, 0.9, tight_box(keypoints_2d), world_landmarks=world_m,
                     sigma_px=np.full(21, 3.0), passes={"first": keypoints_2d, "crop": keypoints_2d})


def test_detector_cues_reach_the_fit_and_the_json(tmp_path, checkpoint):
    from wildhands.app.predict import HandInput, write_outputs

    predictor = Predictor(checkpoint, detector=False)
    image = np.zeros((240, 320, 3), np.uint8)
    right = HandInput.from_detection(_detected(_hand_keypoints(90, 150)))
    left = HandInput.from_detection(_detected(_hand_keypoints(230, 160), side="left"))
    prepared = [predictor._prepare(image, hand, i) for i, hand in enumerate((right, left))]
    transforms = [p[0] for p in prepared]
    keypoints, usable = np.stack([p[2] for p in prepared]), np.stack([p[3] for p in prepared]) > 0
    term = predictor._world_term([right, left], transforms, keypoints, usable)
    # The network sees a left hand mirrored: so do its world landmarks (x flips, y and z stay).
    assert np.allclose(term["keypoints_3d"][0], right.world_landmarks)
    assert np.allclose(term["keypoints_3d"][1], left.world_landmarks * [-1, 1, 1])
    sigma_mm = predictor.inference.refine.world_sigma_mm
    assert np.allclose(term["weights_3d"], 1 / (sigma_mm / 1000) ** 2)
    # Under the photo's pinhole camera they are turned into its frame: each hand as seen along the ray
    # to its wrist, so the turn takes the optical axis onto that ray (both hands are off the axis).
    pinholes = predictor.crop_pinholes(image.shape, transforms, None)
    turned = predictor._world_term([right, left], transforms, keypoints, usable, pinholes)["keypoints_3d"]
    for i in range(2):
        ray = np.r_[(keypoints[i, 0] - pinholes[i, 1:]) / pinholes[i, 0], 1.0]
        turn = np.linalg.lstsq(term["keypoints_3d"][i], turned[i], rcond=None)[0].T
        assert np.allclose(turn @ [0, 0, 1], ray / np.linalg.norm(ray), atol=1e-6)
        assert np.allclose(np.linalg.norm(turned[i], axis=1), np.linalg.norm(term["keypoints_3d"][i], axis=1))
        assert np.degrees(np.arccos(turn[2, 2])) > 5
    camera = Predictor(checkpoint, detector=False, config_overrides={"refine.world_frame": "camera"})
    assert np.allclose(camera._world_term([right, left], transforms, keypoints, usable, pinholes)["keypoints_3d"],
                       term["keypoints_3d"])
    results = predictor.predict(image, hands=[right, left])
    record = write_outputs(tmp_path, "cues", image, results, predictor.hand_model.faces, {})
    block = record["hands"][1]["detector"]
    assert np.shape(block["world_landmarks_m"]) == (21, 3) and np.shape(block["sigma_px"]) == (21,)
    # and as the refinement takes them: turned into the camera frame (a rotation), as the image shows them
    raw, camera_frame = np.array(block["world_landmarks_m"]), np.array(block["world_landmarks_camera_m"])
    np.testing.assert_allclose(np.linalg.norm(camera_frame, axis=1), np.linalg.norm(raw, axis=1), atol=1e-5)
    assert not np.allclose(camera_frame, raw, atol=1e-4)
    assert set(block["passes"]) == {"first", "crop"}
    # Without world landmarks (or with the term off), the 2D term alone: no 3D term is passed.
    bare = HandInput.from_detection(_detected(_hand_keypoints(90, 150), world=False))
    assert predictor._world_term([bare], [prepared[0][0]], keypoints[:1], usable[:1]) == {}
    (result,) = predictor.predict(image, hands=[bare])
    assert np.isfinite(result.joints_3d).all() and result.extras["detector"]["world_landmarks_m"] is None
    off = Predictor(checkpoint, detector=False, config_overrides={"refine.world_sigma_mm": 0.0})
    assert off._world_term([right], [prepared[0][0]], keypoints[:1], usable[:1]) == {}
