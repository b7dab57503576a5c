"""Synthetic samples per second per core at 320x320, from sampling to the written sample.

    python benchmarks/bench_synth.py [--samples 200] [--profile quick]

Times ``generate_synthetic_set`` with one worker (one core, one torch thread): sampling, the
hand model, the smooth (per-vertex colours) or flat-shaded rendering, backgrounds, occluders,
keypoint occlusion, JPEG encoding and the shard write. Wall time counts other processes'
load on a shared machine; CPU time is this process's own. Also times the rasterizer alone.
Target: at least 30 samples/s per core, smooth shading.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch

from wildhands.config import load_profile
from wildhands.data import synthetic
from wildhands.data.render import is_closed_outward, rasterize
from wildhands.hand.hand_model import hand_model_from_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--profile", default="quick")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_profile(args.profile, {"synthetic.num_val": args.samples, "synthetic.workers": 1,
                                         "synthetic.shard_size": 100})
    model = hand_model_from_config(config)
    synthetic.render_samples(model, config, "val", range(2))  # warm caches (background photos)
    closed = is_closed_outward(model.mano.v_template.numpy(), model.faces)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall times assume an idle machine)")
    print(f"hand model {model.name}: {model.num_vertices} vertices, {len(model.faces)} faces, "
          f"{'closed (back faces culled)' if closed else 'open (all faces rasterized)'}; 1 core")
    for shading in ("smooth", "flat"):
        run = {**config, "synthetic": {**config["synthetic"], "shading": shading}}
        with tempfile.TemporaryDirectory() as root:
            start, start_cpu = time.perf_counter(), time.process_time()
            synthetic.generate_synthetic_set(run, root, "val", hand_model=model, progress=False)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        print(f"{shading + ' shading, whole sample':>30}: {args.samples / elapsed:6.1f} samples/s per core wall, "
              f"{args.samples / cpu:6.1f} per CPU second ({1000 * elapsed / args.samples:.1f} ms wall, "
              f"{1000 * cpu / args.samples:.1f} ms CPU each)")

    assets = synthetic.HandAssets.of(model)
    rng = np.random.default_rng(0)
    hands = []
    for _ in range(min(args.samples, 50)):
        p = synthetic.sample_parameters(rng, synthetic.SyntheticSettings.from_config(config), assets.frame,
                                        model.num_betas, model.num_pca_comps)
        with torch.no_grad():
            out = model(betas=torch.as_tensor(p.betas[None], dtype=model.dtype),
                        pose=torch.as_tensor(p.pose[None], dtype=model.dtype))
        verts, keys = out.vertices[0].double().numpy(), out.keypoints[0].double().numpy()
        cam, keys_cam = (verts - keys[0]) @ p.rotation.T, (keys - keys[0]) @ p.rotation.T
        scale, trans = synthetic.place_in_crop(keys_cam, rng, 320, 2.2)
        hands.append((scale * cam[:, :2] + trans, cam[:, 2]))
    for cull in (False, True):
        start = time.perf_counter()
        for verts_2d, depth in hands:
            rasterize(verts_2d, depth, model.faces, 320, 320, cull_backfaces=cull)
        elapsed = (time.perf_counter() - start) / len(hands)
        print(f"{'rasterize, ' + ('back faces culled' if cull else 'all faces'):>30}: {1000 * elapsed:6.1f} ms per hand")

if __name__ == "__main__":
    main()
