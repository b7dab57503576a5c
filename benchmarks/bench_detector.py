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
from wildhands.detector import HandDetector, detection_report
from wildhands.fileio import write_json
from wildhands.images import read_image
from wildhands.paths import REAL_PHOTOS_DIR


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
    images = [read_image(f"{args.photos}/{e['image']}") for e in entries]
    labels = np.array([e["keypoints_2d"] for e in entries], float)
    with HandDetector(second_pass=not args.no_second_pass) as detector:
        start = time.perf_counter()
        report = detection_report(detector, images, labels[..., :2], labels[..., 2], [e["side"] for e in entries])
        per_photo = (time.perf_counter() - start) / len(images)
    stats = report["per_keypoint"]
    print(f"{report['hands']} labelled hands, {report['detected']} detected; handedness "
          f"{report['handedness_correct'][0]}/{report['handedness_correct'][1]} right where the side is known; "
          f"{1000 * per_photo:.0f} ms per photo")
    print(f"{'keypoint':>12} {'mean':>6} {'median':>7} {'p90':>6}   (px at the 320 crop of 2.2 l)")
    for i, name in enumerate(kp.KEYPOINT_NAMES):
        print(f"{name:>12} {stats['mean_px'][i]:6.1f} {stats['median_px'][i]:7.1f} {stats['p90_px'][i]:6.1f}")
    print(f"{'all':>12} {report['mean_px']:6.1f} {report['median_px']:7.1f}")
    if args.write:
        write_json(args.write, {
            "source": "MediaPipe Hands 0.10.21 (second pass on the 2.2 l crop) against the 19 labelled hands of "
                      "../shared/real_photos (FreiHAND, OneHand10K, CMU Panoptic, RHD samples); "
                      "written by benchmarks/bench_detector.py",
            "unit": "pixels of the 320x320 crop of 2.2 l around the labelled hand",
            **{k: v for k, v in report.items() if k != "detections"},
        })
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
