"""The open hand model in figures: build time, mesh, proportions against real hands, shape
and pose spaces.

    python benchmarks/bench_open_hand.py [--model PATH] [--no-build] [--samples 1000]

Builds the model once (timed, one process) unless ``--no-build``, then reads ``--model`` (default:
params/hand_models/OPEN_HAND_RIGHT.pkl) and prints: vertex and face counts, file size; hand
length (DexYCB's median 169 mm), palm breadth at the knuckles (target ~85 mm); bone lengths
beside the real hands' medians they are built from (``anatomy.BONE_LENGTHS_MM``); the shape space's explained variance and
the hand lengths it spans; and the range of motion per joint over ``--samples`` pose-coefficient
vectors uniform in [-2, 2]^10 beside each joint's range, the named poses' PCA coefficients,
reconstruction errors and finger interpenetration.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from wildhands.hand import keypoints as kp
from wildhands.hand import open_hand as oh
from wildhands.hand.hand_model import HandModel, hand_measurements, load_mano_arrays, rest_keypoints
from wildhands.paths import OPEN_HAND_PATH


def _proportions(model: HandModel, arrays: dict) -> None:
    m = hand_measurements(model)
    length = m["hand_length_mm"]
    print(f"hand length (wrist to middle fingertip) {length:.1f} mm; palm breadth at the knuckles "
          f"{1000 * oh.knuckle_breadth(arrays['v_template']):.1f} mm (surface), {m['palm_breadth_mm']:.1f} mm "
          "(index to little MCP joint centres)")
    print("bone lengths, mm (built model's rest keypoints | DexYCB subjects 01-08 medians, anatomy.BONE_LENGTHS_MM); "
          "thumb: CMC-MCP (metacarpal), MCP-IP, IP-tip")
    k = rest_keypoints(model).numpy()
    print(f"{'digit':8s} {'wrist-base':>15s} {'proximal':>15s} {'middle':>15s} {'distal':>15s}")
    for digit in kp.FINGERS:
        chain = (0,) + kp.FINGER_KEYPOINTS[digit]
        ours = [np.linalg.norm(k[b] - k[a]) * 1000 for a, b in zip(chain[:-1], chain[1:])]
        ref = [float(np.linalg.norm(oh.PALM_JOINTS_MM[digit]))] + list(oh.BONE_LENGTHS_MM[digit])
        print(f"{digit:8s} " + " ".join(f"{f'{o:.1f} | {r:.1f}':>15s}" for o, r in zip(ours, ref)))


def _shape(model: HandModel) -> None:
    rng = np.random.default_rng(0)
    lengths = [hand_measurements(model, rng.standard_normal(10))["hand_length_mm"] for _ in range(200)]
    print(f"shape: hand length over betas ~ N(0, 1): mean {np.mean(lengths):.1f} mm, sd {np.std(lengths):.1f} mm")
    rows = []
    for i in range(10):
        row = []
        for value in (-2.0, 2.0):
            betas = np.zeros(10)
            betas[i] = value
            m = hand_measurements(model, betas)
            row.append(f"{m['hand_length_mm']:.0f}/{m['palm_breadth_mm']:.0f}")
        rows.append(f"b{i}: {row[0]} .. {row[1]}")
    print("  hand length / MCP breadth (mm) at beta_i = -2 .. +2:  " + "; ".join(rows))


def _pose(arrays: dict, samples: int) -> None:
    prior = arrays["pose_prior"]
    frames = oh.JointFrames.from_pose_prior(prior)
    components, mean = arrays["hands_components"], arrays["hands_mean"]
    coefficients = np.random.default_rng(0).uniform(-2, 2, (samples, 10))
    angles = oh.joint_angles(coefficients @ components[:10] + mean, frames)
    rest = oh.joint_angles(mean, frames)
    print(f"pose: PCA scale {prior['pca_scale']:.3f} (components = directions x corpus sd x scale); "
          f"range of motion over {samples} coefficient vectors uniform in [-2, 2]^10 (degrees)")
    print(f"{'joint':12s} {'mean':>6s} {'flexion min..max':>17s} {'range':>12s}   {'abduction min..max':>19s} "
          f"{'range':>12s}")
    for j, name in enumerate(kp.MANO_JOINT_NAMES[1:]):
        flex, abd = angles[:, j, 0], angles[:, j, 1]
        fr, ar = prior["flexion_range_deg"][j], prior["abduction_range_deg"][j]
        print(f"{name:12s} {rest[j, 0]:6.1f} {flex.min():7.1f} .. {flex.max():6.1f} {fr[0]:5.0f} .. {fr[1]:4.0f}"
              f"   {abd.min():8.1f} .. {abd.max():6.1f} {ar[0]:5.0f} .. {ar[1]:4.0f}")
    print("named poses: coefficients (10) fitted by least squares, max |coefficient|, max flexion error of the "
          "reconstruction (deg), deepest finger interpenetration of the pose and of its reconstruction (mm)")
    names = list(prior["named_poses"])
    targets = np.stack([prior["named_poses"][n] for n in names])
    fitted = np.linalg.lstsq(components[:10].T, (targets - mean).T, rcond=None)[0].T
    rebuilt = fitted @ components[:10] + mean
    error = np.abs(oh.joint_angles(rebuilt, frames) - oh.joint_angles(targets, frames))[..., 0].max(1)
    depth = oh.digit_penetration(arrays, targets).max((1, 2)) * 1000
    depth_rebuilt = oh.digit_penetration(arrays, rebuilt).max((1, 2)) * 1000
    for name, c, e, d, r in zip(names, fitted, error, depth, depth_rebuilt):
        print(f"  {name:11s} |c|max {np.abs(c).max():4.1f}  error {e:5.1f}  interpenetration {d:4.1f} / {r:4.1f}")
    random_depth = oh.digit_penetration(arrays, coefficients @ components[:10] + mean).max((1, 2)) * 1000
    print(f"random poses: deepest finger interpenetration (mm) median {np.median(random_depth):.1f}, "
          f"90% {np.percentile(random_depth, 90):.1f}, 99% {np.percentile(random_depth, 99):.1f}, "
          f"share above 2 mm {np.mean(random_depth > 2):.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(OPEN_HAND_PATH))
    parser.add_argument("--no-build", action="store_true", help="skip timing a build")
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    if not args.no_build:
        start = time.perf_counter()
        oh.build_open_hand_model(verbose=True)
        print(f"build: {time.perf_counter() - start:.1f} s wall (one process)")
    path = Path(args.model)
    arrays = load_mano_arrays(path)
    model = HandModel(path)
    print(f"model {model.name} {arrays.get('model_version')}: {model.num_vertices} vertices, {len(model.faces)} faces, "
          f"file {path.stat().st_size / 1e6:.2f} MB")
    _proportions(model, arrays)
    _shape(model)
    _pose(arrays, args.samples)


if __name__ == "__main__":
    main()
