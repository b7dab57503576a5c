"""The Levenberg-Marquardt solver's speed measures (fit.lm): same results, threads restored."""
import torch

from wildhands.fit import lm


def _problem(batch: int, size: int):
    """A batch of small nonlinear least-squares problems: r = (x^2 - target, x - 1)."""
    target = torch.linspace(0.5, 2.0, batch * size, dtype=torch.float64).reshape(batch, size)

    def residual_fn(x, t):
        return torch.cat([x.square() - t, 0.1 * (x - 1)], 1)

    def jacobian_fn(x, t):
        eye = torch.eye(x.shape[1], dtype=x.dtype).expand(x.shape[0], -1, -1)
        return residual_fn(x, t), torch.cat([2 * x[:, :, None] * eye, 0.1 * eye], 1)
    return residual_fn, jacobian_fn, torch.full_like(target, 0.3), target


def test_small_problems_run_on_one_thread_and_restore_the_setting():
    residual_fn, jacobian_fn, x0, target = _problem(2, 5)
    seen = []

    def watched(x, t):
        seen.append(torch.get_num_threads())
        return jacobian_fn(x, t)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        state = lm.levenberg_marquardt(residual_fn, x0, (target,), jacobian_fn=watched, iterations=20)
        assert torch.get_num_threads() == 2
        assert seen and set(seen) == {1}
        # The same problem with the solver's threads left alone gives the same answer.
        limit, lm.SINGLE_THREAD_ENTRIES = lm.SINGLE_THREAD_ENTRIES, 0
        try:
            seen.clear()
            threaded = lm.levenberg_marquardt(residual_fn, x0, (target,), jacobian_fn=watched, iterations=20)
        finally:
            lm.SINGLE_THREAD_ENTRIES = limit
        assert set(seen) == {2}
        torch.testing.assert_close(state.x, threaded.x, rtol=0, atol=1e-12)
        torch.testing.assert_close(state.x, target.sqrt(), rtol=0, atol=1e-2)
        assert torch.equal(state.iterations, threaded.iterations)
    finally:
        torch.set_num_threads(before)


def test_threads_restored_when_the_residuals_raise():
    residual_fn, jacobian_fn, x0, target = _problem(1, 3)

    def failing(x, t):
        raise RuntimeError("boom")
    before = torch.get_num_threads()
    try:
        lm.levenberg_marquardt(residual_fn, x0, (target,), jacobian_fn=failing)
    except RuntimeError:
        pass
    assert torch.get_num_threads() == before


def test_batch_results_equal_each_problem_alone():
    """Problems that converge at different iterations (the batch shrinks) get what each gets alone."""
    residual_fn, jacobian_fn, x0, target = _problem(4, 3)
    x0 = x0 + torch.tensor([[0.0], [0.5], [1.0], [2.0]], dtype=torch.float64)   # different distances
    calls = []

    def counted(x, t):
        calls.append(x.shape[0])
        return residual_fn(x, t)
    state = lm.levenberg_marquardt(counted, x0, (target,), jacobian_fn=jacobian_fn, iterations=30, ftol=1e-8)
    assert len(set(state.iterations.tolist())) > 1 and max(state.iterations.tolist()) < 30
    assert len(calls) == 1 + int(state.iterations.max()) and calls[:2] == [4, 4] and min(calls) < 4
    for i in range(4):
        alone = lm.levenberg_marquardt(residual_fn, x0[i:i + 1], (target[i:i + 1],), jacobian_fn=jacobian_fn,
                                       iterations=30, ftol=1e-8)
        torch.testing.assert_close(alone.x[0], state.x[i], rtol=0, atol=1e-14)
        assert int(alone.iterations) == int(state.iterations[i]) and bool(alone.converged) == bool(state.converged[i])
    # Autodiff Jacobians: the same answer.
    auto = lm.levenberg_marquardt(residual_fn, x0, (target,), iterations=30, ftol=1e-8)
    torch.testing.assert_close(auto.x, state.x, rtol=0, atol=1e-12)


def test_a_square_root_factor_of_the_normal_equations_gives_the_same_fit():
    """jacobian_fn may return (R^-T J^T r, R) with R^T R = J^T J instead of (r, J), as fit.temporal does:
    the energy still comes from residual_fn, so the fit is the same."""
    residual_fn, jacobian_fn, x0, target = _problem(3, 4)

    def square_root(x, t):
        r, jac = jacobian_fn(x, t)
        factor = torch.linalg.cholesky(jac.transpose(1, 2) @ jac).transpose(1, 2)           # R, upper
        rhs = torch.linalg.solve_triangular(factor.transpose(1, 2), jac.transpose(1, 2) @ r[..., None], upper=False)
        return rhs[..., 0], factor
    for iterations in (1, 2, 4, 30):          # step by step: every step accepted or rejected alike
        plain = lm.levenberg_marquardt(residual_fn, x0, (target,), jacobian_fn=jacobian_fn, iterations=iterations,
                                       ftol=0.0)
        folded = lm.levenberg_marquardt(residual_fn, x0, (target,), jacobian_fn=square_root, iterations=iterations,
                                        ftol=0.0)
        torch.testing.assert_close(folded.x, plain.x, rtol=0, atol=1e-10)
        torch.testing.assert_close(folded.cost, plain.cost, rtol=1e-10, atol=1e-14)
