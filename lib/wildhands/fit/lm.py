"""Batched Levenberg-Marquardt: many independent least-squares problems at once, in torch.

(B, P, P) normal equations solved by batched Cholesky, Marquardt's diagonal damping and per-problem
trust updates (Nielsen); converged problems leave the batch. Jacobians are analytic when the caller
gives them, else from forward-mode autodiff (one pass per parameter, all problems at once).
Small batches (a few hands: ``SINGLE_THREAD_ENTRIES``) run on one intra-op thread, which their tiny
operations cannot share out.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

# Problems whose normal equations have at most this many entries (batch x P x P) run with one
# intra-op thread: their operations are too small to gain from a second one, and a parallel
# region waits for a core to wake (milliseconds each when the cores are shared).
SINGLE_THREAD_ENTRIES = 1 << 16


def _jacobian(residual_fn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Residuals (B, M) and their Jacobian (B, M, P) of a per-hand residual function.

    Hands are independent, so the batched Jacobian is block diagonal: one forward-mode
    pass per parameter, with that parameter's tangent set for every hand, gives all blocks.
    """
    batch, num_params = x.shape
    basis = torch.eye(num_params, dtype=x.dtype, device=x.device)[:, None, :].expand(num_params, batch, num_params)
    primal, columns = torch.func.vmap(lambda v: torch.func.jvp(residual_fn, (x,), (v,)))(basis)
    return primal[0], columns.permute(1, 2, 0)


@contextlib.contextmanager
def _intra_op_threads(count: int | None):
    """torch's intra-op threads set to ``count`` inside the block (None: unchanged), restored after."""
    before = torch.get_num_threads()
    if count is None or count == before:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class LMState:
    x: torch.Tensor            # (B, P)
    cost: torch.Tensor         # (B,) sum of squared residuals
    iterations: torch.Tensor   # (B,) iterations run per problem
    converged: torch.Tensor    # (B,) bool


def _normal_equations(residual_fn, jacobian_fn, x: torch.Tensor, data: tuple):
    """Residuals r (b, M), J^T J (b, P, P) and J^T r (b, P) at x (b, P)."""
    r, jac = (_jacobian(lambda v: residual_fn(v, *data), x) if jacobian_fn is None
              else jacobian_fn(x, *data))
    jac_t = jac.transpose(1, 2)
    return r, jac_t @ jac, (jac_t @ r[..., None])[..., 0]


def _damped_step(a: torch.Tensor, g: torch.Tensor, lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Marquardt's step per problem, (A + lam diag(A)) step = -g by Cholesky: (step, solvable);
    an unsolvable problem's step is -g (it is rejected)."""
    diag = a.diagonal(dim1=1, dim2=2)
    diag = diag.clamp_min(1e-12 * diag.amax(1, keepdim=True).clamp_min(1e-30))
    damped = a.clone()
    damped.diagonal(dim1=1, dim2=2).add_(lam[:, None] * diag)
    chol, info = torch.linalg.cholesky_ex(damped)
    solvable = info == 0
    if not bool(solvable.all()):
        chol = torch.where(solvable[:, None, None], chol, torch.eye(chol.shape[-1], dtype=a.dtype, device=a.device))
    return -torch.cholesky_solve(g[..., None], chol)[..., 0], solvable


def levenberg_marquardt(residual_fn, x0: torch.Tensor, data: tuple = (), jacobian_fn=None, iterations: int = 50,
                        damping: float = 1e-3, ftol: float = 1e-6, xtol: float = 1e-10, gtol: float = 1e-10,
                        progress=None) -> LMState:
    """Minimise |residual_fn(x, *data)|^2 for a batch of independent problems.

    ``residual_fn(x (b, P), *data_b) -> (b, M)`` must treat rows independently; ``data``
    holds (B, ...) tensors indexed alongside ``x``, so converged problems drop out of the
    batch. ``jacobian_fn(x, *data_b) -> (residuals, (b, M, P) Jacobian)``; without it the
    Jacobian comes from forward-mode autodiff. Damping is Marquardt's (lambda * diag(J^T J)),
    updated per problem as Nielsen's. A problem stops when an accepted step lowers its energy
    by less than ``ftol`` (relative), its step or gradient vanishes, or its damping explodes.
    Small batches (at most ``SINGLE_THREAD_ENTRIES`` entries of normal equations) run with one
    intra-op thread, the caller's residual and Jacobian functions included; the setting is restored.
    """
    single = x0.shape[0] * x0.shape[1] ** 2 <= SINGLE_THREAD_ENTRIES
    with _intra_op_threads(1 if single else None):
        return _levenberg_marquardt(residual_fn, x0, data, jacobian_fn, iterations, damping, ftol, xtol, gtol,
                                    progress)


def _levenberg_marquardt(residual_fn, x0, data, jacobian_fn, iterations, damping, ftol, xtol, gtol, progress):
    x = x0.clone()
    batch = x.shape[0]
    # The energy always from residual_fn: a jacobian_fn may return any factor with the same normal
    # equations (fit.temporal's square-root factor), whose residuals do not sum to the energy.
    cost = residual_fn(x, *data).square().sum(1)
    if iterations > 0:  # the first step's normal equations
        _, jtj, grad = _normal_equations(residual_fn, jacobian_fn, x, data)
    lam = torch.full((batch,), damping, dtype=x.dtype, device=x.device)
    nu = torch.full_like(lam, 2.0)
    done = ~torch.isfinite(cost)
    count = torch.zeros(batch, dtype=torch.long, device=x.device)
    # Normal equations at the current x, recomputed only where a step was accepted (stale).
    stale = torch.zeros(batch, dtype=torch.bool, device=x.device)
    for _ in range(iterations):
        idx = (~done).nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        # While every problem is active (the usual case for a few hands), no gathering and scattering.
        whole = idx.numel() == batch
        take = (lambda t: t) if whole else (lambda t: t.index_select(0, idx))  # noqa: E731
        sub = tuple(take(d) for d in data)
        update = stale.nonzero().squeeze(1) if whole else idx[stale.index_select(0, idx)]
        if update.numel() == batch:
            _, jtj, grad = _normal_equations(residual_fn, jacobian_fn, x, data)
        elif update.numel():
            _, jtj[update], grad[update] = _normal_equations(
                residual_fn, jacobian_fn, x.index_select(0, update), tuple(d.index_select(0, update) for d in data))
        xa, a, g, lam_a, nu_a, cost_a = take(x), take(jtj), take(grad), take(lam), take(nu), take(cost)
        step, solvable = _damped_step(a, g, lam_a)
        x_new = xa + step
        cost_new = residual_fn(x_new, *sub).square().sum(1)
        predicted = -(2 * (step * g).sum(1) + (step[:, None, :] @ a @ step[..., None])[:, 0, 0])
        gain = (cost_a - cost_new) / predicted.clamp_min(1e-300)
        accept = solvable & torch.isfinite(cost_new) & (cost_new < cost_a)
        small_step = step.norm(dim=1) <= xtol * (xa.norm(dim=1) + xtol)
        small_drop = accept & (cost_a - cost_new <= ftol * cost_a)
        flat = g.abs().amax(1) <= gtol
        shrink = torch.clamp(1 - (2 * gain - 1) ** 3, min=1 / 3)
        lam_a = torch.where(accept, lam_a * shrink, lam_a * nu_a)
        state = (torch.where(accept[:, None], x_new, xa), torch.where(accept, cost_new, cost_a), lam_a,
                 torch.where(accept, torch.full_like(nu_a, 2.0), nu_a * 2), accept,
                 small_step | small_drop | flat | (lam_a > 1e16))
        if whole:
            x, cost, lam, nu, stale, done = state
            count += 1
        else:
            x[idx], cost[idx], lam[idx], nu[idx], stale[idx], done[idx] = state
            count[idx] += 1
        if progress is not None:
            progress.update(1)
    return LMState(x=x, cost=cost, iterations=count, converged=done)
