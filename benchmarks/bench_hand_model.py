"""Forward and forward+backward time of the hand-model layer against smplx.MANO called directly.

    python benchmarks/bench_hand_model.py [--model PATH] [--threads N]

Prints, for batch 1, 64 and 1024 on the CPU: median milliseconds per call of the
project's ``HandModel`` and of ``smplx.MANO`` on the same arrays, and their ratio
(target: no slower than smplx, ratio <= 1.05 within timing noise).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import time

import numpy as np
import torch


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def _ours_outputs(layer, betas, pose, orient):
    out = layer(betas, pose, orient)
    return torch.cat([out.vertices, out.keypoints], 1)


def _smplx_outputs(layer, betas, pose, orient):
    out = layer(betas=betas, hand_pose=pose, global_orient=orient)
    return torch.cat([out.vertices, out.joints], 1)


def main() -> None:
    import smplx
    from smplx.utils import Struct

    from wildhands.hand.hand_model import HandModel, load_mano_arrays

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="MANO-format pickle (default: the project's default)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ours = HandModel(args.model)
    with contextlib.redirect_stdout(io.StringIO()):
        ref = smplx.MANO(str(ours.path), data_struct=Struct(**load_mano_arrays(ours.path)), use_pca=True,
                         num_pca_comps=10, flat_hand_mean=False, num_betas=10, create_global_orient=False,
                         create_hand_pose=False, create_betas=False, create_transl=False, create_body_pose=False)
    print(f"hand model: {ours.name} ({ours.path.name}, {ours.num_vertices} vertices), threads {args.threads}")
    print(f"{'batch':>6} {'mode':>17} {'ours ms':>9} {'smplx ms':>9} {'ratio':>6}")
    for batch in (1, 64, 1024):
        g = torch.Generator().manual_seed(batch)
        betas, pose, orient = (torch.randn(batch, n, generator=g) for n in (10, 10, 3))
        repeats = 50 if batch < 1024 else 10
        for mode in ("forward", "forward+backward"):
            def run(layer, call):
                def step():
                    b, p, o = (t.clone().requires_grad_(mode != "forward") for t in (betas, pose, orient))
                    with torch.set_grad_enabled(mode != "forward"):
                        out = call(layer, b, p, o)
                        if mode != "forward":
                            out.sum().backward()
                return step
            ms_ours = _median_ms(run(ours, _ours_outputs), repeats)
            ms_ref = _median_ms(run(ref, _smplx_outputs), repeats)
            print(f"{batch:>6} {mode:>17} {ms_ours:>9.2f} {ms_ref:>9.2f} {ms_ours / ms_ref:>6.2f}")


if __name__ == "__main__":
    main()
