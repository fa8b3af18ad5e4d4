"""Kernels against what nobody here wrote: Monte Carlo over finite random networks, closed forms,
and the defining properties (symmetry, positive semi-definiteness, gradients)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bayeskit as bk
from bayeskit.models.kernels import NNGP, NTK, RBF, Matern
from bayeskit.models.kernels.activations import erf, gauss_hermite, relu

X = np.random.default_rng(0).normal(size=(5, 3))
X = np.vstack([X, X[:1]])  # an exact duplicate: the diagonal case inside the matrix


def _erf(z):
    from scipy.special import erf as scipy_erf

    return scipy_erf(z)


ACTIVATIONS = {"relu": lambda z: np.maximum(z, 0.0), "erf": _erf}


def random_network_features(x, rng, *, width, hidden_layers, weight_var, bias_var, phi):
    """Last hidden layer φ(h^L) of one random network in NTK parameterisation."""
    a = x
    for _ in range(hidden_layers):
        fan_in = a.shape[1]
        w = rng.standard_normal((fan_in, width))
        b = rng.standard_normal(width)
        a = phi(np.sqrt(weight_var / fan_in) * a @ w + np.sqrt(bias_var) * b)
    return a


@pytest.mark.parametrize("activation", ["relu", "erf"])
@pytest.mark.parametrize("hidden_layers", [1, 2])
def test_nngp_matches_wide_random_networks(activation, hidden_layers):
    """NNGP = E over random networks of the readout covariance σ_w² φ(h^L)·φ(h^L)'/n + σ_b².

    32 independent networks of width 2048: every entry within 4 standard errors of the mean
    over networks (the O(1/width) finite-width bias, ~1e-3 relative, is well inside that band).
    """
    w, b, width, nets = 1.6, 0.2, 2048, 32
    phi = ACTIVATIONS[activation]
    rng = np.random.default_rng(hidden_layers)
    estimates = []
    for _ in range(nets):
        a = random_network_features(X, rng, width=width, hidden_layers=hidden_layers, weight_var=w, bias_var=b,
                                    phi=phi)
        estimates.append(w * a @ a.T / width + b)
    estimates = np.array(estimates)
    mean, se = estimates.mean(0), estimates.std(0, ddof=1) / np.sqrt(nets)
    exact = np.asarray(NNGP(weight_var=w, bias_var=b, hidden_layers=hidden_layers, activation=activation)(X))
    assert np.all(np.abs(mean - exact) <= 4 * se + 1e-12), np.max(np.abs(mean - exact) / se)


@pytest.mark.parametrize("activation", ["relu", "erf"])
@pytest.mark.parametrize("hidden_layers", [1, pytest.param(2, marks=pytest.mark.slow)])  # depth 2: 27 s, slow tier
def test_ntk_matches_wide_random_networks(activation, hidden_layers):
    """NTK = E over random networks of the empirical tangent kernel J(x) J(x')ᵀ, J = ∂f/∂θ.

    8 networks of width 2048 (NTK parameterisation, scalar output); J from jax.jacrev.
    Every entry within 4 standard errors of the mean over networks.
    """
    w, b, width, nets = 1.6, 0.2, 2048, 8
    act = jax.nn.relu if activation == "relu" else jax.scipy.special.erf
    sizes = [X.shape[1]] + [width] * hidden_layers + [1]

    def f(params, x):
        a = x
        for i, (W, B) in enumerate(params):
            h = jnp.sqrt(w / sizes[i]) * a @ W + jnp.sqrt(b) * B
            a = act(h) if i < len(params) - 1 else h
        return a[:, 0]

    key = jax.random.PRNGKey(hidden_layers)
    estimates = []
    for _ in range(nets):
        params = []
        for i in range(len(sizes) - 1):
            key, k1, k2 = jax.random.split(key, 3)
            params.append((jax.random.normal(k1, (sizes[i], sizes[i + 1])), jax.random.normal(k2, (sizes[i + 1],))))
        jac = jax.jacrev(f)(params, jnp.asarray(X))
        flat = jnp.concatenate([leaf.reshape(X.shape[0], -1) for leaf in jax.tree.leaves(jac)], axis=1)
        estimates.append(np.asarray(flat @ flat.T))
    estimates = np.array(estimates)
    mean, se = estimates.mean(0), estimates.std(0, ddof=1) / np.sqrt(nets)
    exact = np.asarray(NTK(weight_var=w, bias_var=b, hidden_layers=hidden_layers, activation=activation)(X))
    assert np.all(np.abs(mean - exact) <= 4 * se + 1e-12), np.max(np.abs(mean - exact) / se)


def test_quadrature_equals_closed_form_for_erf():
    """erf through the generic Gauss–Hermite path reproduces the closed form.

    erf is entire, so the error falls exponentially with the order; how fast depends on the
    layer variances (here up to ~4: narrow φ' = e^{-u²} against a wide Gaussian). Measured
    max relative errors at depth 3: NNGP 7e-5 / 8e-8 and NTK 1.3e-3 / 3.3e-6 at order 32 / 64.
    """
    for cls, rtol in ((NNGP, 1e-6), (NTK, 1e-5)):
        closed = np.asarray(cls(weight_var=1.0, bias_var=0.1, hidden_layers=3, activation="erf")(X))
        errors = []
        for order in (32, 64):
            quad = cls(weight_var=1.0, bias_var=0.1, hidden_layers=3, activation=jax.scipy.special.erf,
                       quadrature_order=order)(X)
            errors.append(np.max(np.abs(np.asarray(quad) - closed) / np.abs(closed)))
        assert errors[1] < rtol and errors[1] < errors[0] / 10, errors


def test_quadrature_converges_to_closed_form_for_relu():
    # ReLU has a kink (and a step derivative), so Gauss–Hermite converges only algebraically:
    # E[φφ] error shrinks with the order and is < 0.5% at 128; E[φ'φ'] (step functions) stays
    # within 3% but not monotonically. Kinked activations should use the closed forms.
    a, b, c = jnp.array(0.7), jnp.array(1.3), jnp.array(0.4)
    exact = np.array(relu(a, b, c, jnp))
    approx = [np.array(gauss_hermite(jax.nn.relu, n)(a, b, c)) for n in (16, 64, 128)]
    errors = [np.abs(q - exact) / exact for q in approx]
    assert errors[0][0] > errors[1][0] > errors[2][0] and errors[2][0] < 5e-3
    assert errors[2][1] < 3e-2



def neural_tangents_cases() -> dict:
    import json
    from pathlib import Path

    return json.loads((Path(__file__).parent / "fixtures" / "neural_tangents_kernels.json").read_text())


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_against_neural_tangents(parameterization):
    """36 configurations computed by neural-tangents 0.6.5 (tests/fixtures, width 512):
    ReLU/erf, 1-3 hidden layers, three (σ_w², σ_b²). Tolerance 1e-10 relative, except the ReLU NTK
    on the diagonal and the duplicate pair where NT itself rounds θ to ~1e-8 instead of 0 (1e-7)."""
    data = neural_tangents_cases()
    x, x2 = np.array(data["x"]), np.array(data["x2"])
    same = np.eye(7, dtype=bool)
    same[0, 6] = same[6, 0] = True
    checked = 0
    for case in data["cases"]:
        if case["parameterization"] != parameterization:
            continue
        settings = dict(weight_var=case["weight_var"], bias_var=case["bias_var"], hidden_layers=case["hidden_layers"],
                        activation=case["activation"].lower(), parameterization=parameterization, width=512)
        for cls, name in ((NNGP, "nngp"), (NTK, "ntk")):
            k = cls(**settings)
            np.testing.assert_allclose(k(x, x2), case[f"{name}_xx2"], rtol=1e-10)
            ours, theirs = np.asarray(k(x)), np.array(case[f"{name}_xx"])
            loose = same if (name == "ntk" and case["activation"].lower() == "relu") else np.zeros_like(same)
            np.testing.assert_allclose(ours[~loose], theirs[~loose], rtol=1e-10)
            np.testing.assert_allclose(ours[loose], theirs[loose], rtol=1e-7)
            np.testing.assert_allclose(k.diag(x), np.diag(theirs), rtol=1e-7)
            checked += 1
    assert checked == 36


def test_erf_map_is_the_gaussian_expectation():
    # direct Monte Carlo of E[erf(u) erf(v)] with 2e6 draws: within 4 standard errors
    a, b, c = 0.7, 1.3, 0.4
    rng = np.random.default_rng(3)
    uv = rng.multivariate_normal([0, 0], [[a, c], [c, b]], size=2_000_000)
    prod = _erf(uv[:, 0]) * _erf(uv[:, 1])
    value = float(erf(jnp.array(a), jnp.array(b), jnp.array(c), jnp)[0])
    assert abs(prod.mean() - value) < 4 * prod.std() / np.sqrt(prod.size)


@pytest.mark.parametrize("kernel", [NNGP(), NTK(), NNGP(activation="erf", bias_var=0.1), RBF(lengthscale=0.7),
                                    Matern(nu=0.5), Matern(nu=1.5), Matern(nu=2.5, lengthscale=np.ones(3))])
def test_kernel_matrices_are_symmetric_psd_with_matching_diagonal(kernel):
    K = np.asarray(kernel(X))
    np.testing.assert_allclose(K, K.T, rtol=1e-12)
    np.testing.assert_allclose(np.diag(K), np.asarray(kernel.diag(X)), rtol=1e-12)
    assert np.linalg.eigvalsh(K).min() > -1e-10 * np.abs(K).max()
    np.testing.assert_allclose(K[0], K[-1], rtol=1e-12)  # the duplicate row


def test_hyperparameter_gradients_are_finite_with_duplicates():
    # duplicate inputs put cos θ = 1 inside the matrix; gradients must still be finite (no NaN)
    for cls in (NNGP, NTK):
        g = jax.grad(lambda wv, bv, cls=cls: cls(weight_var=wv, bias_var=bv)(X).sum(), argnums=(0, 1))(1.7, 0.2)
        assert np.all(np.isfinite(g))
    g = jax.grad(lambda ell: Matern(nu=1.5, lengthscale=ell)(X).sum())(0.8)
    assert np.isfinite(g)


@pytest.mark.parametrize("activation", ["relu", "erf", jnp.tanh])
def test_weight_var_gradient_is_finite_and_exact_at_an_input_at_the_origin(activation):
    # no bias: k(0, x') = 0 for every σ_w², so its derivative is 0; √(k(0,0)·k(x',x')) used to give
    # ∞·0 = NaN there, and the matrix-free path pads row blocks, which made the NaN appear at N = 12,000
    x = np.vstack([np.zeros((1, 3)), X])
    for cls in (NNGP, NTK) if isinstance(activation, str) else (NNGP,):  # quadrature: one compile is enough
        f = lambda wv, cls=cls: cls(weight_var=wv, activation=activation, quadrature_order=8)(x)  # noqa: E731
        J = np.asarray(jax.jacfwd(f)(1.7))
        assert np.all(np.isfinite(J)) and np.all(J[0] == 0) and np.all(J[:, 0] == 0)
        h = 1e-6
        np.testing.assert_allclose(J, (f(1.7 + h) - f(1.7 - h)) / (2 * h), rtol=1e-5, atol=1e-8)


def test_nngp_gradient_matches_finite_differences():
    f = lambda wv: NNGP(weight_var=wv, bias_var=0.1, hidden_layers=3)(X)[1, 2]  # noqa: E731
    h = 1e-6
    np.testing.assert_allclose(jax.grad(f)(1.7), (f(1.7 + h) - f(1.7 - h)) / (2 * h), rtol=1e-6)


def test_rbf_and_matern_closed_forms():
    x = np.array([[0.0], [1.5]])
    assert float(RBF(variance=2.0, lengthscale=0.5)(x)[0, 1]) == pytest.approx(2.0 * np.exp(-0.5 * 9.0))
    r = 1.5 / 0.5
    assert float(Matern(nu=0.5, lengthscale=0.5)(x)[0, 1]) == pytest.approx(np.exp(-r))
    s = np.sqrt(3) * r
    assert float(Matern(nu=1.5, lengthscale=0.5)(x)[0, 1]) == pytest.approx((1 + s) * np.exp(-s))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: NNGP(weight_var=0.0), "NNGP: `weight_var` must be positive"),
        (lambda: NTK(bias_var=-1.0), "NTK: `bias_var` must be >= 0"),
        (lambda: NNGP(hidden_layers=-1), "`hidden_layers` must be an int >= 0"),
        (lambda: NNGP(activation="tanh"), "`activation` must be one of"),
        (lambda: RBF(lengthscale=-2.0), "RBF: `lengthscale` must be positive"),
        (lambda: Matern(nu=2.0), "Matern: `nu` must be 0.5, 1.5 or 2.5"),
        (lambda: NTK(parameterization="standard"), r"`width` must be an int >= 1 \(the standard-parameterisation NTK"),
        (lambda: NNGP(parameterization="mean-field"), "`parameterization` must be one of 'ntk', 'standard'"),
    ],
)
def test_bad_hyperparameters(make, match):
    with pytest.raises(bk.ConfigError, match=match):
        make()


def test_bad_inputs():
    with pytest.raises(bk.DataError, match="same number of columns"):
        RBF()(np.ones((3, 2)), np.ones((3, 4)))
    with pytest.raises(bk.DataError, match=r"`x1` must be an \(n, d\) array"):
        RBF()(np.ones((2, 2, 2)))
