"""The network and its refinement on real hand poses: lifting, pose spaces and 3D terms for hands the model did not make.

    python benchmarks/bench_refinement_real_poses.py [--split train|test] [--count 300] [--poses dexycb|gestures]
        [--checkpoint PATH [PATH ...]] [--keypoints detector exact articulated] [--no-refinements] [--json PATH]

DexYCB's captured poses (``datasets.real_poses``; Chao et al., CVPR 2021, CC BY-NC 4.0), seen from
uniformly random views and framed as 2.2 l crops, give the network detector-like keypoints
(``inputs.DetectorNoise``, the measured MediaPipe errors); the refinement then runs with and
without a 3D term towards simulated world landmarks (``data.augment.WorldLandmarkNoise``, its
fields settable by ``--world-noise KEY=VALUE``; the defaults reproduce the errors of MediaPipe's
world landmarks on held-out real photos, issue 15). ``--detector-error-scale`` scales the
detector-like keypoint errors and the refinement's expected errors with them (the measured
model comes from the hardest calibration photos, 10.4 px median; MediaPipe is about half as far
off on the held-out photos). Root-aligned, root +
scale aligned and Procrustes 3D errors (mm), the rotation error (degrees, median: the angle of
the rotation that best aligns the predicted root-relative joints with the true ones, Kabsch) and
2D error (px at 320) against the true hands. ``--keypoints exact`` gives the network the true
keypoints instead (the refinement then weighs them as annotated labels, ``[refine]
label_sigma_px``), and ``--keypoints articulated`` detector-like ones whose errors are shaped as a
plausible hand's (``data.augment.ArticulatedNoise``: a hand model fits independent jitter away, and
MediaPipe's errors mostly not); several ``--checkpoint``s are scored on the same views, old against new.
Settings are chosen on the training subjects (01-08); the test subjects (09-10) are for reporting.
DexYCB's hands grasp objects, and its poses make most of the pose space the priors come from;
``--poses gestures`` poses the checkpoint's hand model by the open hand's anatomical corpus instead
(``gesture_pose_views``: named gestures and synergy samples, open and spread hands among them; the
DexYCB file is then not needed), to see how the priors fare on hands that grasp nothing.
The evaluation lives in ``wildhands.eval.real_pose_lifting`` (notebook 04 runs it too); this is its CLI.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from wildhands.app.predict import DEFAULT_CHECKPOINT
from wildhands.config import apply_overrides
from wildhands.data.augment import WorldLandmarkNoise
from wildhands.eval.real_pose_lifting import (CREDIT, KEYPOINT_SOURCE, LANDMARKS, REFINEMENTS, evaluate, format_table,
                                              gesture_pose_views, landmark_scores, real_pose_views)
from wildhands.net.checkpoints import load_model
from wildhands.net.inference import current_inference_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--poses", choices=("dexycb", "gestures"), default="dexycb",
                        help="DexYCB's captured grasps (--split) or the open hand's anatomical gestures")
    parser.add_argument("--checkpoint", nargs="+", default=[str(DEFAULT_CHECKPOINT)],
                        help="one or more checkpoints, scored on the same views")
    parser.add_argument("--keypoints", nargs="+", choices=tuple(KEYPOINT_SOURCE), default=["detector"],
                        help="the network's input keypoints: detector-like noise and / or the true ones")
    parser.add_argument("--no-refinements", action="store_true", help="score the network alone")
    parser.add_argument("--world-noise", action="append", default=[], metavar="KEY=VALUE",
                        help="a field of data.augment.WorldLandmarkNoise (e.g. rotation_sigma=0.3)")
    parser.add_argument("--detector-error-scale", type=float, default=1.0,
                        help="detector-like keypoint errors times this (1: the measured [noise] model; the "
                             "refinement's expected errors follow)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of every refinement (e.g. refine.anchor_pose=8)")
    parser.add_argument("--depth", type=float, nargs=2, metavar=("NEAR_M", "FAR_M"),
                        help="photograph the hands by a pinhole camera, the root this far away (metres, uniform); "
                             "default: the weak-perspective camera")
    parser.add_argument("--focal-scale", type=float, default=1.0,
                        help="with --depth: the refinement's focal length times this (a lens guessed wrong)")
    parser.add_argument("--json", type=Path, help="also write the scores here")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
    torch.set_num_threads(1)
    world_noise = WorldLandmarkNoise(**{key: float(value) for key, value in
                                        (item.split("=", 1) for item in args.world_noise)})
    models = {checkpoint: load_model(checkpoint) for checkpoint in args.checkpoint}
    if args.poses == "gestures":
        hand_model = next(iter(models.values()))[0].hand_model
        samples, worlds = gesture_pose_views(hand_model, args.count, 0, world_noise, depth_m=args.depth)
        source = "the open hand's anatomical pose corpus"
    else:
        samples, worlds = real_pose_views(args.split, args.count, 0, world_noise, depth_m=args.depth)
        source = f"DexYCB {args.split} subjects ({CREDIT})"
    landmarks = landmark_scores(samples, worlds)
    results = {"source": CREDIT if args.poses == "dexycb" else source, "poses": args.poses, "split": args.split,
               "count": len(samples), LANDMARKS: landmarks, "checkpoints": {}}
    for checkpoint, (model, config) in models.items():
        results["checkpoints"][checkpoint] = {}
        config = apply_overrides(current_inference_config(config), {"noise.error_scale": args.detector_error_scale})
        for keypoints in args.keypoints:
            rows = evaluate(model, config, samples, worlds, keypoints, extra,
                            None if args.no_refinements else REFINEMENTS, focal_scale=args.focal_scale)
            results["checkpoints"][checkpoint][keypoints] = rows
            print(format_table(f"\n{checkpoint}\n{source}, {len(samples)} poses at random views, "
                               f"{keypoints} keypoints", {LANDMARKS: landmarks, **rows}))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
