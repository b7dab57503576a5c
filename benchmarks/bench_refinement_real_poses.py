"""The refinement on real hand poses: which pose space and 3D term serve hands the model did not make.

    python benchmarks/bench_refinement_real_poses.py [--split train|test] [--count 300] [--checkpoint PATH]

DexYCB's captured poses (``datasets.real_poses``; Chao et al., CVPR 2021, CC BY-NC 4.0), seen from
uniformly random views and framed as 2.2 l crops, give the network detector-like keypoints
(``inputs.DetectorNoise``, the measured MediaPipe errors); the refinement then runs with and
without a 3D term towards simulated world landmarks: the true joints turned by a random rotation
error (half-normal, ``--rotation-sigma`` rad), scaled by 0.9 (MediaPipe's hands have one size) and
jittered per joint (``--joint-sigma`` m), the defaults reproducing the Procrustes error of
MediaPipe's world landmarks on held-out real photos (11.3 mm, issue 15). Root-aligned, root +
scale aligned and Procrustes 3D errors (mm) and 2D error (px at 320) against the true hands.
Settings are chosen on the training subjects (01-08); the test subjects (09-10) are for reporting.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from wildhands.camera import axis_angle_to_matrix
from wildhands.checkpoints import load_model
from wildhands.config import apply_overrides
from wildhands.datasets.real_poses import load_real_poses
from wildhands.evaluation import _split_vector
from wildhands.fitting import Fit2D
from wildhands.inputs import refinement_model_settings, refinement_options, refinement_weights
from wildhands.photo_eval import ALIGNMENTS, errors_3d
from wildhands.predict import DEFAULT_CHECKPOINT, with_current_inference_settings
from wildhands.synthetic import place_in_crop, random_rotation
from wildhands.train import predict_dataset

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


def score(k3d, k2d, samples) -> dict:
    errors = [errors_3d(a, s["keypoints_3d"]) for a, s in zip(k3d, samples)]
    truth_2d = np.stack([s["keypoints_2d"] for s in samples])
    return {**{a: float(np.mean([e[a] for e in errors])) for a in ALIGNMENTS},
            "2d_px": float(np.linalg.norm(k2d - truth_2d, axis=-1).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--rotation-sigma", type=float, default=0.2, help="rad, world landmarks' rotation error")
    parser.add_argument("--joint-sigma", type=float, default=0.007, help="m per axis, world landmarks' joint noise")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of every refinement (e.g. refine.anchor_pose=8)")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
    torch.set_num_threads(1)
    poses = load_real_poses(args.split).subsample(args.count)
    samples, worlds = views(poses.joints, np.random.default_rng(0), args.rotation_sigma, args.joint_sigma)
    model, config = load_model(args.checkpoint)
    config = with_current_inference_settings(config)

    class Views(torch.utils.data.Dataset):
        def __len__(self):
            return len(samples)

        def __getitem__(self, i):
            return samples[i]

    pred = predict_dataset(model, Views(), config, noise=True)
    rows = {"simulated world landmarks": score(worlds, np.stack([s["keypoints_2d"] for s in samples]), samples),
            "network": score(pred["pred_keypoints_3d"], pred["pred_keypoints_2d"], samples)}
    rows["simulated world landmarks"]["2d_px"] = float("nan")
    for name, (overrides, use_3d) in REFINEMENTS.items():
        cfg = apply_overrides(config, {**extra, **overrides})
        start = time.perf_counter()
        fit = Fit2D(model.hand_model, **refinement_model_settings(cfg, use_3d))
        sigma = float(cfg["refine"]["world_sigma_mm"]) / 1000
        term = {"keypoints_3d": worlds, "weights_3d": np.full((len(samples), 21), 1 / sigma ** 2)} if use_3d else {}
        result = fit.fit(pred["input_keypoints_2d"], np.tile(refinement_weights(cfg, "detector"), (len(samples), 1)),
                         init=_split_vector(pred["pred_params"], model.hand_model.num_betas), num_inits=1,
                         **{"iterations": int(cfg["fit2d"]["iterations"]), **refinement_options(cfg, "detector")},
                         **term)
        rows[name] = score(result.keypoints_3d.numpy(), result.keypoints_2d.numpy(), samples)
        rows[name]["ms_per_hand"] = 1000 * (time.perf_counter() - start) / len(samples)
    print(f"DexYCB {args.split} subjects, {len(samples)} poses at random views, detector-like keypoints "
          f"(DexYCB: Chao et al., CVPR 2021, CC BY-NC 4.0)")
    print(f"{'':>30} {'root mm':>8} {'root+scale':>11} {'PA mm':>7} {'2D px':>7}")
    for name, row in rows.items():
        print(f"{name:>30} {row['root']:8.1f} {row['root_scale']:11.1f} {row['procrustes']:7.1f} {row['2d_px']:7.2f}")


if __name__ == "__main__":
    main()
