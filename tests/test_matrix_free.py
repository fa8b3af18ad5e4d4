"""The matrix-free solver (GPyTorch's CG / stochastic Lanczos quadrature / LOVE on JAX kernel
products) against the dense Cholesky answers, which nobody in the matrix-free code wrote."""

import warnings

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("gpytorch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import bayeskit as bk  # noqa: E402
from bayeskit.core.errors import ConfigError, ModelError  # noqa: E402
from bayeskit.engines.exact.matrix_free import MatrixFreeObjective  # noqa: E402
from bayeskit.models.kernels import NNGP, RBF  # noqa: E402
from bayeskit.models.processes import Fixed, InverseGamma, LogNormal, ScaleMixtureProcess, blocked  # noqa: E402

# Tight settings: CG to 1e-8 and a rank-300 pivoted-Cholesky preconditioner, under which the
# stochastic log-determinant's spread over probe seeds was <= 4e-7 relative (three seeds, RBF, N = 2,000).
TIGHT = bk.MatrixFree(tolerance=1e-8, eval_tolerance=1e-8, probes=30, preconditioner_rank=300)


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 3, (n, 2))
    y = np.sin(X[:, 0]) * np.cos(X[:, 1]) + 0.1 * rng.standard_normal(n)
    return jnp.asarray(X), jnp.asarray(y)


def dense_value_and_grad(process, X, y):
    leaves, treedef = jax.tree_util.tree_flatten(process)
    f = lambda lv: jax.tree_util.tree_unflatten(treedef, lv).log_marginal_likelihood(X, y)  # noqa: E731
    return float(f(leaves)), [np.asarray(g) for g in jax.grad(f)(leaves)], leaves


@pytest.mark.parametrize("prior", [InverseGamma(2.0, 2.0), pytest.param(LogNormal(0.0, 1.0), marks=pytest.mark.slow),
                                   pytest.param(Fixed(1.0), marks=pytest.mark.slow)])
def test_log_marginal_and_gradient_equal_cholesky_at_2000(prior):
    # the issue's check: matrix-free = exact at N = 2,000 to 1e-4 (relative), for the closed-form
    # Student-t, a quadrature prior and the GP; gradients to 1e-3 relative (SLQ noise in the
    # logdet gradient, observed <= 2e-4 with these settings)
    X, y = data(2000)
    process = ScaleMixtureProcess(RBF(variance=1.0, lengthscale=0.7), noise=0.05, scale_prior=prior)
    exact, grad, leaves = dense_value_and_grad(process, X, y)
    value, mf_grad = MatrixFreeObjective(process, X, y, TIGHT).value_and_grad(leaves, seed=0)
    assert abs(value - exact) <= 1e-4 * abs(exact)
    free = slice(0, 4 if isinstance(prior, Fixed) else 5)  # the jitter's gradient is never used
    for g, h in zip(grad[free], mf_grad[free], strict=True):
        np.testing.assert_allclose(h, g, rtol=1e-3, atol=1e-3 * np.abs(grad[2]))


def test_float32_data_with_small_noise_equal_float64_cholesky():
    # issue 17: float32 data (JAX's default) on a 1-D ReLU NNGP, whose K is rank 2 plus rounding, so
    # κ(A) ≈ 3e6 at ε = 1e-3. With the solver in float32, log|A| was NaN for every probe seed and
    # ∂/∂σ_w² had the wrong sign; in float64 (K evaluated, stored at this N, and summed in float64)
    # it is the float64 Cholesky answer. The rank-2 preconditioner is exact here, so the
    # stochastic log-determinant has almost no spread: observed <= 1e-7 relative for the value and
    # ∂/∂σ_w², 2e-5 for ∂/∂ε; the tolerances leave 10-100x room
    rng = np.random.default_rng(0)
    X = rng.uniform(-3, 3, (800, 1))
    y = np.sin(2 * X[:, 0]) + 0.1 * rng.standard_normal(800)
    process = ScaleMixtureProcess(NNGP(), noise=1e-3, scale_prior=InverseGamma(2.0, 2.0))
    exact, grad, leaves = dense_value_and_grad(process, jnp.asarray(X), jnp.asarray(y))
    X32, y32 = jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32)
    leaves32 = [jnp.asarray(v, jnp.float32) for v in leaves]
    objective = MatrixFreeObjective(process, X32, y32, bk.MatrixFree())
    for seed in range(3):
        value, mf_grad = objective.value_and_grad(leaves32, seed=seed)
        assert abs(value - exact) <= 1e-5 * abs(exact)
        np.testing.assert_allclose(mf_grad[0], grad[0], rtol=1e-5)  # weight_var (bias_var = 0 is not learned)
        np.testing.assert_allclose(mf_grad[2:5], grad[2:5], rtol=1e-3)  # noise and the prior's a, b


@pytest.mark.slow  # ~3 minutes on 2 cores, 5.7 GB
def test_issue_17_nngp_at_12000_float32_takes_steps_at_the_cholesky_answer():
    # docs/processes.md's large-N example at N = 12,000 with float32 data, where issue 17 took no
    # step (log|A| NaN, then weight_var NaN from a zero-padded block). The reference is the float64
    # Cholesky log ML at the starting point on these data, -12236.2472 (computed once, blockwise:
    # 7 minutes, 3.7 GB); the matrix-free estimate was 0.004 from it; 0.1 nats is 2e-5 of the whole
    # and covers the stochastic log-determinant's seeds
    rng = np.random.default_rng(0)
    X = rng.uniform(-3, 3, (12_000, 1)).astype(np.float32)
    y = (np.sin(2 * X[:, 0]) + 0.1 * rng.standard_normal(12_000)).astype(np.float32)
    process = ScaleMixtureProcess(NNGP(hidden_layers=2), noise=0.1, scale_prior=InverseGamma(2.0, 2.0))
    engine = bk.Exact(steps=3, solver=bk.MatrixFree(probes=10, tolerance=0.01), progress=False)
    post = bk.fit(process, data={"X": X, "y": y}, engine=engine, seed=0)
    assert len(post.history) == 3 and np.all(np.isfinite(post.history))
    assert post.history[0] == pytest.approx(-12236.2472, abs=0.1)
    assert post.history[-1] > post.history[0] and np.isfinite(post.log_marginal_likelihood)
    assert post.hyperparameters()["kernel.weight_var"] != 2.0


@pytest.mark.slow  # 58 s; the matrix-free fit and posterior stay in the default tier
def test_predictive_equals_cholesky():
    # mean: CG to 1e-8; variance: LOVE's rank-100 Lanczos approximation of A⁻¹ (observed 1e-3
    # relative at these settings; LOVE can only over-estimate the variance)
    X, y = data(1500)
    process = ScaleMixtureProcess(NNGP(weight_var=1.5, bias_var=0.2), noise=0.05, scale_prior=InverseGamma(2.0, 2.0))
    engine = dict(optimize=False, progress=False)
    dense = bk.fit(process, {"X": X, "y": y}, engine=bk.Exact(solver="cholesky", **engine))
    mf = bk.fit(process, {"X": X, "y": y}, engine=bk.Exact(solver=TIGHT, **engine))
    Xt, yt = data(200, seed=1)
    pd, pm = dense.predict({"X": Xt}), mf.predict({"X": Xt})
    assert pm.family == pd.family == "student_t"
    np.testing.assert_allclose(pm.mean, pd.mean, atol=1e-5)
    np.testing.assert_allclose(pm.df, pd.df)
    np.testing.assert_allclose(pm.variance, pd.variance, rtol=5e-3)
    assert np.all(pm.variance >= pd.variance * (1 - 1e-6))
    np.testing.assert_allclose(mf.log_marginal_likelihood, dense.log_marginal_likelihood, rtol=1e-4)
    np.testing.assert_allclose(pm.log_prob(yt), pd.log_prob(yt), atol=5e-3)


def test_fit_follows_the_cholesky_path_and_the_posterior_works_downstream():
    # 15 Adam steps from the same start: the stochastic gradients (10 probes) keep the path within
    # 2% of the exact one; the posterior then summarises and saves like any other
    X, y = data(600)
    process = ScaleMixtureProcess(RBF(variance=1.0, lengthscale=1.0), noise=0.1, scale_prior=InverseGamma(2.0, 2.0))
    common = dict(steps=15, learning_rate=0.05, progress=False)
    dense = bk.fit(process, {"X": X, "y": y}, engine=bk.Exact(solver="cholesky", **common), seed=1)
    mf = bk.fit(process, {"X": X, "y": y}, engine=bk.Exact(solver="cg", **common), seed=1)
    for name, value in dense.hyperparameters().items():
        np.testing.assert_allclose(mf.hyperparameters()[name], value, rtol=0.02, err_msg=name)
    assert len(mf.history) == 15
    assert isinstance(mf.engine, bk.Exact) and mf.engine.solver == "cg" and mf.markov is False
    draws = mf.sample(100, seed=0)
    assert draws["f"].shape == (100, 600) and np.all(draws["sigma2"] > 0)
    f = mf.sample_functions(X[:5], 10, seed=0)
    assert f.shape == (10, 5) and np.all(np.isfinite(f))


def test_same_seed_same_answer_and_recomputed_products_equal_stored_ones():
    X, y = data(300)
    process = ScaleMixtureProcess(NNGP(), noise=0.1, scale_prior=InverseGamma(2.0, 2.0))
    leaves = jax.tree_util.tree_leaves(process)
    stored = MatrixFreeObjective(process, X, y, bk.MatrixFree(cache="float64")).value_and_grad(leaves, seed=3)
    again = MatrixFreeObjective(process, X, y, bk.MatrixFree(cache="float64")).value_and_grad(leaves, seed=3)
    fresh = MatrixFreeObjective(process, X, y, bk.MatrixFree(cache=None)).value_and_grad(leaves, seed=3)
    assert stored[0] == again[0]
    np.testing.assert_allclose(fresh[0], stored[0], rtol=1e-10)
    for a, b in zip(fresh[1], stored[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("kernel", [NNGP(weight_var=1.3, bias_var=0.1, activation="erf"), NNGP()], ids=["erf", "relu"])
@pytest.mark.parametrize("rows", [1, 7, 64])
def test_blocked_products_equal_dense(rows, kernel):
    # padding rows must contribute nothing: 50 points in blocks of 7 leave a partial block;
    # the same float64 sums in another order agree to ~1e-13, hence rtol 1e-10. The ReLU NNGP
    # without bias had a NaN gradient at a zero-padded row (0·NaN = NaN; issue 17 at N = 12,000)
    X, _ = data(50)
    Xt, _ = data(9, seed=2)
    V = jax.random.normal(jax.random.key(0), (50, 3), dtype=X.dtype)
    U = jax.random.normal(jax.random.key(1), (50, 3), dtype=X.dtype)
    K = kernel(X)
    np.testing.assert_allclose(blocked.kernel_matmul(kernel, X, X, V, rows=rows), K @ V, rtol=1e-10)
    np.testing.assert_allclose(blocked.kernel_rows(kernel, X, rows=rows, dtype=jnp.float64)[:50], K, rtol=1e-10)
    leaves, treedef = jax.tree_util.tree_flatten(kernel)
    dense = jax.grad(lambda lv: jnp.sum(U * (jax.tree_util.tree_unflatten(treedef, lv)(X) @ V)))(leaves)
    for a, b in zip(blocked.kernel_bilinear_grad(kernel, X, U, V, rows=rows), dense, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10)
    alpha, R = V[:, 0], U
    mean, reduction = blocked.cross_moments(kernel, X, Xt, alpha, R, rows=rows)
    Ks = kernel(Xt, X)
    np.testing.assert_allclose(mean, Ks @ alpha, rtol=1e-10)
    np.testing.assert_allclose(reduction, jnp.sum((Ks @ R) ** 2, 1), rtol=1e-10)


def test_large_n_sample_draws_sigma2_only_with_a_warning(monkeypatch):
    from bayeskit.engines.exact import matrix_free

    monkeypatch.setattr(matrix_free, "MAX_JOINT_F", 100)
    X, y = data(200)
    process = ScaleMixtureProcess(RBF(), noise=0.1, scale_prior=InverseGamma(2.0, 2.0))
    post = bk.fit(process, {"X": X, "y": y}, engine=bk.Exact(solver="cg", optimize=False, progress=False))
    with pytest.warns(UserWarning, match="sample_functions"):
        draws = post.sample(50)
    assert set(draws) == {"sigma2"} and draws["sigma2"].shape == (50,)


def test_bad_settings_and_zero_noise_are_named_errors():
    with pytest.raises(ConfigError, match="solver"):
        bk.Exact(solver="lu")
    with pytest.raises(ConfigError, match="probes"):
        bk.MatrixFree(probes=0)
    with pytest.raises(ConfigError, match="eval_tolerance"):
        bk.MatrixFree(eval_tolerance=-1.0)
    with pytest.raises(ConfigError, match="cache"):
        bk.MatrixFree(cache="float16")
    X, y = data(50)
    process = ScaleMixtureProcess(RBF(), noise=0.0, scale_prior=InverseGamma(2.0, 2.0))
    with pytest.raises(ModelError, match="noise > 0"):
        bk.fit(process, {"X": X, "y": y}, engine=bk.Exact(solver="cg", optimize=False, progress=False))


def test_auto_picks_cholesky_up_to_ten_thousand_points():
    engine = bk.Exact()
    assert engine.matrix_free(10_000) is None
    assert isinstance(engine.matrix_free(10_001), bk.MatrixFree)
    assert bk.Exact(solver="cholesky").matrix_free(10**6) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bk.Exact(solver=TIGHT).matrix_free(10) is TIGHT
