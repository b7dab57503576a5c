"""Video: tracking, the temporal fit, the acceleration metric and the video pipeline's outputs."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pygltflib
import pytest
import torch

from wildhands.data.tracking import HandTracker, track_frames
from wildhands.eval.video_metrics import acceleration_error, mean_acceleration
from wildhands.fit.temporal import (OneEuroFilter, TemporalFit, TemporalSettings, TrackObservations, blend_windows,
                                    continuous_rotations, window_starts)

ANCHOR = {"rotation": 0.4, "betas": 2.0, "pose": 4.0}


def _hand(centre, size=60.0, seed=0):
    """A (21, 2) keypoint set of roughly a hand's spread around ``centre``."""
    rng = np.random.default_rng(seed)
    return np.asarray(centre, float) + rng.uniform(-size / 2, size / 2, (21, 2))


def test_two_crossing_hands_keep_their_tracks():
    # Two hands of the same side cross paths; at the crossing they nearly coincide.
    frames = []
    for t in range(30):
        a = _hand((100 + 10 * t, 200 + 1.0 * t), seed=1)
        b = _hand((390 - 10 * t, 210 - 1.0 * t), seed=2)
        frames.append([(a, "right", 0.9), (b, "right", 0.8)] if t % 2 else [(b, "right", 0.8), (a, "right", 0.9)])
    ids, tracks = track_frames(frames)
    first = [f[0] if t % 2 else f[1] for t, f in enumerate(ids)]
    second = [f[1] if t % 2 else f[0] for t, f in enumerate(ids)]
    assert len(set(first)) == 1 and len(set(second)) == 1 and first[0] != second[0]
    assert len(tracks) == 2 and all(len(t.frames) == 30 for t in tracks)


def test_track_ends_after_missing_frames_and_side_is_majority():
    tracker = HandTracker(max_missing=2)
    hand = _hand((200, 200))
    ids = [tracker.update(t, [hand], ["left" if t == 1 else "right"]) for t in range(3)]
    assert ids == [[0], [0], [0]] and tracker.tracks[0].side == "right"
    assert tracker.update(5, [hand], ["right"]) == [0]      # 2 frames missing: same track
    assert tracker.update(9, [hand], ["right"]) == [1]      # 3 frames missing: a new track
    with pytest.raises(ValueError, match="increasing"):
        tracker.update(9, [hand], ["right"])


def test_acceleration_error_definition():
    t = np.arange(10, dtype=float)
    gt = np.stack([t, 0 * t, 0 * t], -1)[:, None].repeat(21, 1)   # constant velocity: zero acceleration
    pred = gt.copy()
    pred[5, :, 0] += 1.0                                           # one frame off by 1: accelerations 1, 2, 1
    assert acceleration_error(pred, gt) == pytest.approx(4.0 / 8)
    assert mean_acceleration(gt) == pytest.approx(0.0)
    valid = np.ones(10, bool)
    valid[5] = False
    assert acceleration_error(pred, gt, valid) == pytest.approx(0.0)


def test_window_helpers():
    assert window_starts(10, 48, 12) == [0]
    starts = window_starts(100, 48, 12)
    assert starts[0] == 0 and starts[-1] == 52 and all(b - a <= 36 for a, b in zip(starts, starts[1:]))
    values = [np.full((48, 1), float(s)) for s in starts]
    blended = blend_windows(values, starts, 100, 12)
    assert blended[0, 0] == 0 and blended[-1, 0] == 52 and np.all(np.diff(blended[:, 0]) >= 0)
    turns = np.array([[0, 0, 3.1], [0, 0, -3.1]])                 # nearly the same rotation
    assert np.linalg.norm(np.diff(continuous_rotations(turns), axis=0)) < 0.1


def test_one_euro_filter_keeps_constant_and_smooths_noise():
    f = OneEuroFilter(30.0, 1.0, 0.0)
    assert np.allclose([f(np.array([2.0, -1.0])) for _ in range(5)], [2.0, -1.0])
    rng = np.random.default_rng(0)
    g = OneEuroFilter(30.0, 1.0, 0.0)
    out = np.array([g(v) for v in rng.normal(size=200)])
    assert out[20:].std() < 0.5


@pytest.fixture(scope="module")
def fit2d():
    from wildhands.config import load_profile
    from wildhands.fit.fit2d import Fit2D
    from wildhands.hand.hand_model import hand_model_from_config

    return Fit2D(hand_model_from_config(load_profile("smoke")))


def _track(fit2d, frames: int, moving: bool, noise_px: float, seed: int = 0):
    """Packed true parameters (T, P), their 2D keypoints with noise, and init = truth + noise."""
    rng = np.random.default_rng(seed)
    nb, n = fit2d.num_betas, fit2d.num_pose
    t = np.arange(frames)[:, None] / 30.0 * moving
    truth = np.zeros((frames, 6 + nb + n))
    truth[:, :3] = [0.3, 0.5, 0.1] + 0.3 * np.sin(2 * t + [0, 1, 2])
    truth[:, 3:5] = [160, 120] + 30 * np.sin(t + [0, 1])
    truth[:, 5] = np.log(900.0)
    truth[:, 6:6 + nb] = rng.normal(size=nb) * 0.5
    truth[:, 6 + nb:] = 0.8 * np.sin(2 * t + np.arange(n))
    keys = fit2d.project(torch.as_tensor(truth)).numpy() + rng.normal(size=(frames, 21, 2)) * noise_px
    init = truth + np.concatenate([rng.normal(size=(frames, 3)) * 0.05 * (noise_px > 0), np.zeros((frames, 3 + nb)),
                                   rng.normal(size=(frames, n)) * 0.3 * (noise_px > 0)], 1)
    return truth, keys, init


def _settings(**given) -> TemporalSettings:
    """The quick profile's ``[video]`` settings with ``given`` ones."""
    from wildhands.config import load_profile

    return TemporalSettings.from_config(load_profile("quick"), **given)


def test_shape_is_one_per_track_across_windows(fit2d):
    truth, keys, init = _track(fit2d, 40, True, 2.0)
    init[:, 6:6 + fit2d.num_betas] += np.random.default_rng(1).normal(size=(40, fit2d.num_betas))  # noisy shapes
    obs = TrackObservations(keys, np.full((40, 21), 0.25), init, np.ones(40, bool))
    settings = _settings(window=16, overlap=4, iterations=4, robust_rounds=0)
    fitted = TemporalFit(fit2d, settings, ANCHOR, robust=0.0).fit_tracks([obs], 30.0)[0]
    betas = fitted.params[:, 6:6 + fit2d.num_betas]
    assert np.ptp(betas, axis=0).max() == 0.0 and np.allclose(betas[0], fitted.betas)


def test_smoothing_leaves_a_static_hand_where_it_is(fit2d):
    # A still hand: the smoothness priors cost nothing there, so the fit is the one without them.
    truth, keys, init = _track(fit2d, 20, False, 0.0)
    obs = TrackObservations(keys, np.full((20, 21), 0.25), init, np.ones(20, bool))
    loose = {block: 1e9 for block in ("rotation", "translation", "log_scale", "pose")}
    results = []
    for sigmas in ({}, {"velocity_sigma": loose, "acceleration_sigma": loose}):
        settings = _settings(window=20, overlap=4, iterations=6, robust_rounds=1, **sigmas)
        fitted = TemporalFit(fit2d, settings, ANCHOR, robust=3.0).fit_tracks([obs], 30.0)[0]
        results.append(fit2d._keypoints_3d(torch.as_tensor(fitted.params)).numpy())
        projected = fit2d.project(torch.as_tensor(fitted.params)).numpy()
        assert np.linalg.norm(projected - keys, axis=-1).mean() < 1.0               # on its keypoints (px)
    smoothed, unsmoothed = results
    assert np.abs(np.diff(smoothed, axis=0)).max() < 1e-5                           # still
    assert np.abs(smoothed - unsmoothed).max() < 1e-4                               # where it was (0.1 mm)


# ----------------------------------------------------------------------------- the video pipeline

@pytest.fixture(scope="module")
def clip():
    from wildhands.config import load_profile
    from wildhands.data.synthetic_video import render_video
    from wildhands.hand.hand_model import hand_model_from_config

    config = load_profile("smoke")
    return render_video(hand_model_from_config(config), config, frames=12, width=160, height=120, side="left")


def _frame_count(path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


@pytest.mark.parametrize("mode", ["offline", "online"])
def test_video_outputs_and_overlay_frame_count(tmp_path, clip, mode):
    from wildhands.app.video import KnownKeypoints, predict_video

    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (160, 120))
    for frame in clip.frames:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    per_frame = [k if t != 4 else None for t, k in enumerate(clip.keypoints_2d)]
    summary = predict_video(path, tmp_path / "out", mode=mode, detector=KnownKeypoints(per_frame, "left"),
                            progress=False, export="glb")
    lines = [json.loads(line) for line in (tmp_path / "out" / "clip.jsonl").read_text().splitlines()]
    assert len(lines) == _frame_count(path) == _frame_count(tmp_path / "out" / "clip_overlay.mp4") == 12
    assert lines[4]["hands"] == [] and lines[4]["message"] == "no hand found"
    hands = [line["hands"][0] for line in lines if line["hands"]]
    assert len(hands) == 11 and {h["track_id"] for h in hands} == {0} and hands[0]["handedness"] == "left"
    assert "translation_m" in hands[0] and "camera_intrinsics" in lines[0]     # placed in the camera, as photos
    track = np.load(tmp_path / "out" / "clip_track0.npz")
    assert track["joints_3d"].shape == (11, 21, 3) and track["vertices"].shape[0] == 11
    if mode == "offline":
        assert np.ptp(track["betas"], axis=0).max() < 1e-6
    assert summary["frames"] == 12 and summary["tracks"] == 1
    animated = pygltflib.GLTF2().load(str(summary["glb"]))            # --export glb: the track animated
    assert len(animated.animations) == 1 and len(animated.skins) == 1 and animated.cameras[0].perspective


def test_sequence_with_a_corrupt_frame_and_no_hands(tmp_path, clip):
    from wildhands.app.video import KnownKeypoints, predict_video

    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(clip.frames[:6]):
        cv2.imwrite(str(folder / f"frame_{t + 1:04d}.png"), np.ascontiguousarray(frame[..., ::-1]))
    (folder / "frame_0003.png").write_bytes(b"not a png at all")
    keys = [clip.keypoints_2d[t] for t in range(6) if t != 2]      # the detector never sees the corrupt frame
    keys[3] = None                                                  # frame 5: no hand
    summary = predict_video(folder, tmp_path / "out", sequence=True, detector=KnownKeypoints(keys, "left"),
                            progress=False)
    lines = [json.loads(line) for line in (tmp_path / "out" / "frames.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(6))
    assert "frame_0003.png" in lines[2]["error"] and lines[2]["hands"] == []
    assert lines[4]["hands"] == [] and all(len(lines[t]["hands"]) == 1 for t in (0, 1, 3, 5))
    assert _frame_count(tmp_path / "out" / "frames_overlay.mp4") == 6
    assert summary["failed_frames"] == 1


def test_predict_dispatches_videos():
    from wildhands.app.video import wants_video

    assert wants_video(["clip.MP4", "--out", "x"]) and wants_video(["frames/", "--sequence", "--out", "x"])
    assert not wants_video(["photo.jpg", "photos/", "--out", "x"])


def test_tracks_with_world_landmarks_are_fitted_in_the_45d_space(fit2d):
    # The per-photo refinement's space for such hands ([refine.with_3d]): 45 joint angles, priors in rad/s.
    from wildhands.fit.fit2d import Fit2D
    from wildhands.fit.temporal import prior_scales

    full = Fit2D(_smoke_hand_model(), pose_space="full", pose_std_floor=0.2)
    truth, keys, init = _track(fit2d, 12, True, 1.0)
    world = fit2d._keypoints_3d(torch.as_tensor(truth)).numpy()
    obs = TrackObservations(keys, np.full((12, 21), 0.25), init, np.ones(12, bool), world, np.full((12, 21), 1e4))
    settings = _settings(window=12, overlap=4, iterations=4, robust_rounds=0)
    fitted = TemporalFit(full, settings, ANCHOR, robust=0.0).fit_tracks([obs], 30.0)[0]
    assert fitted.params.shape == (12, 6 + fit2d.num_betas + 45)              # PCA init taken into the 45 angles
    assert np.linalg.norm(full.project(torch.as_tensor(fitted.params)).numpy() - keys, axis=-1).mean() < 3.0
    inv_v, inv_a = prior_scales(settings, 30.0, 900.0, 45, joint_angles=True)
    assert np.allclose(inv_v[6:], 30.0 / settings.angle_velocity_sigma)
    assert np.allclose(inv_a[6:], 900.0 / settings.angle_acceleration_sigma)
    with pytest.raises(ValueError, match="angle_velocity_sigma"):
        _settings(angle_velocity_sigma=0.0)


def test_a_track_under_the_videos_pinhole_camera(fit2d):
    # An off-axis hand drawn by a pinhole camera (its root 0.33 m away, about 25 degrees off the axis):
    # fitted under that camera, the track lies on its keypoints and keeps its 3D; the weak-perspective
    # camera can do neither, reading the view along the ray as a turn of the hand.
    truth, _, init = _track(fit2d, 12, True, 1.0)
    pinhole = np.tile([300.0, 20.0, 10.0], (12, 1))
    keys = fit2d.project(torch.as_tensor(truth), None, torch.as_tensor(pinhole)).numpy()
    true_3d = fit2d._keypoints_3d(torch.as_tensor(truth)).numpy()
    settings = _settings(window=12, overlap=4, iterations=8, robust_rounds=0)
    reprojection, error_3d = {}, {}
    for name, camera in (("pinhole", pinhole), ("weak", None)):
        obs = TrackObservations(keys, np.full((12, 21), 0.25), init, np.ones(12, bool), pinhole=camera)
        x = torch.as_tensor(TemporalFit(fit2d, settings, ANCHOR, robust=0.0).fit_tracks([obs], 30.0)[0].params)
        projected = fit2d.project(x, None, None if camera is None else torch.as_tensor(camera)).numpy()
        reprojection[name] = np.linalg.norm(projected - keys, axis=-1).mean()
        error_3d[name] = np.linalg.norm(fit2d._keypoints_3d(x).numpy() - true_3d, axis=-1).mean()
    assert reprojection["pinhole"] < 1.0 < reprojection["weak"]
    assert error_3d["pinhole"] < 0.004 and error_3d["pinhole"] < error_3d["weak"] / 2
    with pytest.raises(ValueError, match="pinhole"):
        TemporalFit(fit2d, settings, ANCHOR).fit_tracks(
            [TrackObservations(keys, np.full((12, 21), 0.25), init, np.ones(12, bool), pinhole=pinhole[:5])], 30.0)


def _smoke_hand_model():
    from wildhands.config import load_profile
    from wildhands.hand.hand_model import hand_model_from_config

    return hand_model_from_config(load_profile("smoke"))


def test_offline_video_with_world_landmarks_uses_the_45d_pose(tmp_path, clip):
    from wildhands.app.video import KnownKeypoints, predict_video

    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(clip.frames[:6]):
        cv2.imwrite(str(folder / f"frame_{t + 1:04d}.png"), np.ascontiguousarray(frame[..., ::-1]))
    world = clip.keypoints_3d[:6] - clip.keypoints_3d[:6, :1]
    summary = predict_video(folder, tmp_path / "out", sequence=True, progress=False, export="glb",
                            detector=KnownKeypoints(list(clip.keypoints_2d[:6]), "left", world=world))
    lines = [json.loads(line) for line in (tmp_path / "out" / "frames.jsonl").read_text().splitlines()]
    assert all(line["hands"][0]["params"]["pose_space"] == "full" for line in lines)
    assert np.load(tmp_path / "out" / "frames_track0.npz")["pose"].shape == (6, 45)
    assert len(pygltflib.GLTF2().load(str(summary["glb"])).animations) == 1     # the 45-D track animated


def test_a_tracks_world_landmarks_are_turned_into_the_videos_camera_frame():
    from wildhands.app.predict import HandInput
    from wildhands.app.video import HandEntry, track_observations
    from wildhands.config import load_profile
    from wildhands.data.detection import Detection, tight_box
    from wildhands.fit.refine import RefineSettings
    from wildhands.hand.camera_space import Intrinsics

    rng = np.random.default_rng(0)
    camera = Intrinsics.centred(500.0, 640, 480, "flag")
    entries = []
    for t, x in enumerate((319.5, 600.0)):           # the wrist on the optical axis, then far to its right
        keys = np.c_[x + 30 * rng.random(21), 239.5 + 30 * rng.random(21)]
        keys[0] = (x, 239.5)
        world = 0.05 * rng.standard_normal((21, 3))
        hand = HandInput.from_detection(Detection(keys, "left", 0.9, tight_box(keys), world_landmarks=world))
        entries.append((t, HandEntry(0, hand, 640)))
    refine = RefineSettings.from_config(load_profile("quick"))
    args = (entries, 0, 1, True, np.full(21, 4.0), 0.025, 26)
    plain = track_observations(*args, camera=camera)
    turned = track_observations(*args, camera=camera, refine=refine)
    # a left hand's landmarks are mirrored with its frames, then turned by the ray through its wrist
    np.testing.assert_allclose(plain.world[0], entries[0][1].hand.world_landmarks * [-1, 1, 1])
    np.testing.assert_allclose(turned.world[0], plain.world[0], atol=1e-9)
    assert not np.allclose(turned.world[1], plain.world[1], atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(turned.world[1], axis=1), np.linalg.norm(plain.world[1], axis=1))
    unknown = track_observations(*args, camera=None, refine=refine)   # no lens known: as they are
    np.testing.assert_allclose(unknown.world, plain.world)
    # the weak camera fits each frame's view along the ray to the hand's middle, which its results are
    # turned by: the landmarks go into that view
    from dataclasses import replace

    from wildhands.hand.camera import world_landmarks_in_crop_view
    weak = track_observations(*args, camera=None, refine=replace(refine, projection="weak"), view=camera)
    assert weak.pinhole is None
    lens = np.tile([500.0, 639 - camera.cx, camera.cy], (2, 1))
    np.testing.assert_allclose(weak.world, world_landmarks_in_crop_view(plain.world, plain.keypoints_2d, lens))
