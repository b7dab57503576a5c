"""MediaPipe against the labelled real photos: per-keypoint error, detection rate, handedness, speed.

    python benchmarks/bench_detector.py [--photos ../shared/real_photos] [--write params/detector_noise.json]

Errors are in pixels of the 320 crop of 2.2 l around the labelled hand (the unit the network
sees). With ``--write``, the per-keypoint statistics go to the JSON file the training code uses
to make synthetic heat-maps look like the detector's (``[noise] stats`` in the profiles).
The photos are only read, never copied.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from wildhands import keypoints as kp
from wildhands.detector import HandDetector, keypoint_errors_at_crop
from wildhands.fileio import write_json
from wildhands.images import read_image
from wildhands.paths import REAL_PHOTOS_DIR


def match(detections, labels):
    """The detection closest to the labelled hand (median keypoint distance), or None."""
    if not detections:
        return None
    return min(detections, key=lambda d: np.median(np.linalg.norm(d.keypoints_2d - labels, axis=1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", default=str(REAL_PHOTOS_DIR))
    parser.add_argument("--write", default=None, help="write the statistics JSON here")
    parser.add_argument("--no-second-pass", action="store_true", help="skip the refinement on the 2.2 l crop")
    args = parser.parse_args()
    labels_path = f"{args.photos}/labels.json"
    try:
        entries = json.load(open(labels_path))
    except FileNotFoundError:
        print(f"skipped: no labelled photos at {labels_path}")
        return
    errors, missed, side_right, side_total, times = [], 0, 0, 0, []
    with HandDetector(second_pass=not args.no_second_pass) as detector:
        for entry in entries:
            image = read_image(f"{args.photos}/{entry['image']}")
            labels = np.asarray(entry["keypoints_2d"], float)
            visible = labels[:, 2]
            start = time.perf_counter()
            det = match(detector.detect(image), labels[:, :2])
            times.append(time.perf_counter() - start)
            if det is None or np.median(np.linalg.norm(det.keypoints_2d - labels[:, :2], axis=1)) > \
                    0.5 * np.ptp(labels[visible > 0, :2], axis=0).max():
                missed += 1
                continue
            errors.append(keypoint_errors_at_crop(det.keypoints_2d, labels[:, :2], visible))
            if entry.get("side"):
                side_total += 1
                side_right += det.handedness == entry["side"]
    errors = np.array(errors)
    stats = {
        "mean_px": np.nanmean(errors, axis=0).round(2).tolist(),
        "median_px": np.nanmedian(errors, axis=0).round(2).tolist(),
        "p90_px": np.nanpercentile(errors, 90, axis=0).round(2).tolist(),
    }
    print(f"{len(entries)} labelled hands, {len(errors)} detected, {missed} missed; "
          f"handedness {side_right}/{side_total} right where the side is known; "
          f"median {1000 * np.median(times):.0f} ms per photo")
    print(f"{'keypoint':>12} {'mean':>6} {'median':>7} {'p90':>6}   (px at the 320 crop of 2.2 l)")
    for i, name in enumerate(kp.KEYPOINT_NAMES):
        print(f"{name:>12} {stats['mean_px'][i]:6.1f} {stats['median_px'][i]:7.1f} {stats['p90_px'][i]:6.1f}")
    print(f"{'all':>12} {np.nanmean(errors):6.1f} {np.nanmedian(errors):7.1f} {np.nanpercentile(errors, 90):6.1f}")
    if args.write:
        write_json(args.write, {
            "source": "MediaPipe Hands 0.10.21 (second pass on the 2.2 l crop) against the 19 labelled hands of "
                      "../shared/real_photos (FreiHAND, OneHand10K, CMU Panoptic, RHD samples); "
                      "written by benchmarks/bench_detector.py",
            "unit": "pixels of the 320x320 crop of 2.2 l around the labelled hand",
            "hands": len(entries), "detected": len(errors), "missed": missed,
            "handedness_correct": [side_right, side_total],
            "per_keypoint": {"names": list(kp.KEYPOINT_NAMES), **stats},
        })
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
