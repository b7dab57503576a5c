"""Accuracy of trained networks on held-out synthetic samples (the synthetic test split).

For each variant's checkpoint (default: the profile's fine-tuned ones), the root-aligned mean 3D
keypoint error (mm, 21 keypoints) and the 2D error (px at the 320 crop), three ways
(``evaluation.evaluate_network``): heat-maps from clean keypoints, from detector-like keypoints
(MediaPipe's measured noise model), and the network's prediction refined by the batched 2D fit
to those detector-like keypoints. Then, per variant, where the error comes from
(``evaluation.error_breakdown``): the error with the rotation, shape or pose replaced by the
truth, and the rotation error in degrees, in and out of the image plane.

    python benchmarks/bench_train_accuracy.py [--profile quick] [--variants 2d rgb rgb+2d]
        [--stage finetune|pretrain] [--count 300] [--no-refine] [--checkpoint PATH ...]

Prints a table and writes outputs/metrics/bench_train_accuracy.json.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from wildhands.config import apply_overrides, load_profile
from wildhands.data.synthetic import SyntheticHandDataset, generate_synthetic_set, synthetic_root
from wildhands.eval.protocol import TRUTH_SUBSTITUTIONS, error_breakdown, evaluate_network, headline, label_vectors
from wildhands.fileio import write_json
from wildhands.net.checkpoints import load_model
from wildhands.net.inference import current_inference_config
from wildhands.net.train import default_run_dir, variant_config
from wildhands.paths import output_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--variants", nargs="+", default=["2d", "rgb", "rgb+2d"])
    parser.add_argument("--stage", choices=("pretrain", "finetune"), default="finetune")
    parser.add_argument("--count", type=int, default=None, help="test samples (default: the whole split)")
    parser.add_argument("--no-refine", action="store_true", help="skip the 2D-fit refinement")
    parser.add_argument("--checkpoint", nargs="+", default=None,
                        help="checkpoints to score instead of the profile's (the shipped one, an experiment's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override an inference setting for this run (e.g. refine.pose_space=full)")
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.set)

    config = load_profile(args.profile)
    # The test split of the profile's hand model: made, or remade when its shards were rendered
    # from another hand model or other settings (a no-op when it is current).
    generate_synthetic_set(config, split="test")
    test_set = SyntheticHandDataset(synthetic_root(config), "test")
    set_model = test_set.manifest["hand_model"]
    if args.count:
        test_set = torch.utils.data.Subset(test_set, range(min(args.count, len(test_set))))
    checkpoints = args.checkpoint or [default_run_dir(variant_config(config, variant), args.stage) / "final.pt"
                                      for variant in args.variants]
    truth = label_vectors(test_set, range(len(test_set)))
    rows, breakdowns = {}, {}
    print(f"{'variant':8} {'inputs':9} {'3D mm':>7} {'3D mm (Procrustes)':>19} {'2D px':>7}")
    for checkpoint in checkpoints:
        model, trained_config = load_model(checkpoint)
        if model.hand_model.hash != set_model:
            print(f"warning: {checkpoint} decodes with hand model {model.hand_model.hash}, the test hands were "
                  f"made with {set_model}: its errors include the difference between the two models")
        trained_config = apply_overrides(current_inference_config(trained_config), overrides)   # [inference], [fit2d], [refine] as the profile has them now
        variant = model.variant if args.checkpoint is None else str(checkpoint)
        start = time.perf_counter()
        result = evaluate_network(model, test_set, trained_config, refine=not args.no_refine)
        rows[variant] = {"checkpoint": str(checkpoint), "seconds": time.perf_counter() - start,
                         **{mode: headline(s) for mode, s in result["summary"].items()}}
        for mode, s in result["summary"].items():
            h = headline(s)
            print(f"{model.variant:8} {mode:9} {h['error_3d_mm']:7.1f} {h['error_3d_procrustes_mm']:19.1f} "
                  f"{h['error_2d_px']:7.1f}", flush=True)
        breakdowns[variant] = {mode: error_breakdown(model.hand_model, result["raw"][mode]["pred_params"], truth)
                               for mode in ("clean", "detector")}
        rows[variant]["breakdown"] = breakdowns[variant]
    names = ["none", *("+".join(parts) for parts in TRUTH_SUBSTITUTIONS[1:])]
    print("\nroot-aligned 3D mm with these parts of the prediction replaced by the truth; rotation error (deg)")
    print(f"{'variant':8} {'inputs':9} " + " ".join(f"{n:>13}" for n in names) + f" {'R deg':>6} {'in':>5} {'out':>5}")
    for variant, modes in breakdowns.items():
        for mode, b in modes.items():
            print(f"{_label(variant):8} {mode:9} " + " ".join(f"{b[n]:13.1f}" for n in names) +
                  f" {b['rotation_deg']:6.1f} {b['rotation_in_plane_deg']:5.1f} {b['rotation_out_of_plane_deg']:5.1f}")
    path = write_json(output_dir("metrics") / "bench_train_accuracy.json",
                      {"profile": args.profile, "stage": args.stage, "count": len(test_set), "variants": rows})
    print(f"wrote {path}")
    return 0


def _label(variant_or_checkpoint: str) -> str:
    """A variant's name, or a checkpoint's file stem with its run folder for final.pt and last.pt."""
    path = Path(variant_or_checkpoint)
    return f"{path.parent.name}/{path.stem}" if path.stem in ("final", "last") and path.parent.name else path.stem


if __name__ == "__main__":
    raise SystemExit(main())
