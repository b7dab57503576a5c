"""Speed and accuracy of the batched 2D fit (eq. 10) against a per-hand scipy baseline.

    python benchmarks/bench_fit2d.py [--model PATH] [--hands 256] [--subset 16] [--threads 1]

Fits noise-free keypoints of synthetic hands (pose coefficients uniform in [-2, 2], shape
N(0, 1) clipped at 2, uniformly random views, framed as a 2.2 l crop at 320 px) with
``fit.fit2d.Fit2D`` (batched Levenberg-Marquardt, analytic Jacobian), and a subset of them
with ``scipy.optimize.least_squares`` (MINPACK's LM) hand by hand and start by start, on the
same objective, reduced model and starts, with an autograd (forward-mode) Jacobian and
an equal budget (2 residual evaluations per iteration: one with the Jacobian, one trial).
Settings default to the quick profile's ``[fit2d]``.
Prints hands per second (the baseline's extrapolated from the subset), their ratio, and
median / 95th-percentile final reprojection errors in pixels.
Targets: >= 100 hands/s on a 2-core CPU, >= 10x the baseline, median < 1 px, 95% < 2 px.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from wildhands.config import load_profile
from wildhands.fit.fit2d import Fit2D, FitOptions, FitSettings
from wildhands.hand import keypoints as kp
from wildhands.hand.camera import axis_angle_to_matrix, weak_perspective_project
from wildhands.hand.hand_model import HandModel, HandModelFileError


def synthetic_keypoints(model: HandModel, count: int, seed: int, crop_size: int = 320, crop_scale: float = 2.2):
    g = torch.Generator().manual_seed(seed)
    betas = torch.randn(count, model.num_betas, generator=g, dtype=torch.float64).clamp(-2, 2)
    pose = 4 * torch.rand(count, model.num_pca_comps, generator=g, dtype=torch.float64) - 2
    quaternion = torch.nn.functional.normalize(torch.randn(count, 4, generator=g, dtype=torch.float64), dim=1)
    angle = 2 * torch.acos(quaternion[:, :1].abs().clamp(max=1))
    axis = torch.nn.functional.normalize(quaternion[:, 1:] * quaternion[:, :1].sign(), dim=1)
    rotation = axis_angle_to_matrix(axis * angle)                      # uniformly random rotations
    with torch.no_grad():
        keypoints = model(betas=betas, pose=pose).keypoints.double()
    root = keypoints[:, kp.ROOT]
    unit = weak_perspective_project(keypoints, rotation, torch.ones(count, dtype=torch.float64),
                                    torch.zeros(count, 2, dtype=torch.float64), root)
    low, high = unit.min(1).values, unit.max(1).values
    scale = crop_size / crop_scale / (high - low).max(1).values
    trans = (crop_size - 1) / 2 - scale[:, None] * (low + high) / 2
    return scale[:, None, None] * unit + trans[:, None]


def scipy_fit(fit: Fit2D, keypoints_2d: torch.Tensor, num_inits: int, tolerance: float, max_nfev: int):
    """Per hand and per start: least_squares on fit.residuals with an autograd Jacobian."""
    from scipy.optimize import least_squares

    confidences = torch.ones(keypoints_2d.shape[:2], dtype=torch.float64)
    starts = fit.starts(keypoints_2d, confidences, num_inits)
    errors = []
    for target, x_starts in zip(keypoints_2d, starts):
        sqrt_conf = torch.ones(1, kp.NUM_KEYPOINTS, dtype=torch.float64)
        residual = lambda v: fit.residuals(v[None], target[None], sqrt_conf)[0]  # noqa: E731
        jacobian = torch.func.jacfwd(residual)
        fun = lambda v: residual(torch.from_numpy(v)).numpy()  # noqa: E731
        jac = lambda v: jacobian(torch.from_numpy(v)).numpy()  # noqa: E731
        best = min((least_squares(fun, x0.numpy(), jac=jac, method="lm", ftol=tolerance, xtol=1e-10, gtol=1e-10,
                                  max_nfev=max_nfev) for x0 in x_starts), key=lambda r: r.cost)
        projected = fit.project(torch.from_numpy(best.x)[None])[0]
        errors.append(float((projected - target).norm(dim=-1).mean()))
    return np.array(errors)


def _stats(errors) -> str:
    errors = np.asarray(errors)
    return f"median {np.median(errors):6.3f} px  95% {np.percentile(errors, 95):6.3f} px  max {errors.max():6.2f} px"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="MANO-format pickle (default: the project's default)")
    parser.add_argument("--hands", type=int, default=256)
    parser.add_argument("--subset", type=int, default=16, help="hands fitted by the per-hand scipy baseline")
    defaults = FitSettings.from_config(load_profile("quick"))
    parser.add_argument("--inits", type=int, default=defaults.options.num_inits)
    parser.add_argument("--iterations", type=int, default=defaults.options.iterations)
    parser.add_argument("--tolerance", type=float, default=defaults.options.tolerance)
    parser.add_argument("--alpha-beta", type=float, default=defaults.energy.alpha_beta)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--autodiff", action="store_true", help="also time the batched fit with autodiff Jacobians")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    try:
        model = HandModel(args.model)
    except HandModelFileError as err:
        parser.exit(2, f"bench_fit2d: {err}\n")
    keypoints_2d = synthetic_keypoints(model, args.hands, args.seed)
    print(f"hand model: {model.name} ({model.path.name}), {args.hands} hands, {args.inits} starts, "
          f"<= {args.iterations} iterations, tolerance {args.tolerance:g}, alpha_beta {args.alpha_beta:g}, "
          f"threads {args.threads}")
    fit = Fit2D(model, alpha_beta=args.alpha_beta)
    fit.fit(keypoints_2d[:8], options=FitOptions(num_inits=args.inits, iterations=3))  # warm-up

    variants = [("batched LM, analytic Jacobian", fit)]
    if args.autodiff:
        variants.append(("batched LM, autodiff Jacobian", Fit2D(model, alpha_beta=args.alpha_beta,
                                                                analytic_jacobian=False)))
    ours_rate = None
    for name, fitter in variants:
        start = time.perf_counter()
        options = FitOptions(num_inits=args.inits, iterations=args.iterations, tolerance=args.tolerance)
        result = fitter.fit(keypoints_2d, options=options)
        seconds = time.perf_counter() - start
        rate = args.hands / seconds
        ours_rate = ours_rate or rate
        print(f"{name:34s} {rate:8.1f} hands/s ({seconds:.2f} s)  {_stats(result.error_px.numpy())}  "
              f"mean iterations {result.iterations.double().mean():.1f}")
        if ours_rate == rate:
            ours_subset = result.error_px.numpy()[:args.subset]

    start = time.perf_counter()
    errors = scipy_fit(fit, keypoints_2d[:args.subset], args.inits, args.tolerance, max_nfev=2 * args.iterations)
    seconds = time.perf_counter() - start
    scipy_rate = args.subset / seconds
    print(f"{'scipy least_squares, per hand':34s} {scipy_rate:8.1f} hands/s ({seconds:.2f} s for {args.subset}, "
          f"extrapolated)  {_stats(errors)}")
    print(f"{'batched LM on the same subset':34s} {'':8s}          {'':26s}{_stats(ours_subset)}")
    print(f"speed ratio (batched / per hand): {ours_rate / scipy_rate:.1f}x")


if __name__ == "__main__":
    main()
