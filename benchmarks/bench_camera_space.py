"""Hands in camera space: root depth and root position errors, by hand size; export cost.

    python benchmarks/bench_camera_space.py [--hands 200] [--checkpoint PATH]
                                            [--write outputs/metrics/camera_space.json]

Synthetic hands (the synthetic set's shapes, poses and views) at root depths of 0.25-1 m under
known pinhole cameras (horizontal field of view 40-75 degrees), their 2D keypoints by full
perspective, given to predict as ``--keypoints``; then, where ``../shared/real_photos`` is present,
its RHD hands with their labelled 2D keypoints and the data set's camera (and, to show what a
user without the focal length gets, the default camera). Four placements are scored: predict's
(weak-perspective start, the translation fitted under perspective, then rotation, translation and
pose fitted: ``fit.perspective``), the translation fit with the pose fixed (``pose_fixed``: predict's
placement before the pose fit), the weak-perspective start alone, and the true root-relative 3D
placed on the given 2D keypoints (the camera-space step alone); each
for predict with its 2D-fit refinement and for the network alone. Export cost: rig + .glb per
hand, median over the synthetic hands.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from wildhands.app.camera_eval import (by_hand_size, evaluate_placement, labelled_photo_hands, perspective_hands,
                                       summarise)
from wildhands.app.predict import HandInput, Predictor
from wildhands.fileio import write_json
from wildhands.fit.perspective import PerspectiveSettings, place_results
from wildhands.hand.camera_space import default_intrinsics
from wildhands.paths import REAL_PHOTOS_DIR

METHODS = ("placed", "pose_fixed", "weak_perspective", "true_3d")


def _table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{'':22s} {'hands':>5s} {'|dz|/z med %':>12s} {'mean %':>7s} {'signed %':>8s} {'<=10%':>6s} "
          f"{'root mm':>8s}")
    for label, row in rows:
        print(f"{label:22s} {row['hands']:5d} {row['depth_rel_error_median_pct']:12.1f} "
              f"{row['depth_rel_error_mean_pct']:7.1f} {row['depth_rel_error_signed_mean_pct']:8.1f} "
              f"{row['within_10pct']:6.2f} {row['root_error_median_mm']:8.1f}")


def export_cost_ms(predictor, hands, repeats: int = 3) -> float:
    """Median milliseconds per hand of rigging and writing one .glb (in memory, then atomically)."""
    import tempfile
    from pathlib import Path

    from wildhands.app.export_gltf import export_photo

    costs = []
    with tempfile.TemporaryDirectory() as folder:
        for hand in hands:
            given = HandInput(hand.keypoints_2d, np.ones(21), hand.handedness, 1.0, "keypoints")
            results = predictor.predict(hand.image, hands=[given], intrinsics=hand.intrinsics)
            place_results(results, hand.intrinsics, predictor.hand_model, "pose",
                          PerspectiveSettings.from_config(predictor.config))
            for _ in range(repeats):
                start = time.perf_counter()
                export_photo(Path(folder) / "hand.glb", results, predictor.hand_model, hand.intrinsics)
                costs.append((time.perf_counter() - start) * 1000 / len(results))
    return float(np.median(costs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hands", type=int, default=200, help="synthetic hands")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--photos", default=str(REAL_PHOTOS_DIR), help="folder with labels.json")
    parser.add_argument("--write", default=None, help="write the numbers as JSON here")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of predict (e.g. refine.projection=weak: the refinement before)")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    try:
        photo_hands = labelled_photo_hands(args.photos)
    except FileNotFoundError:
        photo_hands = []
        print(f"skipping the labelled photos: no labels.json in {args.photos}")
    report = {}
    for variant, refine in (("refined", True), ("network only", False)):
        # the hands come as given keypoints with no detection: the world-landmark term has nothing to use
        predictor = Predictor(args.checkpoint, refine=refine,
                              config_overrides={"refine.world_sigma_mm": 0.0, **overrides})
        start = time.perf_counter()
        hands = perspective_hands(predictor.hand_model, predictor.config, args.hands)
        rows = evaluate_placement(predictor, hands)
        print(f"\n##### {variant}: {len(rows)} synthetic hands in {time.perf_counter() - start:.0f} s; hand length "
              f"(5/50/95 %) true {np.percentile([r['hand_length_mm'] for r in rows], [5, 50, 95]).round(0)} mm, "
              f"predicted {np.percentile([r['predicted_hand_length_mm'] for r in rows], [5, 50, 95]).round(0)} mm")
        synthetic = report[f"{variant}, synthetic"] = {
            "rows": rows, **{m: summarise(rows, m) for m in METHODS},
            "by_hand_size": {m: by_hand_size(rows, m) for m in METHODS}}
        _table("synthetic hands, known focal length", [(m, synthetic[m]) for m in METHODS])
        _table("predict's placement by true hand length (mm)",
               [(b["hand_length_mm"], b) for b in synthetic["by_hand_size"]["placed"]])
        _table("placement given the true 3D, by true hand length (mm)",
               [(b["hand_length_mm"], b) for b in synthetic["by_hand_size"]["true_3d"]])
        if refine:
            report["export_ms_per_hand"] = export_cost_ms(predictor, hands[:20])
            print(f"\nexport: {report['export_ms_per_hand']:.1f} ms per hand (rig + .glb, median)")
        for label, override in (("data set camera", None), ("default camera", default_intrinsics)):
            if not photo_hands:
                break
            rows = evaluate_placement(predictor, photo_hands, override)
            key = f"{variant}, labelled photos, {label}"
            report[key] = {"rows": rows, **{m: summarise(rows, m) for m in METHODS}}
            _table(f"labelled photos with 3D ({len(rows)} RHD hands), {label}", [(m, report[key][m]) for m in METHODS])
            for r in rows:
                print(f"  {r['name']:18s} length {r['hand_length_mm']:.0f} mm (predicted "
                      f"{r['predicted_hand_length_mm']:.0f}), depth {r['depth_m']:.3f} m: "
                      f"{100 * r['placed_depth_rel_error']:+.1f} %, root {r['placed_root_error_mm']:.0f} mm")
    if args.write:
        write_json(args.write, report)
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
