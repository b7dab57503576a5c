"""predict on the labelled real photos: the output's 2D error against its detector's, and its 3D
error against MediaPipe's world landmarks where the labels have 3D.

    python benchmarks/bench_labelled_photos.py [--photos ../shared/real_photos] [--checkpoint PATH]
                                           [--write outputs/metrics/real_photos.json]

Runs ``photo_eval.evaluate_photos`` in both modes (MediaPipe finding the hands; the labelled 2D
keypoints given) for three refinements: none (the network alone), the refinement as it was
(global keypoint noise model, no 3D term) and as it is now (this photo's keypoint sigmas and the
detector's 3D world landmarks). The guarantee: the output's median 2D error is no higher than
the detector's. Then how closely the hand model itself, with no prior, reaches the detector's keypoints
and the labels (``photo_eval.photo_model_reach``). Skips with a message when the folder is absent; the
photos are only read.
"""
from __future__ import annotations

import argparse
import time

from wildhands.app.photo_eval import MODES, evaluate_photos, photo_model_reach, print_report, summary_table
from wildhands.app.predict import Predictor
from wildhands.fileio import write_json
from wildhands.paths import REAL_PHOTOS_DIR

SETTINGS = {
    "network only": (False, {}),
    "refined, global sigma, no 3D term": (True, {"refine.keypoint_sigma": "global", "refine.world_sigma_mm": 0.0}),
    "refined (current profile)": (True, {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", default=str(REAL_PHOTOS_DIR), help="folder with labels.json")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--write", default=None, help="write the reports as JSON here")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of every refinement (e.g. refine.w_theta=0.25)")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
    if not (REAL_PHOTOS_DIR / "labels.json").is_file() and args.photos == str(REAL_PHOTOS_DIR):
        print(f"skipped: no labelled photos at {args.photos}")
        return
    out = {}
    for name, (refine, overrides) in SETTINGS.items():
        predictor = Predictor(args.checkpoint, refine=refine, config_overrides={**extra, **overrides})
        for mode in MODES:
            start = time.perf_counter()
            report = evaluate_photos(predictor, args.photos, mode, progress=False)
            print(f"\n##### {name} ({time.perf_counter() - start:.1f} s)")
            print_report(report)
            out.setdefault(name, {})[mode] = report
    print("\n" + summary_table(out))
    reach = photo_model_reach(Predictor(args.checkpoint, refine=False), args.photos)
    print(f"\nWith no prior the hand model comes within {reach['detector_px_median']:.2f} px of the detector's "
          f"keypoints and {reach['labels_px_median']:.2f} px of the labels (median over hands, px at 320; "
          f"photo_eval.model_reach_px): errors the model can reach are a hand's, which no refinement removes")
    out["model_reach"] = reach
    if args.write:
        write_json(args.write, out)
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
