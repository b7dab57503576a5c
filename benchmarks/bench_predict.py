"""Latency of predict on this CPU: per image and per hand, detector to mesh.

    python benchmarks/bench_predict.py [--checkpoint PATH] [--images DIR] [--threads 2]

Times the default model (MediaPipe, crop, network, decoder) without and with the 2D-fit
refinement on the labelled calibration photos when present (else synthetic scenes), and the
forward pass of the paper's ResNet-50 at 320 for comparison. Each photo's hands are found once
and predicted without and with the refinement back to back (which first alternating), so that
both see the same load on shared cores; the refinement's own cost is the median over photos of
the difference, per hand, in wall-clock and in CPU time (all threads of the process). Target: at
most 150 ms per hand with the refinement on 2 cores.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from wildhands.app.predict import Predictor
from wildhands.config import load_profile
from wildhands.data.images import list_images, read_image
from wildhands.paths import REAL_PHOTOS_DIR


def _images(folder) -> list:
    if folder:
        return [read_image(p) for p in list_images([folder])]
    if (REAL_PHOTOS_DIR / "labels.json").is_file():
        return [read_image(p) for d in sorted(REAL_PHOTOS_DIR.iterdir()) if d.is_dir() for p in list_images([d])]
    from wildhands.data.synthetic import write_scenes

    scenes = write_scenes(Path(tempfile.mkdtemp()) / "scenes", 8, load_profile("quick"))
    return [read_image(p) for p in list_images([scenes])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--images", default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = _images(args.images)
    print(f"{len(images)} images, {args.threads} threads")
    predictors = {refine: Predictor(args.checkpoint, refine=refine) for refine in (False, True)}
    for predictor in predictors.values():
        predictor.predict(images[0])  # warm-up
    detect_times, hands = [], 0
    per_image = {False: [], True: []}
    per_hand = {False: [], True: []}
    cpu_per_hand = {False: [], True: []}
    for index, image in enumerate(images):
        start = time.perf_counter()
        found = predictors[False].find_hands(image)
        detect = time.perf_counter() - start
        detect_times.append(detect)
        for refine in ((False, True) if index % 2 == 0 else (True, False)):
            start, cpu = time.perf_counter(), time.process_time()
            results = predictors[refine].predict(image, hands=found)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            per_image[refine].append(detect + wall)
            if results:
                per_hand[refine].append((detect + wall) / len(results))
                cpu_per_hand[refine].append(cpu / len(results))
        hands += len(results)
    predictor = predictors[True]
    for refine in (False, True):
        label = "network + 2D-fit refinement" if refine else "network only"
        print(f"{label:>28} ({predictor.config['model']['backbone']} at {predictor.config['model']['input_size']}, "
              f"{predictor.variant}): median {1000 * np.median(per_image[refine]):.0f} ms per image, "
              f"{1000 * np.median(per_hand[refine]):.0f} ms per hand ({hands} hands; detector "
              f"{1000 * np.median(detect_times):.0f} ms per image)")
    extra = np.subtract(per_hand[True], per_hand[False])
    extra_cpu = np.subtract(cpu_per_hand[True], cpu_per_hand[False])
    print(f"{'the refinement alone':>28}: median {1000 * np.median(extra):.0f} ms per hand wall-clock, "
          f"{1000 * np.median(extra_cpu):.0f} ms CPU (after the detector: {1000 * np.median(cpu_per_hand[False]):.0f} "
          f"/ {1000 * np.median(cpu_per_hand[True]):.0f} ms CPU per hand without / with)")
    from wildhands.net.encoder import HandEncoder

    for backbone, size in (("resnet50", 320),):
        net = HandEncoder("rgb+2d", backbone).eval()
        x = torch.randn(1, 24, size, size)
        with torch.no_grad():
            net(x)
            start = time.perf_counter()
            for _ in range(5):
                net(x)
        print(f"{'paper encoder':>28} ({backbone} at {size}, rgb+2d): {1000 * (time.perf_counter() - start) / 5:.0f} ms "
              "per hand (forward only)")


if __name__ == "__main__":
    main()
