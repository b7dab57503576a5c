"""The camera-space hand's reprojection onto its own keypoints_2d, translation fit vs perspective pose fit.

    python benchmarks/bench_camera_fit.py [--synthetic 40] [--experiments] [--write outputs/metrics/camera_fit.json]

Photos: the rendered fixtures (tests/fixtures/labelled_hands) and, where present, ../shared/real_photos
(read in place), each hand given by its labelled 2D keypoints as ``--keypoints`` gives them (the
detector's world landmarks join the refinement where it finds the hand, as in predict); the camera is
the data set's where labels.json has one, else predict's (EXIF or the default). Synthetic: hands of
``camera_eval.perspective_hands`` (known focal length, 0.25-1 m). For each hand, predict's result is
placed twice: ``--camera-fit translation`` (the translation fitted, the pose fixed: the placement
before the perspective fit) and ``pose`` (rotation, translation and pose fitted). Reported: the RMS
over the 21 keypoints of the perspective projection of ``joints_3d_camera`` from ``keypoints_2d``
(median, max), the largest per-coordinate error over the 16 skeleton joints (what the glTF's camera
shows), CPU milliseconds per hand (process time: run it with OMP_NUM_THREADS=1, and a busy machine's
waits do not count) of the placement (the fit) and of the export (rig + .glb), and, for synthetic
hands, the relative root-depth error. Per hand the JSON also keeps how near the hand is to its camera
(``depth_span_ratio``: the depth range of ``joints_3d_camera`` over its mean depth, where weak and full
perspective part) and how far predict's ``keypoints_2d`` are from the labels (``keypoints_2d_to_labels_rms_px``:
a failed prediction); the real photos' worst hands under the pose fit are printed with them.
``--experiments`` adds the pose fit varied, to show what the 0.5 px target would take (``placements``):
the prior widths halved and doubled, the betas freed, the 10 PCA coefficients, a focal length 2 and
3 times the camera's (the same hand farther away), and the labelled keypoints as the fit's target
instead of predict's ``keypoints_2d`` (its reprojection then to the labels, beside
``keypoints_2d_to_labels_rms_px``).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from wildhands.app.camera_eval import perspective_hands
from wildhands.app.export_gltf import export_photo
from wildhands.app.predict import HandInput, Predictor
from wildhands.data.images import read_image
from wildhands.fileio import write_json
from wildhands.fit.perspective import PerspectiveSettings, place_results
from wildhands.hand import keypoints as kp
from wildhands.hand.camera_space import Intrinsics, photo_intrinsics
from wildhands.paths import REAL_PHOTOS_DIR

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "labelled_hands"
MODES = ("translation", "pose")
SKELETON = [kp.MANO_TO_OPENPOSE.index(j) for j in range(kp.NUM_MANO_JOINTS)]


def labelled_photos(folder: Path) -> list[tuple[str, np.ndarray, HandInput, Intrinsics]]:
    """(name, image, hand, camera) of every entry of ``folder/labels.json``."""
    out = []
    for entry in json.loads((folder / "labels.json").read_text()):
        path = folder / entry["image"]
        image = read_image(path)
        points = np.asarray(entry["keypoints_2d"], np.float64)
        confidence = points[:, 2] if points.shape[1] == 3 else np.ones(kp.NUM_KEYPOINTS)
        height, width = image.shape[:2]
        if entry.get("camera"):
            (fx, fy), (cx, cy) = entry["camera"]["focal"], entry["camera"]["principal_point"]
            camera = Intrinsics(float(fx), float(fy), float(cx), float(cy), width, height, "flag", "the data set's")
        else:
            camera = photo_intrinsics(path, width, height)
        hand = HandInput(points[:, :2], confidence, entry.get("side") or "right", 1.0, "keypoints")
        out.append((entry["image"], image, hand, camera))
    return out


def placements(experiments: bool) -> dict:
    """Label -> (``--camera-fit`` mode, ``[camera_fit]`` changes, focal length factor, fit the labels instead
    of ``keypoints_2d``): the two modes, and with ``experiments`` the pose fit varied (what the 0.5 px
    target would need): the prior widths halved (0.25 rad) and doubled (1 rad), the betas freed, the 10
    PCA coefficients, a focal length 2 and 3 times the hand's camera's (a farther hand), the labelled
    keypoints themselves as the target."""
    out = {mode: (mode, {}, 1.0, False) for mode in MODES}
    if experiments:
        out.update({"pose, priors x0.5": ("pose", {"sigma_rotation": 0.25, "sigma_pose": 0.25}, 1.0, False),
                    "pose, priors x2": ("pose", {"sigma_rotation": 1.0, "sigma_pose": 1.0}, 1.0, False),
                    "pose, betas free": ("pose", {"sigma_betas": 1.0}, 1.0, False),
                    "pose, pca": ("pose", {"pose_space": "pca"}, 1.0, False),
                    "pose, focal x2": ("pose", {}, 2.0, False), "pose, focal x3": ("pose", {}, 3.0, False),
                    "pose, fitted to labels": ("pose", {}, 1.0, True)})
    return out


def measure(predictor, items, truth_depths=None, experiments: bool = False) -> dict:
    """Per placement (``placements``): reprojection (RMS over 21 keypoints, max over the skeleton), ms per
    hand, depth errors. Fitted to the labels, the reprojection is to the labels."""
    chosen = placements(experiments)
    rows = {label: [] for label in chosen}
    profile = PerspectiveSettings.from_config(predictor.config)
    with tempfile.TemporaryDirectory() as folder:
        for k, (name, image, hand, camera) in enumerate(items):
            results = predictor.predict(image, hands=[hand], intrinsics=camera)
            if not results:
                continue
            base = [(dict(r.extras), r.keypoints_2d) for r in results]
            labels = hand.keypoints_2d
            seen = np.asarray(hand.confidence) > 0         # the labels of hidden keypoints are (0, 0)
            for label, (mode, changes, focal, to_labels) in chosen.items():
                for r, (extras, keypoints) in zip(results, base):
                    r.extras, r.keypoints_2d = dict(extras), (labels if to_labels else keypoints)
                seen = camera if focal == 1.0 else Intrinsics(camera.fx * focal, camera.fy * focal, camera.cx,
                                                              camera.cy, camera.width, camera.height, "flag")
                start = time.process_time()
                place_results(results, seen, predictor.hand_model, mode, replace(profile, **changes))
                place_ms = (time.process_time() - start) * 1000 / len(results)
                start = time.process_time()
                export_photo(Path(folder) / "hand.glb", results, predictor.hand_model, seen)
                export_ms = (time.process_time() - start) * 1000 / len(results)
                for r, (_, keypoints) in zip(results, base):
                    error = np.abs(seen.project(r.extras["joints_3d_camera"]) - r.keypoints_2d)
                    row = {"name": name, "reprojection_rms_px": r.extras["reprojection_rms_px"],
                           "iterations": r.extras.get("camera_space_fit", {}).get("iterations", 0),
                           "skeleton_max_px": float(error[SKELETON].max()), "place_ms": place_ms,
                           "export_ms": export_ms, "pose_space": r.params["pose_space"],
                           "root_depth_m": float(r.extras["translation_m"][2]),
                           "depth_span_ratio": float(np.ptp(r.extras["joints_3d_camera"][:, 2])
                                                     / r.extras["joints_3d_camera"][:, 2].mean()),
                           "keypoints_2d_to_labels_rms_px": float(np.sqrt(np.mean(np.sum(
                               (keypoints - labels)[seen] ** 2, axis=1))))}
                    if truth_depths is not None:
                        row["depth_rel_error"] = float(r.extras["translation_m"][2] / truth_depths[k] - 1)
                    rows[label].append(row)
            for r, (extras, keypoints) in zip(results, base):
                r.extras, r.keypoints_2d = extras, keypoints
    return {label: {"rows": rows[label], **summary(rows[label])} for label in chosen}


def summary(rows: list[dict]) -> dict:
    rms = np.array([r["reprojection_rms_px"] for r in rows])
    out = {"hands": len(rows), "rms_median_px": float(np.median(rms)), "rms_max_px": float(rms.max()),
           "skeleton_max_px": float(max(r["skeleton_max_px"] for r in rows)),
           "within_half_px": float(np.mean([r["skeleton_max_px"] <= 0.5 for r in rows])),
           "place_ms_median": float(np.median([r["place_ms"] for r in rows])),
           "export_ms_median": float(np.median([r["export_ms"] for r in rows]))}
    if "depth_rel_error" in rows[0]:
        depth = np.abs([r["depth_rel_error"] for r in rows]) * 100
        out.update(depth_rel_error_median_pct=float(np.median(depth)), depth_rel_error_mean_pct=float(depth.mean()),
                   within_10pct=float((depth <= 10).mean()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic", type=int, default=40, help="synthetic hands (0: none)")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--photos", default=str(REAL_PHOTOS_DIR), help="folder with labels.json")
    parser.add_argument("--experiments", action="store_true",
                        help="also the pose fit varied: betas freed, PCA pose, focal x2 and x3, fitted to the labels")
    parser.add_argument("--write", default=None, help="write the numbers as JSON here")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of predict (e.g. refine.projection=weak: the refinement before)")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    predictor = Predictor(args.checkpoint, config_overrides=overrides)
    sets = {"fixtures": labelled_photos(FIXTURES)}
    if (Path(args.photos) / "labels.json").is_file():
        sets["real photos"] = labelled_photos(Path(args.photos))
    else:
        print(f"skipping the real photos: no labels.json in {args.photos}")
    report = {name: measure(predictor, items, experiments=args.experiments) for name, items in sets.items()}
    if args.synthetic:
        hands = perspective_hands(predictor.hand_model, predictor.config, args.synthetic)
        items = [(h.name, h.image, HandInput(h.keypoints_2d, np.ones(kp.NUM_KEYPOINTS), h.handedness, 1.0,
                                             "keypoints"), h.intrinsics) for h in hands]
        report["synthetic"] = measure(predictor, items, [h.keypoints_3d_camera[kp.ROOT, 2] for h in hands],
                                      args.experiments)
    print(f"{'':38s} {'hands':>5s} {'RMS med px':>10s} {'RMS max':>8s} {'joint max':>9s} {'<=0.5':>6s} "
          f"{'place ms':>8s} {'export ms':>9s} {'|dz|/z med %':>12s}")
    for name, modes in report.items():
        for mode, s in modes.items():
            depth = f"{s['depth_rel_error_median_pct']:12.1f}" if "depth_rel_error_median_pct" in s else ""
            print(f"{name + ', ' + mode:38s} {s['hands']:5d} {s['rms_median_px']:10.2f} {s['rms_max_px']:8.2f} "
                  f"{s['skeleton_max_px']:9.2f} {s['within_half_px']:6.2f} {s['place_ms_median']:8.1f} "
                  f"{s['export_ms_median']:9.1f} {depth}")
    if "real photos" in report:
        print("\nreal photos, pose fit, worst five: RMS px, root depth m, depth span / depth, keypoints_2d to labels "
              "RMS px")
        for row in sorted(report["real photos"]["pose"]["rows"], key=lambda r: -r["reprojection_rms_px"])[:5]:
            print(f"  {row['name']:32s} {row['reprojection_rms_px']:6.2f} {row['root_depth_m']:6.3f} "
                  f"{row['depth_span_ratio']:5.2f} {row['keypoints_2d_to_labels_rms_px']:7.1f}")
    if args.write:
        write_json(args.write, report)
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
