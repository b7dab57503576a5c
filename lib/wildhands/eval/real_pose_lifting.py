"""Lifting real hand poses: a trained network and its refinement on captured poses it never saw, at random views.

This module owns the real-pose lifting benchmark (issue 16, step 5): DexYCB's captured poses
(``data.datasets.real_poses``; DexYCB: Chao et al., CVPR 2021, CC BY-NC 4.0), the test subjects
(09-10) for reports, seen from uniformly random views and framed as 2.2 l crops (``views``), are
given to a checkpoint's network as exact keypoints (the refinement then weighs them as annotated
labels, ``[refine] label_sigma_px``) or as detector-like ones (``inputs.DetectorNoise``, the
measured MediaPipe errors); the refinement then runs as each of ``REFINEMENTS`` says, with or
without a 3D term towards simulated world landmarks (``data.augment.WorldLandmarkNoise``: a turned,
rescaled hand with bent bones, whose defaults reproduce the root, root + scale and Procrustes
errors of MediaPipe's world landmarks on held-out real photos, issue 15). ``score``: root-aligned, root + scale
aligned and Procrustes 3D errors (mm), the rotation error (degrees: the angle of the rotation that
best aligns the predicted root-relative joints with the true ones, Kabsch) and the 2D error (px at
320) against the true hands. ``gesture_pose_views``: the same views of gestures from the open hand's
anatomical pose corpus instead, hands that grasp nothing. ``benchmarks/bench_refinement_real_poses.py``
and notebook 04 run it.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch

from wildhands.config import apply_overrides, setting
from wildhands.data.augment import DetectorNoise, WorldLandmarkNoise, articulated_keypoints, world_landmarks
from wildhands.data.datasets.real_poses import load_real_poses
from wildhands.data.synthetic import place_in_crop, random_rotation
from wildhands.eval.metrics import hand_errors_3d
from wildhands.eval.protocol import split_vector
from wildhands.fit.fit2d import Fit2D
from wildhands.fit.fit3d import kabsch_rotation
from wildhands.fit.refine import RefineSettings
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import WORLD_VIEW_KEYPOINT, ray_rotation, ray_view_to_camera, world_landmarks_in_camera
from wildhands.hand.hand_model import load_mano_arrays
from wildhands.hand.keypoint_model import KeypointModel
from wildhands.hand.open_hand import synthetic_pose_corpus
from wildhands.net.train import predict_dataset

ALIGNMENTS = ("root", "root_scale", "procrustes")
KEYPOINTS = ("exact", "detector")           # the network's input: the true keypoints, or detector-like ones
# -> RefineSettings' keypoint source; "articulated": detector-like errors shaped as a hand's (ArticulatedNoise)
KEYPOINT_SOURCE = {"detector": "detector", "exact": "labels", "articulated": "detector"}
CREDIT = "DexYCB: Chao et al., CVPR 2021, CC BY-NC 4.0"
LANDMARKS = "simulated world landmarks"
# name -> (overrides of the refinement settings, with the 3D term)
REFINEMENTS = {
    "10-D, no 3D term": ({}, False),
    "10-D + 3D term": ({"refine.with_3d.pose_space": "pca"}, True),
    "45-D, no 3D term": ({"refine.pose_space": "full", "refine.pose_std_floor": 0.2}, False),
    "profile (with_3d) + 3D term": ({}, True),
}
PROFILE_REFINEMENT = "profile (with_3d) + 3D term"
TURNED_NETWORK = "network, turned by the ray"   # photographed views: predict's output without the refinement


# The field of the default lens (hand.camera_space.DEFAULT_FOCAL_35MM, 26 mm in 35 mm terms) as tangents
# of the half-angles across a 4:3 photo: where perspective views put a hand's root.
FIELD_TANGENTS = (0.69, 0.52)


def views(joints: np.ndarray, rng, world_noise: WorldLandmarkNoise = WorldLandmarkNoise(), depth_m=None):
    """``(samples, worlds)``: labels of each (21, 3) pose at a random view in a 2.2 l crop (the
    samples ``predict_dataset`` reads), and (N, 21, 3) simulated root-relative world landmarks.

    ``depth_m`` (near, far): photographed by a pinhole camera instead of the weak-perspective one, the
    root ``depth_m`` away (uniform) anywhere in the default lens's field (``FIELD_TANGENTS``), framed as
    ``place_in_crop`` frames weak-perspective views; each sample then has ``pinhole`` (3,): the camera in
    its crop's pixels (focal, principal point), what ``Fit2D.fit`` ``pinhole`` takes, and its world
    landmarks show the hand as seen along the ray to it, as MediaPipe's do (``camera.WORLD_VIEW_KEYPOINT``)."""
    samples, worlds = [], []
    for hand in joints:
        camera = hand @ random_rotation(rng).T
        sample = {"keypoints_3d": camera.astype(np.float32), "visible": np.ones(21, np.float32),
                  "has_3d": np.float32(1)}
        seen = camera - camera[kp.ROOT]
        if depth_m is None:
            scale, trans = place_in_crop(camera, rng, 320, 2.2)
            sample["keypoints_2d"] = (scale * camera[:, :2] + trans).astype(np.float32)
        else:
            sample["keypoints_2d"], sample["pinhole"] = _photographed(seen, rng, depth_m)
            anchor = sample["keypoints_2d"][None, WORLD_VIEW_KEYPOINT]
            seen = ray_view_to_camera(seen[None], anchor, sample["pinhole"][None], inverse=True)[0]
        samples.append(sample)
        worlds.append(world_landmarks(seen, rng, world_noise))
    return samples, np.stack(worlds)


def landmarks_in_camera(samples, worlds) -> np.ndarray:
    """(N, 21, 3) the simulated world landmarks of ``views`` in the camera frame (photographed views'
    turned by the ray through their true wrist): what a refinement that turns them sees."""
    if "pinhole" not in samples[0]:
        return np.asarray(worlds, np.float64)
    return world_landmarks_in_camera(worlds, np.stack([s["keypoints_2d"] for s in samples]),
                                     np.stack([s["pinhole"] for s in samples]))


def _photographed(root_relative: np.ndarray, rng, depth_m) -> tuple[np.ndarray, np.ndarray]:
    """Crop keypoints (21, 2) and the crop's pinhole (3,) of a hand whose root is ``depth_m`` away."""
    depth = rng.uniform(*depth_m)
    root = np.array([rng.uniform(-1, 1) * FIELD_TANGENTS[0], rng.uniform(-1, 1) * FIELD_TANGENTS[1], 1.0]) * depth
    points = root_relative + root
    pixels = points[:, :2] / points[:, 2:].clip(min=1e-3)                 # focal 1: the photo's own units
    # place_in_crop's framing of those pixels (their box 320 / 2.2 wide, jittered and off-centre)
    zoom, offset = place_in_crop(np.c_[pixels, np.zeros(len(pixels))], rng, 320, 2.2)
    return ((zoom * pixels + offset).astype(np.float32),
            np.array([zoom, *offset], np.float32))                          # focal zoom, principal point 0 -> offset


def real_pose_views(split: str = "test", count: int | None = 300, seed: int = 0,
                    world_noise: WorldLandmarkNoise = WorldLandmarkNoise(), path=None, depth_m=None):
    """``views`` of ``count`` poses of a DexYCB ``split`` (evenly spaced; None: all), drawn from ``seed``;
    ``path``: the file (None: ``default_real_poses_path``; a missing one raises ``DatasetNotFound``);
    ``depth_m`` as ``views``'."""
    poses = load_real_poses(split, path).subsample(count)
    return views(poses.joints, np.random.default_rng(seed), world_noise, depth_m)


def gesture_pose_views(hand_model, count: int = 300, seed: int = 0,
                       world_noise: WorldLandmarkNoise = WorldLandmarkNoise(), depth_m=None):
    """``views`` of ``count`` poses outside the captured grasps: the open hand builder's anatomical
    corpus (``open_hand.synthetic_pose_corpus``: named gestures and synergy samples within the
    published joint ranges, open and spread hands among them), posed on ``hand_model`` with shapes
    drawn from the unit normal (clipped at 2). DexYCB's poses are grasps, the corpus most of the pose
    space is learnt from; these show how the priors fare on hands that grasp nothing. Needs the open
    hand model (the corpus' angles are in its joint frames)."""
    if "pose_prior" not in load_mano_arrays(hand_model.path):
        raise ValueError(f"gesture poses: {hand_model.path} is not the open hand model, whose joint frames the "
                         "corpus' angles are in; use the DexYCB poses")
    corpus, _, _ = synthetic_pose_corpus(seed)
    rng = np.random.default_rng([seed, 11])
    poses = corpus[rng.choice(len(corpus), min(count, len(corpus)), replace=False)]
    betas = np.clip(rng.standard_normal((len(poses), hand_model.num_betas)), -2, 2)
    with torch.no_grad():
        joints = KeypointModel(hand_model).keypoints(torch.as_tensor(betas), torch.as_tensor(poses)).numpy()
    return views(joints, rng, world_noise, depth_m)


def rotation_errors_deg(pred, truth) -> np.ndarray:
    """(N,) degrees: the angle of the rotation best aligning (Kabsch, about the root) predicted
    (N, 21, 3) root-relative joints with the true ones: the global rotation error, pose aside."""
    pred, truth = (torch.as_tensor(np.asarray(a, np.float64)) for a in (pred, truth))
    rotation = kabsch_rotation(pred - pred[:, :1], truth - truth[:, :1])
    cosine = ((rotation.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)
    return np.degrees(torch.arccos(cosine).numpy())


def score(k3d, k2d, samples) -> dict:
    """Mean 3D errors per alignment (mm), the median and mean rotation error (degrees) and the mean
    2D error (px at 320) of predicted (N, 21, 3) and (N, 21, 2) keypoints against ``samples``."""
    errors = [hand_errors_3d(a, s["keypoints_3d"], ALIGNMENTS) for a, s in zip(k3d, samples)]
    truth_2d = np.stack([s["keypoints_2d"] for s in samples])
    rotation = rotation_errors_deg(k3d, np.stack([s["keypoints_3d"] for s in samples]))
    return {**{a: float(np.mean([e[a] for e in errors])) for a in ALIGNMENTS},
            "rotation_deg_median": float(np.median(rotation)), "rotation_deg_mean": float(rotation.mean()),
            "2d_px": float(np.linalg.norm(k2d - truth_2d, axis=-1).mean())}


def landmark_scores(samples, worlds) -> dict:
    """``score`` of the simulated world landmarks themselves, in the camera frame (``landmarks_in_camera``;
    3D only: they have no 2D)."""
    row = score(landmarks_in_camera(samples, worlds), np.stack([s["keypoints_2d"] for s in samples]), samples)
    row["2d_px"] = float("nan")
    return row


class Views(torch.utils.data.Dataset):
    """The labelled views as the data set ``predict_dataset`` reads; with ``worlds`` (N, 21, 3), each
    with its simulated world landmarks, the depth cue a depth variant reads (``samples.depth_cue``)."""

    def __init__(self, samples: list[dict], worlds=None):
        if worlds is not None and len(worlds) != len(samples):
            raise ValueError(f"worlds: expected world landmarks for each of the {len(samples)} views, "
                             f"got {len(worlds)}")
        self.samples, self.worlds = samples, worlds

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        if self.worlds is None:
            return self.samples[i]
        return {**self.samples[i], "world_landmarks": np.asarray(self.worlds[i], np.float32)}


def _turned_by_ray(keypoints_3d, keypoints_2d, cameras) -> np.ndarray:
    """(N, 21, 3) hands fitted in their crops' view turned into the camera frame about their roots, as
    predict turns them: by the ray through their (N, 21, 2) keypoints' centroid of the crops' ``cameras``."""
    turns = ray_rotation(np.asarray(keypoints_2d, np.float64).mean(1), cameras)
    roots = keypoints_3d[:, kp.ROOT:kp.ROOT + 1]
    return np.einsum("nij,nkj->nki", turns, keypoints_3d - roots) + roots


def evaluate(model, config: dict, samples, worlds, keypoints: str, extra: dict | None = None,
             refinements: dict | None = REFINEMENTS, focal_scale: float = 1.0) -> dict:
    """``{row: score}`` of a trained 2D-input network: "network" and each of ``refinements`` (name ->
    (overrides, with the 3D term), as ``REFINEMENTS``; None or empty: the network alone), from
    ``keypoints`` "detector" (detector-like noise), "articulated" (detector-like errors shaped as a
    plausible hand's, ``data.augment.ArticulatedNoise``, as MediaPipe's are) or "exact" (the true
    keypoints). ``config``: the
    settings the prediction and the refinements read (``current_inference_config`` of the checkpoint's,
    or a profile's); ``extra``: overrides of every refinement. The network's row adds ``input_2d_px``
    (the 2D error of the keypoints it was given: the output's should be lower), refined rows
    ``ms_per_hand``. Samples photographed by a pinhole camera (``views`` ``depth_m``) are refined under it
    where ``[refine] projection`` is "pinhole", its focal length times ``focal_scale`` (a lens guessed
    wrong); under "weak" their fits are turned by the ray to them, as ``predict`` turns them."""
    source = KEYPOINT_SOURCE[keypoints]
    given = samples
    if keypoints == "articulated":      # the network is given these keypoints as they are
        rng = np.random.default_rng([int(setting(config, "", "seed")), 17])
        noise = replace(DetectorNoise.from_config(config), clean_probability=0.0)
        given = [{**s, "keypoints_2d": articulated_keypoints(s["keypoints_2d"], rng, noise).astype(np.float32)}
                 for s in samples]
    # A depth variant reads the world landmarks the 3D term is given; the others never look at them.
    pred = predict_dataset(model, Views(given, worlds), config, noise=keypoints == "detector")
    truth_2d = np.stack([s["keypoints_2d"] for s in samples])
    rows = {"network": {**score(pred["pred_keypoints_3d"], pred["pred_keypoints_2d"], samples),
                        "input_2d_px": float(np.linalg.norm(pred["input_keypoints_2d"] - truth_2d, axis=-1).mean())}}
    cameras = None   # photographed views: each crop's pinhole camera, its focal length times focal_scale
    if "pinhole" in samples[0]:
        cameras = np.stack([s["pinhole"] for s in samples]).astype(np.float64) * [focal_scale, 1.0, 1.0]
        rows[TURNED_NETWORK] = score(_turned_by_ray(pred["pred_keypoints_3d"], pred["pred_keypoints_2d"], cameras),
                                     pred["pred_keypoints_2d"], samples)
    for name, (overrides, use_3d) in (refinements or {}).items():
        cfg = apply_overrides(config, {**(extra or {}), **overrides})
        start = time.perf_counter()
        settings = RefineSettings.from_config(cfg)
        fit = Fit2D.from_settings(model.hand_model, settings.energy_for(use_3d))
        sigma = settings.world_sigma_mm / 1000
        noise = DetectorNoise.from_config(cfg)
        weights = settings.keypoint_weights(source, sigma_px=noise.keypoint_sigma_px * noise.error_scale)
        pinhole = cameras if settings.projection == "pinhole" else None
        term = {"keypoints_3d": settings.world_for_fit(worlds, pred["input_keypoints_2d"], cameras),
                "weights_3d": np.full((len(samples), 21), 1 / sigma ** 2)} if use_3d else {}
        result = fit.fit(pred["input_keypoints_2d"], np.tile(weights, (len(samples), 1)),
                         init=split_vector(pred["pred_params"], model.hand_model.num_betas),
                         options=settings.options_for(source), anchor_sigma=settings.anchor_sigma, pinhole=pinhole,
                         **term)
        fitted_3d, fitted_2d = result.keypoints_3d.numpy(), result.keypoints_2d.numpy()
        if cameras is not None and pinhole is None:     # a weak-perspective fit of a photographed view
            fitted_3d = _turned_by_ray(fitted_3d, fitted_2d, cameras)
        rows[name] = score(fitted_3d, fitted_2d, samples)
        rows[name]["ms_per_hand"] = 1000 * (time.perf_counter() - start) / len(samples)
    return rows


def evaluate_real_poses(model, config: dict, count: int | None = 100, split: str = "test",
                        keypoints=KEYPOINTS, refinements: dict | None = REFINEMENTS, seed: int = 0, path=None,
                        depth_m=None) -> dict:
    """The benchmark in one call, JSON-ready: ``count`` poses of ``split`` at random views
    (``real_pose_views``; ``depth_m`` (near, far): photographed by the default lens that far away),
    ``evaluate``d from each of ``keypoints``; with the source, the split, the count, the views' depth
    range and the simulated world landmarks' own scores (``LANDMARKS``) beside the rows."""
    samples, worlds = real_pose_views(split, count, seed, path=path, depth_m=depth_m)
    return {"source": CREDIT, "split": split, "count": len(samples),
            "depth_m": None if depth_m is None else list(depth_m), LANDMARKS: landmark_scores(samples, worlds),
            "keypoints": {k: evaluate(model, config, samples, worlds, k, refinements=refinements) for k in keypoints}}


def format_table(title: str, rows: dict) -> str:
    """A fixed-width text table of ``{row: score}``: root, root + scale, Procrustes (mm), median
    rotation (degrees) and 2D (px) per row, under ``title``."""
    lines = [title, f"{'':>30} {'root mm':>8} {'root+scale':>11} {'PA mm':>7} {'rot deg':>8} {'2D px':>7}"]
    given = [row["input_2d_px"] for row in rows.values() if "input_2d_px" in row]
    if given:
        lines.append(f"{'input keypoints':>30} {'':>8} {'':>11} {'':>7} {'':>8} {given[0]:7.2f}")
    for name, row in rows.items():
        lines.append(f"{name:>30} {row['root']:8.1f} {row['root_scale']:11.1f} {row['procrustes']:7.1f} "
                     f"{row['rotation_deg_median']:8.1f} {row['2d_px']:7.2f}")
    return "\n".join(lines)


def markdown_table(result: dict) -> str:
    """``evaluate_real_poses``' result as a Markdown table: one row per input keypoints and method,
    the simulated world landmarks first."""
    lines = ["| input keypoints | method | root (mm) | root + scale (mm) | Procrustes (mm) | rotation (deg, median) "
             "| 2D (px at 320) |", "|---|---|---|---|---|---|---|"]
    rows = [("-", LANDMARKS, result[LANDMARKS])]
    rows += [(k, name, row) for k, per_row in result["keypoints"].items() for name, row in per_row.items()]
    for keypoints, name, row in rows:
        lines.append(f"| {keypoints} | {name} | {row['root']:.1f} | {row['root_scale']:.1f} | {row['procrustes']:.1f} "
                     f"| {row['rotation_deg_median']:.1f} | {row['2d_px']:.2f} |")
    return "\n".join(lines)
