"""Synthetic samples per second per core at 320x320, from sampling to the written sample.

    python benchmarks/bench_synth.py [--samples 200]

Times ``generate_synthetic_set`` with one worker (one core): sampling, the hand model, the
textured (per-vertex colour) or flat-shaded rendering, backgrounds, occluders, JPEG encoding
and the shard write. Target: at least 30 samples/s per core, textured.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from wildhands.config import load_profile
from wildhands.hand_model import HandModel
from wildhands import synthetic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_profile("quick", {"synthetic.num_val": args.samples, "synthetic.workers": 1,
                                    "synthetic.shard_size": 100})
    model = HandModel()
    synthetic.render_samples(model, config, "val", range(2))  # warm caches (background photos)
    print(f"hand model {model.name}: {model.num_vertices} vertices, {len(model.faces)} faces; 1 core")
    for name, flat in (("textured (per-vertex colours)", False), ("flat-shaded fast path", True)):
        original = synthetic.render

        def render(*a, _flat=flat, **k):
            return original(*a, flat=_flat, **k)

        synthetic.render = render
        with tempfile.TemporaryDirectory() as root:
            start = time.perf_counter()
            synthetic.generate_synthetic_set(config, root, "val", hand_model=model, progress=False)
            elapsed = time.perf_counter() - start
        synthetic.render = original
        print(f"{name:>30}: {args.samples / elapsed:6.1f} samples/s per core ({1000 * elapsed / args.samples:.1f} ms each)")


if __name__ == "__main__":
    main()
