"""Deep kernel machines and `bk.Optimize`: the KL and Gram kernels against independent formulas, the
ν = ∞ limit against the NNGP Gaussian process of `bk.Exact`, the ~1/ν approach to it, the sparse machine
against the full one, gradients against finite differences, representation learning on a toy, the
engine's contract (no recompiles, non-finite stops, L-BFGS) and bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import cdist

import bayeskit as bk
from bayeskit.core.errors import ConfigError, DataError, ModelError
from bayeskit.models.dkm import gram_kernels as gk
from bayeskit.models.dkm.layers import kl_from_factor, kl_whitened
from bayeskit.models.kernels import NNGP
from bayeskit.models.processes import Fixed, ScaleMixtureProcess

FIXED = ("weight_var", "bias_var", "noise")  # hyperparameters held, so the Grams are the only parameters


def regression(n=20, seed=0, d=2):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, np.sin(2 * X[:, 0]) + 0.1 * rng.normal(size=n)


def gaussian_kl(G, K):
    """KL(N(0, G) ‖ N(0, K)) with NumPy: ½[tr(K⁻¹G) − log det(K⁻¹G) − P]."""
    KinvG = np.linalg.solve(K, G)
    return 0.5 * (np.trace(KinvG) - np.linalg.slogdet(KinvG)[1] - G.shape[0])


def random_spd(P, rng):
    A = rng.normal(size=(P, P))
    return A @ A.T / P + 0.5 * np.eye(P)


def perturbed(params, scale, seed):
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [v + scale * jax.random.normal(k, v.shape, v.dtype) for v, k in zip(leaves, keys, strict=True)])


@pytest.fixture(scope="module")
def nngp_gp():
    """The GP with the NNGP kernel of L + 1 = 3 hidden layers: the ν = ∞ limit of a 2-layer DKM."""
    X, y = regression()
    kernel = NNGP(weight_var=2.0, bias_var=0.1, hidden_layers=3, activation="relu")
    return bk.fit(ScaleMixtureProcess(kernel, noise=0.1, scale_prior=Fixed(1.0)), {"X": X, "y": y},
                  engine=bk.Exact(optimize=False))


# -- the pieces against independent formulas -----------------------------------------------------------
def test_kl_against_closed_form_and_zero_at_the_prior():
    rng = np.random.default_rng(0)
    P = 12
    K, G = random_spd(P, rng), random_spd(P, rng)
    L = np.linalg.cholesky(K)
    V = np.linalg.cholesky(G) * math.sqrt(P)  # G = V Vᵀ / P
    # float64 arithmetic on O(10) numbers: agreement to 1e-10 relative
    np.testing.assert_allclose(float(kl_from_factor(jnp.asarray(V), jnp.asarray(L))), gaussian_kl(G, K), rtol=1e-10)
    W = np.linalg.solve(L, V)  # whitened: G = L W Wᵀ Lᵀ / P, W lower triangular
    np.testing.assert_allclose(float(kl_whitened(jnp.asarray(np.tril(W)))), gaussian_kl(G, K), rtol=1e-10)
    # where the fit starts, G_ℓ = K(G_{ℓ−1}) + jitter, every KL vanishes (to rounding)
    X, y = regression()
    for whiten in (True, False):
        model = bk.DeepKernelMachine(layers=3, nu=1.0, bias_var=0.1, whiten=whiten)
        data = model.check_data({"X": X, "y": y})
        _, kls, jitters = model.terms(model.init(data, jax.random.PRNGKey(0)), data)
        assert len(kls) == 3 and max(abs(float(k)) for k in kls) < 1e-12
        assert all(j > 0 for j in jitters)


def test_relu_gram_kernel_is_one_nngp_step():
    X, _ = regression(15, d=3)
    Xj = jnp.asarray(X)
    kmap = gk.gram_map("relu", 1.7, 0.2)
    G = gk.input_gram(Xj, Xj, 1.7, 0.2)
    for depth in (1, 2, 3):
        G = gk.full(kmap, G)
        expected = NNGP(weight_var=1.7, bias_var=0.2, hidden_layers=depth)(X)
        np.testing.assert_allclose(np.asarray(G), np.asarray(expected), rtol=1e-12, atol=1e-14)
    # the cross and diagonal forms are the full form's blocks
    d = jnp.diagonal(G)
    np.testing.assert_allclose(np.asarray(gk.cross(kmap, d[:4], d, G[:4])), np.asarray(gk.full(kmap, G)[:4]),
                               rtol=1e-14)
    np.testing.assert_allclose(np.asarray(gk.diagonal(kmap, d)), np.asarray(jnp.diagonal(gk.full(kmap, G))),
                               rtol=1e-14)


def test_se_gram_kernel_is_the_rbf_of_the_features():
    # G = F Fᵀ: K(G) must be σ_w² exp(−‖f_i − f_j‖² / (2ℓ²)) + σ_b² of the features F
    F = np.random.default_rng(1).normal(size=(10, 4))
    K = gk.full(gk.gram_map("se", 1.3, 0.05, 0.8), jnp.asarray(F @ F.T))
    expected = 1.3 * np.exp(-cdist(F, F, "sqeuclidean") / (2 * 0.8**2)) + 0.05
    np.testing.assert_allclose(np.asarray(K), expected, rtol=1e-12)


# -- the NNGP limit --------------------------------------------------------------------------------------
def test_infinite_nu_is_the_nngp_gp(nngp_gp):
    X, y = regression()
    Xt = np.random.default_rng(5).normal(size=(9, 2))
    model = bk.DeepKernelMachine(layers=2, nu=float("inf"), bias_var=0.1, fixed=FIXED)
    post = bk.fit(model, {"X": X, "y": y}, engine=bk.Optimize(progress=False))
    assert post.params["grams"] == {} and len(post.history) == 1  # nothing to learn
    ours, exact = post.predict({"X": Xt}), nngp_gp.predict({"X": Xt})
    # the same numbers by another route (the Gram recursion vs the NNGP kernel): 1e-6 relative is loose
    # for float64; what it guards is the conventions (σ_w²/N₀, depth L + 1, noise)
    np.testing.assert_allclose(ours.mean, exact.mean, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.variance, exact.variance, rtol=1e-6)
    np.testing.assert_allclose(post.objective, nngp_gp.log_marginal_likelihood, rtol=1e-9)


@pytest.mark.slow  # 17 s (L-BFGS at three ν); the ν = ∞ identity above keeps the NNGP limit in the default tier
def test_large_nu_approaches_the_nngp_like_one_over_nu(nngp_gp):
    # the optimum moves G_ℓ away from K(G_{ℓ−1}) by O(1/ν) (the KL's curvature is ν), so the predictive's
    # distance to the NNGP shrinks tenfold per tenfold ν: ratios within [5, 20] allow second-order terms
    X, y = regression()
    Xt = np.random.default_rng(5).normal(size=(9, 2))
    exact = nngp_gp.predict({"X": Xt})
    engine = bk.Optimize(steps=60, optimizer="lbfgs", progress=False)
    gaps = []
    for nu in (1e2, 1e3, 1e4):
        post = bk.fit(bk.DeepKernelMachine(layers=2, nu=nu, bias_var=0.1, fixed=FIXED), {"X": X, "y": y},
                      engine=engine)
        p = post.predict({"X": Xt})
        gaps.append(np.max(np.abs(p.mean - exact.mean)) + np.max(np.abs(p.variance - exact.variance)))
        assert not post.problems()
    assert gaps[0] < 0.1  # ν = 100 is already near the limit (measured 0.026)
    for big, small in zip(gaps, gaps[1:], strict=False):
        assert 5 < big / small < 20, gaps


# -- the sparse machine ----------------------------------------------------------------------------------
def test_sparse_with_inducing_points_at_the_data_equals_the_full_machine():
    # with Z = X (held) and q(u) at its closed-form optimum the sparse objective is the collapsed bound
    # log N(y | 0, Q + σ²I) − tr(K − Q)/(2σ²) with Q = K K̃⁻¹ K, which is the full objective up to the
    # jitter ε in K̃ = K + εI: the gap is O(ε) (1e-6 → ~3e-3, 1e-9 → ~3e-6 here), so both use ε = 1e-10
    X, y = regression()
    Xt = np.random.default_rng(5).normal(size=(9, 2))
    settings = dict(layers=2, nu=1.0, bias_var=0.1, jitter=1e-10)
    full = bk.DeepKernelMachine(**settings)
    data = full.check_data({"X": X, "y": y})
    full_params = perturbed(full.init(data, jax.random.PRNGKey(0)), 0.05, 1)  # Grams away from the prior
    assert min(float(k) for k in full.terms(full_params, data)[1]) > 1e-3
    sparse = bk.SparseDeepKernelMachine(**settings, num_inducing=20, learn_inducing=False)
    params = sparse.init(data, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(np.asarray(params["Z"]), X)
    params = sparse.optimal_output({**params, "hyper": full_params["hyper"], "grams": full_params["grams"]}, data)
    np.testing.assert_allclose(float(sparse.objective(params, data, 20)), float(full.objective(full_params, data, 20)),
                               rtol=1e-6)
    a, b = full.predict(full_params, data, {"X": Xt}), sparse.predict(params, data, {"X": Xt})
    np.testing.assert_allclose(b.mean, a.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.variance, a.variance, rtol=1e-5)


# -- gradients -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", [
    bk.DeepKernelMachine(layers=2, nu=2.0, bias_var=0.1),
    bk.DeepKernelMachine(layers=2, nu=(1.0, float("inf")), kernel="se", whiten=False),
    # slow tier: its pieces are the full machine's (gradients above); the sparse = full check runs its objective
    pytest.param(bk.SparseDeepKernelMachine(layers=1, nu=1.0, bias_var=0.1, num_inducing=6), marks=pytest.mark.slow),
    # slow tier (16 s, a compile of the Monte Carlo softmax objective); a categorical fit runs in CI through
    # examples/deep_kernel_machine.py
    pytest.param(bk.SparseDeepKernelMachine(layers=1, nu=1.0, likelihood="categorical", num_classes=3,
                                            num_inducing=5), marks=pytest.mark.slow),
], ids=["full-relu", "full-se-direct", "sparse-gaussian", "sparse-categorical"])
def test_gradient_matches_central_differences(model):
    # central differences in float64 with h = 1e-5: truncation O(h²) ~ 1e-10, rounding ~1e-16/h ~ 1e-11
    # relative, so 1e-6 relative leaves room for curvature; three random directions through every parameter
    X, y = regression(12)
    if getattr(model, "likelihood", "gaussian") == "categorical":
        y = np.arange(12) % 3
    data = model.check_data({"X": X, "y": y})
    params = perturbed(model.init(data, jax.random.PRNGKey(1)), 0.05, 2)
    key = jax.random.PRNGKey(3)  # a fixed key: the categorical Monte Carlo estimate is then a fixed function
    value_and_grad = jax.jit(jax.value_and_grad(lambda p: model.objective(p, data, 12, key)))
    grad = value_and_grad(params)[1]

    def f(p):
        return value_and_grad(p)[0]

    h = 1e-5
    for seed in range(3):
        direction = perturbed(jax.tree_util.tree_map(jnp.zeros_like, params), 1.0, 10 + seed)
        plus = jax.tree_util.tree_map(lambda p, d: p + h * d, params, direction)
        minus = jax.tree_util.tree_map(lambda p, d: p - h * d, params, direction)
        numeric = (float(f(plus)) - float(f(minus))) / (2 * h)
        analytic = sum(float(jnp.vdot(g, d)) for g, d in zip(jax.tree_util.tree_leaves(grad),
                                                             jax.tree_util.tree_leaves(direction), strict=True))
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6)


# -- representation learning -----------------------------------------------------------------------------
def step_data(rng, n):
    X = rng.uniform(-2, 2, size=(n, 2))
    return X, np.sign(X[:, 0]) + 0.1 * rng.normal(size=n)


@pytest.mark.slow
def test_representation_learning_beats_the_nngp_on_a_step():
    # y = sign(x₁) + noise: the NNGP's one smoothness (type-II ML of σ_w², σ_b², σ_n²) must blur the jump,
    # while the learned Grams sharpen the kernel across x₁ = 0. Held-out log-likelihood per point over
    # 300 test points, averaged over two seeds: measured gains 0.031 and 0.016 nats; the margin asserted,
    # 0.01, is about half their mean (both methods see identical data and start from the same NNGP)
    gains = []
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        (X, y), (Xt, yt) = step_data(rng, 60), step_data(rng, 300)
        gp = bk.fit(ScaleMixtureProcess(NNGP(weight_var=2.0, bias_var=0.1, hidden_layers=3), noise=0.1,
                                        scale_prior=Fixed(1.0)), {"X": X, "y": y}, engine=bk.Exact(steps=300,
                                                                                                   progress=False))
        dkm = bk.fit(bk.DeepKernelMachine(layers=2, nu=100.0, bias_var=0.1), {"X": X, "y": y},
                     engine=bk.Optimize(steps=500, learning_rate=0.05, progress=False))
        gains.append(dkm.predict({"X": Xt}).log_prob(yt).mean() - gp.predict({"X": Xt}).log_prob(yt).mean())
    assert np.mean(gains) > 0.01 and min(gains) > 0, gains


# -- classification --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_sparse_classifier_learns_a_quadrant_rule():
    # labels by the sign of x₁x₂ (XOR quadrants); 10 inducing points, minibatches of 40: held-out accuracy
    # above 0.85 (a linear or constant rule gets ~0.5), probabilities summing to 1
    rng = np.random.default_rng(0)
    X, Xt = rng.normal(size=(80, 2)), rng.normal(size=(200, 2))
    model = bk.SparseDeepKernelMachine(layers=2, nu=1.0, likelihood="categorical", num_classes=2, num_inducing=10,
                                       bias_var=0.1)
    post = bk.fit(model, {"X": X, "y": (X[:, 0] * X[:, 1] > 0).astype(int)},
                  engine=bk.Optimize(steps=300, learning_rate=0.05, batch_size=40, progress=False))
    pred = post.predict({"X": Xt}, n=500)
    np.testing.assert_allclose(pred.probs.sum(1), 1.0, rtol=1e-12)
    assert pred.accuracy((Xt[:, 0] * Xt[:, 1] > 0).astype(int)) > 0.85
    assert post.sample(3)["u"].shape == (3, 2, 10)


# -- the engine ------------------------------------------------------------------------------------------
class Quadratic:
    """A plain (not pytree) Objective: −½‖θ − c‖², NaN beyond |θ| > `blow_up`."""

    def __init__(self, blow_up=math.inf):
        self.blow_up = blow_up

    def check_data(self, data):
        return {"y": jnp.asarray(data["y"], dtype=float)}

    def init(self, data, key):
        return {"theta": jnp.zeros(2)}

    def objective(self, params, batch, n, key):
        value = -0.5 * jnp.sum((params["theta"] - jnp.array([1.0, -2.0])) ** 2) * n
        return jnp.where(jnp.max(jnp.abs(params["theta"])) > self.blow_up, jnp.nan, value)

    def predict(self, params, data, new_data, **options):
        return params["theta"]


def test_engine_lbfgs_finds_the_optimum_and_sample_needs_a_sampler():
    post = bk.fit(Quadratic(), {"y": np.zeros(5)}, engine=bk.Optimize(steps=20, optimizer="lbfgs", progress=False))
    np.testing.assert_allclose(post.params["theta"], [1.0, -2.0], atol=1e-8)
    np.testing.assert_allclose(post.predict(), [1.0, -2.0], atol=1e-8)
    with pytest.raises(ModelError, match="no `sample"):
        post.sample(3)


def test_non_finite_objective_stops_at_the_last_finite_point():
    with pytest.raises(bk.SamplingError, match=r"objective was not finite at step \d+ of 100.*parameters of step") \
            as err:
        bk.fit(Quadratic(blow_up=0.5), {"y": np.zeros(5)},
               engine=bk.Optimize(steps=100, learning_rate=0.2, schedule="constant", progress=False))
    post = err.value.partial
    assert post.stopped and len(post.history) < 100
    assert np.all(np.isfinite(post.history)) and np.isfinite(post.objective)
    assert np.max(np.abs(post.params["theta"])) <= 0.5
    assert "non-finite" in post.problems()[0]


def test_refit_compiles_nothing():
    X, y = regression()
    engine = bk.Optimize(steps=20, learning_rate=0.01, progress=False)
    model = bk.DeepKernelMachine(layers=2, nu=3.0, bias_var=0.1)
    bk.fit(model, {"X": X, "y": y}, engine=engine)
    from bayeskit.core import cache

    programs = dict(cache._PROGRAMS)
    sizes = {k: v[0]._cache_size() for k, v in programs.items() if k[0] == "Optimize.step"}
    ours = cache.program_key("Optimize.step", jax.tree_util.tree_structure(model), static=(20, 20, True),
                             arrays=model.check_data({"X": X, "y": y}), engine=engine)
    assert sizes[ours] == 1  # one trace for the whole fit, the final objective's evaluation included
    # other ν, hyperparameters, data values, steps and learning rate: the same compiled step
    post = bk.fit(bk.DeepKernelMachine(layers=2, nu=30.0, weight_var=1.5, bias_var=0.2), {"X": X, "y": -y},
                  engine=engine.replace(steps=10, learning_rate=0.02))
    assert sizes and {k: programs[k][0]._cache_size() for k in sizes} == sizes
    assert "jitter" in post.attrs()["bayeskit_fit_info"] and "jitter_relative=1e-06" in repr(post)


def test_unconverged_fit_warns():
    # Adam at a constant 1e-3 moves θ by ~1e-3 per step towards an optimum 2.2 away: over the last 10% of
    # 40 steps the objective gains ~1e-2 per point, ten times the threshold
    with pytest.warns(UserWarning, match="still improving"):
        post = bk.fit(Quadratic(), {"y": np.zeros(5)},
                      engine=bk.Optimize(steps=40, learning_rate=1e-3, schedule="constant", progress=False))
    assert "still improving" in post.problems()[0]


# -- bad input -------------------------------------------------------------------------------------------
def test_bad_settings_and_data_are_named():
    X, y = regression()
    with pytest.raises(ConfigError, match="`nu`"):
        bk.DeepKernelMachine(nu=0.0)
    with pytest.raises(ConfigError, match="`nu`"):
        bk.DeepKernelMachine(layers=2, nu=(1.0, 2.0, 3.0))
    with pytest.raises(ConfigError, match="`kernel`"):
        bk.DeepKernelMachine(kernel="tanh")
    with pytest.raises(ConfigError, match="`fixed`"):
        bk.DeepKernelMachine(fixed=("lengthscale",))  # a ReLU machine has none
    with pytest.raises(ConfigError, match="noise"):
        bk.DeepKernelMachine(noise=0.0)
    with pytest.raises(ConfigError, match="`likelihood`"):
        bk.SparseDeepKernelMachine(likelihood="poisson")
    with pytest.raises(ConfigError, match="`batch_size`"):
        bk.Optimize(batch_size=0)
    with pytest.raises(ConfigError, match="`schedule`"):
        bk.Optimize(schedule="linear")
    model = bk.DeepKernelMachine(layers=1)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(DataError, match="`X`"):
        bk.fit(model, {"X": bad, "y": y}, engine=bk.Optimize(progress=False))
    with pytest.raises(DataError, match="`y`"):
        bk.fit(model, {"X": X, "y": np.where(np.arange(20) == 2, np.inf, y)}, engine=bk.Optimize(progress=False))
    with pytest.raises(DataError, match="rows"):
        bk.fit(model, {"X": X, "y": y[:-1]}, engine=bk.Optimize(progress=False))
    with pytest.raises(ConfigError, match="all 20 points"):
        bk.fit(model, {"X": X, "y": y}, engine=bk.Optimize(batch_size=5, steps=2, progress=False))
    with pytest.raises(ConfigError, match="lbfgs"):
        bk.fit(bk.SparseDeepKernelMachine(layers=1), {"X": X, "y": y},
               engine=bk.Optimize(batch_size=5, optimizer="lbfgs", progress=False))
    with pytest.raises(DataError, match=r"labels must be in \[0, 2\)"):
        bk.fit(bk.SparseDeepKernelMachine(layers=1, likelihood="categorical"), {"X": X, "y": np.arange(20) % 3},
               engine=bk.Optimize(progress=False))
    post = bk.fit(model, {"X": X, "y": y}, engine=bk.Optimize(steps=2, progress=False))
    with pytest.raises(DataError, match="2 columns"):
        post.predict({"X": np.zeros((3, 4))})
    with pytest.raises(ConfigError, match="not draws"):
        post.predict({"X": np.zeros((3, 2))}, n=10)
