"""The network and its refinement on real hand poses: lifting, pose spaces and 3D terms for hands the model did not make.

    python benchmarks/bench_refinement_real_poses.py [--split train|test] [--count 300]
        [--checkpoint PATH [PATH ...]] [--keypoints detector exact] [--no-refinements] [--json PATH]

DexYCB's captured poses (``datasets.real_poses``; Chao et al., CVPR 2021, CC BY-NC 4.0), seen from
uniformly random views and framed as 2.2 l crops, give the network detector-like keypoints
(``inputs.DetectorNoise``, the measured MediaPipe errors); the refinement then runs with and
without a 3D term towards simulated world landmarks: the true joints turned by a random rotation
error (half-normal, ``--rotation-sigma`` rad), scaled by 0.9 (MediaPipe's hands have one size) and
jittered per joint (``--joint-sigma`` m), the defaults reproducing the Procrustes error of
MediaPipe's world landmarks on held-out real photos (11.3 mm, issue 15). Root-aligned, root +
scale aligned and Procrustes 3D errors (mm), the rotation error (degrees, median: the angle of
the rotation that best aligns the predicted root-relative joints with the true ones, Kabsch) and
2D error (px at 320) against the true hands. ``--keypoints exact`` gives the network the true
keypoints instead (the refinement then weighs them as annotated labels, ``[refine]
label_sigma_px``); several ``--checkpoint``s are scored on the same views, old against new.
Settings are chosen on the training subjects (01-08); the test subjects (09-10) are for reporting.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from wildhands.app.photo_eval import ALIGNMENTS, errors_3d
from wildhands.app.predict import DEFAULT_CHECKPOINT
from wildhands.config import apply_overrides
from wildhands.data.augment import DetectorNoise
from wildhands.data.datasets.real_poses import load_real_poses
from wildhands.data.synthetic import place_in_crop, random_rotation
from wildhands.eval.protocol import _split_vector
from wildhands.fit.fit2d import Fit2D
from wildhands.fit.fit3d import kabsch_rotation
from wildhands.fit.refine import RefineSettings
from wildhands.hand.camera import axis_angle_to_matrix
from wildhands.net.checkpoints import load_model
from wildhands.net.inference import current_inference_config
from wildhands.net.train import predict_dataset

# name -> (overrides, with the 3D term)
REFINEMENTS = {
    "10-D, no 3D term": ({}, False),
    "10-D + 3D term": ({"refine.with_3d.pose_space": "pca"}, True),
    "45-D, no 3D term": ({"refine.pose_space": "full", "refine.pose_std_floor": 0.2}, False),
    "profile (with_3d) + 3D term": ({}, True),
}


def views(joints: np.ndarray, rng, rotation_sigma: float, joint_sigma: float):
    """Labels of each pose at a random view in a 2.2 l crop, and simulated world landmarks."""
    samples, worlds = [], []
    for hand in joints:
        camera = hand @ random_rotation(rng).T
        scale, trans = place_in_crop(camera, rng, 320, 2.2)
        samples.append({"keypoints_2d": (scale * camera[:, :2] + trans).astype(np.float32),
                        "keypoints_3d": camera.astype(np.float32), "visible": np.ones(21, np.float32),
                        "has_3d": np.float32(1)})
        axis = rng.normal(size=3)
        turn = axis / np.linalg.norm(axis) * abs(rng.normal(0, rotation_sigma))
        error = axis_angle_to_matrix(torch.as_tensor(turn)[None])[0].numpy()
        world = 0.9 * camera @ error.T + rng.normal(0, joint_sigma, (21, 3))
        worlds.append(world - world[0])
    return samples, np.stack(worlds)


def rotation_errors_deg(pred, truth) -> np.ndarray:
    """(N,) degrees: the angle of the rotation best aligning (Kabsch, about the root) predicted
    (N, 21, 3) root-relative joints with the true ones: the global rotation error, pose aside."""
    pred, truth = (torch.as_tensor(np.asarray(a, np.float64)) for a in (pred, truth))
    rotation = kabsch_rotation(pred - pred[:, :1], truth - truth[:, :1])
    cosine = ((rotation.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)
    return np.degrees(torch.arccos(cosine).numpy())


def score(k3d, k2d, samples) -> dict:
    errors = [errors_3d(a, s["keypoints_3d"]) for a, s in zip(k3d, samples)]
    truth_2d = np.stack([s["keypoints_2d"] for s in samples])
    rotation = rotation_errors_deg(k3d, np.stack([s["keypoints_3d"] for s in samples]))
    return {**{a: float(np.mean([e[a] for e in errors])) for a in ALIGNMENTS},
            "rotation_deg_median": float(np.median(rotation)), "rotation_deg_mean": float(rotation.mean()),
            "2d_px": float(np.linalg.norm(k2d - truth_2d, axis=-1).mean())}


class Views(torch.utils.data.Dataset):
    """The labelled views as the data set ``predict_dataset`` reads."""

    def __init__(self, samples: list[dict]):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


def evaluate(checkpoint, samples, worlds, keypoints: str, extra: dict, refinements: bool = True) -> dict:
    """{row: scores} of one checkpoint: the network and, with ``refinements``, each of ``REFINEMENTS``,
    from ``keypoints`` "detector" (detector-like noise) or "exact" (the true keypoints)."""
    source = {"detector": "detector", "exact": "labels"}[keypoints]
    model, config = load_model(checkpoint)
    config = current_inference_config(config)
    pred = predict_dataset(model, Views(samples), config, noise=keypoints == "detector")
    rows = {"network": score(pred["pred_keypoints_3d"], pred["pred_keypoints_2d"], samples)}
    for name, (overrides, use_3d) in (REFINEMENTS.items() if refinements else ()):
        cfg = apply_overrides(config, {**extra, **overrides})
        start = time.perf_counter()
        settings = RefineSettings.from_config(cfg)
        fit = Fit2D.from_settings(model.hand_model, settings.energy_for(use_3d))
        sigma = settings.world_sigma_mm / 1000
        term = {"keypoints_3d": worlds, "weights_3d": np.full((len(samples), 21), 1 / sigma ** 2)} if use_3d else {}
        weights = settings.keypoint_weights(source, sigma_px=DetectorNoise.from_config(cfg).keypoint_sigma_px)
        result = fit.fit(pred["input_keypoints_2d"], np.tile(weights, (len(samples), 1)),
                         init=_split_vector(pred["pred_params"], model.hand_model.num_betas),
                         options=settings.options_for(source), anchor_sigma=settings.anchor_sigma, **term)
        rows[name] = score(result.keypoints_3d.numpy(), result.keypoints_2d.numpy(), samples)
        rows[name]["ms_per_hand"] = 1000 * (time.perf_counter() - start) / len(samples)
    return rows


def print_table(title: str, rows: dict) -> None:
    print(title)
    print(f"{'':>30} {'root mm':>8} {'root+scale':>11} {'PA mm':>7} {'rot deg':>8} {'2D px':>7}")
    for name, row in rows.items():
        print(f"{name:>30} {row['root']:8.1f} {row['root_scale']:11.1f} {row['procrustes']:7.1f} "
              f"{row['rotation_deg_median']:8.1f} {row['2d_px']:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--checkpoint", nargs="+", default=[str(DEFAULT_CHECKPOINT)],
                        help="one or more checkpoints, scored on the same views")
    parser.add_argument("--keypoints", nargs="+", choices=("detector", "exact"), default=["detector"],
                        help="the network's input keypoints: detector-like noise and / or the true ones")
    parser.add_argument("--no-refinements", action="store_true", help="score the network alone")
    parser.add_argument("--rotation-sigma", type=float, default=0.2, help="rad, world landmarks' rotation error")
    parser.add_argument("--joint-sigma", type=float, default=0.007, help="m per axis, world landmarks' joint noise")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of every refinement (e.g. refine.anchor_pose=8)")
    parser.add_argument("--json", type=Path, help="also write the scores here")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
    torch.set_num_threads(1)
    poses = load_real_poses(args.split).subsample(args.count)
    samples, worlds = views(poses.joints, np.random.default_rng(0), args.rotation_sigma, args.joint_sigma)
    landmarks = score(worlds, np.stack([s["keypoints_2d"] for s in samples]), samples)
    landmarks["2d_px"] = float("nan")
    results = {"source": "DexYCB: Chao et al., CVPR 2021, CC BY-NC 4.0", "split": args.split, "count": len(samples),
               "simulated world landmarks": landmarks, "checkpoints": {}}
    for checkpoint in args.checkpoint:
        results["checkpoints"][checkpoint] = {}
        for keypoints in args.keypoints:
            rows = evaluate(checkpoint, samples, worlds, keypoints, extra, not args.no_refinements)
            results["checkpoints"][checkpoint][keypoints] = rows
            print_table(f"\n{checkpoint}\nDexYCB {args.split} subjects, {len(samples)} poses at random views, "
                        f"{keypoints} keypoints (DexYCB: Chao et al., CVPR 2021, CC BY-NC 4.0)",
                        {"simulated world landmarks": landmarks, **rows})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
