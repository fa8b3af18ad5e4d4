"""Infinitely wide and deep classifiers: dual activations, deep recursions against 40-digit arithmetic,
the infinite-depth limits against deep finite recursions, the interpolating classifier through bk.fit."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from mpmath import mp, mpf

import bayeskit as bk
from bayeskit.models.classifiers import (
    Erf,
    KernelClassifier,
    Polynomial,
    ReLU,
    Sine,
    WideDeep,
    deep_recursion,
    depth_limit,
    design_activation,
    hilbert_alpha,
    koenigs_log,
)
from bayeskit.models.classifiers.wide_deep import _table, interpolate_table

ACTIVATIONS = [ReLU(), Erf(), Sine(2.0), Polynomial([0, 0.5, 0, 0, 0, 0, 0, 0.5]), Polynomial([0.1, 0.3, 0.6])]


def _mp_dual(act):
    """ř and ř′ in mpmath, written from the formulas, not from the code under test."""
    if isinstance(act, ReLU):
        return (lambda p: (p * (mp.pi - mp.acos(p)) + mp.sqrt(1 - p * p)) / mp.pi,
                lambda p: (mp.pi - mp.acos(p)) / mp.pi)
    if isinstance(act, Erf):
        a = mp.asin(mpf(2) / 3)
        return lambda p: mp.asin(2 * p / 3) / a, lambda p: (mpf(2) / 3) / mp.sqrt(1 - 4 * p * p / 9) / a
    if isinstance(act, Sine):
        s = mpf(act.scale)
        return lambda p: mp.sinh(s * p) / mp.sinh(s), lambda p: s * mp.cosh(s * p) / mp.sinh(s)
    c = [mpf(v) for v in act.coefficients]
    c = [ck / sum(c) for ck in c]  # ř(1) = 1 to 40 digits
    return (lambda p: sum(ck * p**k for k, ck in enumerate(c)),
            lambda p: sum(k * ck * p ** (k - 1) for k, ck in enumerate(c) if k))


def _mp_recursion(act, delta, depth):
    """(log K_L/K_L(1), log|Σ_L|) in 40-digit arithmetic."""
    mp.dps = 40
    f, df = _mp_dual(act)

    def run(rho):
        s = k = rho
        for _ in range(depth):
            s, k = f(s), f(s) + k * df(s)
        return s, k

    # ρ = 1 is a fixed point that may repel (ř′(1) > 1): iterate it exactly, Σ_ℓ(1) = 1
    k1 = mpf(1)
    for _ in range(depth):
        k1 = 1 + k1 * df(mpf(1))
    out = []
    for d in delta:
        s, k = run(1 - mpf(d))
        out.append((float(mp.log(abs(k / k1))), float(mp.log(abs(s)))))
    return np.array(out)


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: type(a).__name__)
def test_dual_forms_agree_with_high_precision(act):
    mp.dps = 40
    f, df = _mp_dual(act)
    assert float(act.value(jnp.asarray(1.0))) == pytest.approx(1.0, abs=1e-15)
    delta = np.array([1e-13, 1e-9, 1e-5, 0.01, 0.3, 0.49])
    # 1 − ř(1 − δ): relative precision as δ → 0 (the naive form loses all digits at δ = 1e-13)
    want = np.array([float(1 - f(1 - mpf(d))) for d in delta])
    np.testing.assert_allclose(np.asarray(act.one_minus(jnp.asarray(delta))), want, rtol=1e-11)
    want_slope = np.array([float(df(1 - mpf(d))) for d in delta])
    np.testing.assert_allclose(np.asarray(act.derivative_near_one(jnp.asarray(delta))), want_slope, rtol=1e-11)
    if act.at_zero == 0:
        rho = np.array([1e-9, -3e-5, 2e-4, 0.3, -0.8])
        want_ratio = np.array([float(f(mpf(r)) / mpf(r)) for r in rho])
        np.testing.assert_allclose(np.asarray(act.ratio(jnp.asarray(rho))), want_ratio, rtol=1e-13)


@pytest.mark.parametrize("act", [ReLU(), Erf(), Polynomial([0.1, 0.3, 0.6])], ids=lambda a: type(a).__name__)
def test_deep_recursion_matches_40_digit_arithmetic(act):
    # depth 400: K_L(1) grows like ř′(1)^L and off-diagonal values fall far below float64's range
    # for the erf; the log-space recursion must still agree to ~100 roundings (1e-12 relative)
    delta = [1e-12, 1e-6, 1e-2, 0.4, 1.0, 1.7, 2.0]
    want = _mp_recursion(act, delta, 400)
    for kind, column in (("ntk", 0), ("nngp", 1)):
        sign, log_k = deep_recursion(jnp.asarray(delta), act, 400, kind)
        finite = np.isfinite(want[:, column])
        np.testing.assert_allclose(np.asarray(log_k)[finite], want[finite, column], rtol=1e-12, atol=1e-12,
                                   err_msg=kind)


@pytest.mark.parametrize("act", [Erf(), Sine(2.0), Polynomial([0, 0.5, 0, 0, 0, 0, 0, 0.5])],
                         ids=lambda a: type(a).__name__)
def test_singular_limit_exponent_against_deep_recursion(act):
    # at depth 10⁴, pairs with δ in [1e-14, 1e-10] are deep in the limit regime: the NNGP's log K̃ falls
    # with slope −α/2 in ln δ, α = 2 ln(1/ř′(0))/ln ř′(1); the NTK's, for pairs this much closer than
    # 1/depth, one power of δ faster (−α/2 − 1). Finite-δ corrections to the slopes: below 0.3% here.
    delta = np.array([1e-14, 1e-12, 1e-10])
    alpha = depth_limit(act).alpha
    for kind, want in (("nngp", alpha), ("ntk", alpha + 2)):
        _, log_k = deep_recursion(jnp.asarray(delta), act, 10_000, kind)
        slope = -2 * np.diff(np.asarray(log_k)) / np.diff(np.log(delta))
        np.testing.assert_allclose(slope, want, rtol=3e-3, err_msg=kind)
    # ... and the Koenigs function, the exact limit, has the NNGP's singularity
    _, log_sigma = koenigs_log(jnp.asarray(delta), act)
    np.testing.assert_allclose(-2 * np.diff(np.asarray(log_sigma)) / np.diff(np.log(delta)), alpha, rtol=3e-3)


@pytest.mark.parametrize("act", [Erf(), Polynomial([0, 0.5, 0, 0, 0, 0, 0, 0.5])], ids=lambda a: type(a).__name__)
def test_deep_kernels_tend_to_the_koenigs_function(act):
    # shapes: log K̃(ρ) − log K̃(ρ_ref) against log σ(ρ) − log σ(ρ_ref). The NNGP is σ·ř′(0)^L up to
    # O(ř′(0)^L) (exact to float64 by depth 3000); the NTK is ř′(0)^L (L σ + G): its error falls like 1/L
    delta = jnp.asarray([1e-3, 0.01, 0.1, 0.5, 0.9])
    _, log_sigma = koenigs_log(delta, act)
    want = np.asarray(log_sigma) - float(log_sigma[-1])

    def shape(kind, depth):
        _, log_k = deep_recursion(delta, act, depth, kind)
        return np.asarray(log_k) - float(log_k[-1])

    np.testing.assert_allclose(shape("nngp", 3000), want, atol=1e-10)
    errors = [np.max(np.abs(shape("ntk", depth) - want)) for depth in (1000, 10_000)]
    assert errors[1] < errors[0] / 4  # measured: 5.7× (erf), 7.9× (ρ⁷/2 + ρ/2)


def test_limit_regimes():
    assert depth_limit(ReLU()).rule == "majority"
    assert depth_limit(Polynomial([0.3, 0.2, 0.5])).rule == "majority"
    assert depth_limit(Polynomial([0, 0, 1])).rule == "nearest_neighbour"
    # the paper's ρ⁷/2 + ρ/2: β = ln 2 / ln 4, the Hilbert kernel of 2-D inputs for the NNGP
    assert depth_limit(Polynomial([0, 0.5, 0, 0, 0, 0, 0, 0.5])).alpha == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(bk.ConfigError, match="identity dual"):
        depth_limit(Polynomial([0, 1]))


@pytest.mark.parametrize("alpha,family", [(2.0, "sine"), (1.0, "auto"), (0.7, "polynomial"), (4.0, "auto"),
                                          (2.5, "polynomial")])
def test_designed_activation_reaches_its_alpha(alpha, family):
    act = design_activation(alpha, family=family)
    assert depth_limit(act).alpha == pytest.approx(alpha, rel=1e-10)
    assert float(act.value(jnp.asarray(1.0))) == pytest.approx(1.0, abs=1e-14)


def test_designer_refuses_unreachable_alphas():
    with pytest.raises(bk.ConfigError, match="family='polynomial'"):
        design_activation(0.9, family="sine")
    with pytest.raises(bk.ConfigError, match="raise `degree`"):
        design_activation(0.5, family="polynomial", degree=3)
    assert hilbert_alpha(3) == 2.0


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: type(a).__name__)
@pytest.mark.parametrize("depth", [10, pytest.param(300, marks=pytest.mark.slow)])
def test_table_matches_exact_recursion(act, depth):
    # linear interpolation error h²/8·max|f''| on the default grids: measured ≤ 6e-6 relative over
    # these activations and depths; 2e-5 leaves room for other points
    rng = np.random.default_rng(0)
    delta = np.concatenate([np.exp(rng.uniform(np.log(1.2e-16), np.log(2.0), 1500)), [0.0, 0.5, 1.0, 1.5, 2.0]])
    table = _table(act, depth, "ntk", 8192)
    s1, l1 = (np.asarray(a) for a in interpolate_table(jnp.asarray(delta), table))
    s2, l2 = (np.asarray(a) for a in deep_recursion(jnp.asarray(delta), act, depth, "ntk"))
    ok = np.isfinite(l2)
    assert np.all(s1[ok] == s2[ok])
    assert np.max(np.abs(s1 * np.exp(l1 - l2) - s2)[ok]) < 2e-5


def _dirichlet(n, seed):
    """The paper's 2-D task: Dirichlet (1, 2) with prior 0.4 (label 0) vs Dirichlet (2, 1), on the sphere."""
    rng = np.random.default_rng(seed)
    first = int(0.4 * n)
    X = np.concatenate([rng.dirichlet([1, 2], first), rng.dirichlet([2, 1], n - first)])
    y = np.concatenate([np.zeros(first, int), np.ones(n - first, int)])
    return X, y


def _fit(kernel, X, y, **kw):
    return bk.fit(KernelClassifier(kernel, **kw), data={"X": X, "y": y}, engine=bk.Exact(progress=False), seed=0)


def test_majority_and_nearest_neighbour_limits_match_deep_networks():
    X, y = _dirichlet(60, 0)
    X_test, _ = _dirichlet(200, 1)
    majority = int(np.bincount(y).argmax())
    # ř = 0.3 + 0.2ρ + 0.5ρ² sends every ρ < 1 to the fixed point 0.6 at rate 0.8^L: at depth 300 the
    # kernel is constant off the diagonal to float64 precision, and the classifier is the majority vote
    for depth in (300, math.inf):
        labels = _fit(WideDeep(Polynomial([0.3, 0.2, 0.5]), depth=depth, kind="nngp"), X, y).predict(X_test).labels
        assert np.all(labels == majority)
    # ř = ρ²: Σ_L = ρ^(2^L), the nearest training point outweighs all others at depth 30
    Xn, Xtn = X / np.linalg.norm(X, axis=1, keepdims=True), X_test / np.linalg.norm(X_test, axis=1, keepdims=True)
    nearest = y[np.argmax(Xtn @ Xn.T, axis=1)]
    for depth in (30, math.inf):
        labels = _fit(WideDeep(Polynomial([0, 0, 1]), depth=depth, kind="nngp"), X, y).predict(X_test).labels
        np.testing.assert_array_equal(labels, nearest)


def test_singular_limit_matches_deep_network_predictions():
    # the designed Hilbert-kernel activation: the NNGP at depth 3000 is the Koenigs kernel to float64
    # precision (test above), so its predictions are the infinite-depth vote's
    X, y = _dirichlet(150, 2)
    X_test, _ = _dirichlet(300, 3)
    act = design_activation(hilbert_alpha(2))
    deep = _fit(WideDeep(act, depth=3000, kind="nngp"), X, y).predict(X_test).labels
    limit = _fit(WideDeep(act, depth=math.inf, kind="nngp"), X, y).predict(X_test).labels
    np.testing.assert_array_equal(deep, limit)


def test_interpolating_classifier_against_explicit_linear_algebra():
    from bayeskit.models.kernels import RBF

    rng = np.random.default_rng(4)
    X = rng.normal(size=(40, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int) + (X[:, 0] > 1).astype(int)  # three classes
    X_test = rng.normal(size=(25, 2))
    post = bk.fit(KernelClassifier(RBF(lengthscale=0.7)), data={"X": X, "y": y},
                  engine=bk.Exact(optimize=False, progress=False), seed=0)
    kernel = post.model.kernel
    K, Ks = np.asarray(kernel(X)), np.asarray(kernel(X, X_test))
    scores = Ks.T @ np.linalg.solve(K, np.eye(3)[y])
    got = post.predict(X_test)
    np.testing.assert_array_equal(got.labels, scores.argmax(1))
    # rows are rescaled by a positive number each: compare directions
    np.testing.assert_allclose(got.scores / np.linalg.norm(got.scores, axis=1, keepdims=True),
                               scores / np.linalg.norm(scores, axis=1, keepdims=True), atol=1e-8)
    assert post.predict().accuracy(y) == 1.0  # interpolation fits the training labels
    f = post.sample(3, seed=0)["f"]
    np.testing.assert_allclose(f, np.broadcast_to(np.eye(3)[y], f.shape), atol=1e-6)  # ridge 0: no variance


def test_ridge_is_learned_and_the_kernel_serves_the_process_models():
    from bayeskit.models.processes import ScaleMixtureProcess

    X, y = _dirichlet(80, 5)
    post = bk.fit(KernelClassifier(WideDeep(Erf(), depth=5), ridge=0.5), data={"X": X, "y": y},
                  engine=bk.Exact(steps=30, progress=False), seed=0)
    assert len(post.history) == 30 and post.history[-1] > post.history[0]
    assert float(post.model.ridge) != 0.5
    gp = bk.fit(ScaleMixtureProcess(WideDeep(Erf(), depth=5), noise=0.1), data={"X": X, "y": y - 0.5},
                engine=bk.Exact(steps=30, progress=False), seed=0)
    assert np.isfinite(gp.log_marginal_likelihood)


def test_bad_input_is_named():
    X, y = _dirichlet(20, 6)
    with pytest.raises(bk.DataError, match="labels must be in"):
        _fit(WideDeep(ReLU(), depth=3), X, y - 1)
    with pytest.raises(bk.DataError, match="at least two classes"):
        _fit(WideDeep(ReLU(), depth=3), X, np.zeros(20, int))
    with pytest.raises(bk.ConfigError, match="`coefficients` must be finite, non-negative"):
        Polynomial([0.5, -0.1])
    with pytest.raises(bk.ConfigError, match="`depth`"):
        WideDeep(ReLU(), depth=-1)
    with pytest.raises(bk.ConfigError, match="`activation`"):
        WideDeep("tanh")
    with pytest.raises(bk.ConfigError, match="limit of this kernel is the majority"):
        WideDeep(ReLU(), depth=math.inf)(X)
