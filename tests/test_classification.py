"""Sparse variational Student-t / Gaussian process classification: estimators against 1-D
quadrature of the closed-form Student-t marginal, training on separable data, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special, stats

import bayeskit as bk
from bayeskit.core.errors import ConfigError, DataError, ModelError
from bayeskit.engines.sparse.engine import elbo
from bayeskit.models.kernels import NNGP, RBF
from bayeskit.models.processes import Fixed, InverseGamma, LogNormal, ProcessClassifier
from bayeskit.models.processes import classification as clf

CENTERS = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])


def blobs(n, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    return CENTERS[y] + 0.8 * rng.standard_normal((n, 2)), y


@pytest.fixture(scope="module")
def binary_t_posterior():
    X, y = blobs(80, classes=2)
    model = ProcessClassifier(RBF(lengthscale=1.5), num_classes=2, scale_prior=InverseGamma(2.0, 2.0), num_inducing=10)
    return bk.fit(model, {"X": X, "y": y}, engine=bk.SparseVariational(steps=150, learning_rate=0.05, progress=False))


def t_marginal_of_difference(post, X):
    """f1 − f0 ~ Student-t(2a', μ1 − μ0, √((b'/a')(v0 + v1))) under q: the exact 2-class marginal."""
    mean, v = clf.latent_moments(post.kernel, post.Z, post.m, post.R, jnp.asarray(X))
    df, a, b = 2 * float(post.a_q), float(post.a_q), float(post.b_q)
    loc = np.asarray(mean[1] - mean[0])
    scale = np.sqrt(b / a * np.asarray(v[0] + v[1]))
    return df, loc, scale


def test_predictive_probabilities_equal_quadrature(binary_t_posterior):
    # p(y = 1 | x) = E[sigmoid(f1 − f0)] by adaptive quadrature of the Student-t marginal; the
    # Monte Carlo predictive (20,000 draws) has standard error <= 0.5/√20000 = 0.0035: allow 5 SE
    post = binary_t_posterior
    X = np.array([[2.0, 0.0], [0.5, 0.8], [-1.0, 1.7], [4.0, 4.0], [-6.0, 0.0]])
    df, loc, scale = t_marginal_of_difference(post, X)
    exact = [integrate.quad(lambda g, i=i: stats.t.pdf(g, df, loc[i], scale[i]) * special.expit(g), -np.inf,
                            np.inf, epsabs=1e-10)[0] for i in range(len(X))]
    mc = post.predict({"X": X}, n=20_000, seed=1).probs[:, 1]
    np.testing.assert_allclose(mc, exact, atol=5 * 0.5 / np.sqrt(20_000))


def test_elbo_estimate_is_unbiased(binary_t_posterior):
    # ELBO = Σ_i E[log sigmoid(±(f1 − f0))] − KL; the expectation by quadrature of the t marginal,
    # the KL closed form. The estimator's mean over 200 keys must be within 4 standard errors.
    post = binary_t_posterior
    X, y = post.X, post.y
    df, loc, scale = t_marginal_of_difference(post, X)
    sign = np.where(np.asarray(y) == 1, 1.0, -1.0)
    ell = sum(integrate.quad(lambda g, i=i: stats.t.pdf(g, df, loc[i], scale[i]) * -np.logaddexp(0, -sign[i] * g),
                             -np.inf, np.inf, epsabs=1e-10)[0] for i in range(len(y)))
    exact = ell - float(clf.kl(post.model.scale_prior, post.m, post.R, post.a_q, post.b_q))
    kernel_def = jax.tree_util.tree_structure(post.kernel)
    leaves = jax.tree_util.tree_leaves(post.kernel)
    params = {**post.params, "kernel": [jnp.log(v) for v in leaves]}
    one = jax.jit(lambda key: elbo(params, kernel_def, (0, 1), leaves, post.model.scale_prior, X, y, key, 4,
                                   X.shape[0]))
    draws = np.array([float(one(k)) for k in jax.random.split(jax.random.key(3), 200)])
    assert abs(draws.mean() - exact) < 4 * draws.std(ddof=1) / np.sqrt(len(draws))


@pytest.mark.parametrize("prior", [Fixed(1.0), pytest.param(InverseGamma(2.0, 2.0), marks=pytest.mark.slow)])
def test_learns_three_separable_classes(prior):
    # Bayes accuracy on these blobs is ~0.97; both processes must come within 0.05 of it on new
    # points, and the ELBO must climb from the prior
    X, y = blobs(240)
    Xt, yt = blobs(300, seed=1)
    model = ProcessClassifier(NNGP(weight_var=2.0, bias_var=0.1), num_classes=3, scale_prior=prior, num_inducing=20)
    post = bk.fit(model, {"X": X, "y": y}, engine=bk.SparseVariational(steps=400, learning_rate=0.03, progress=False))
    pred = post.predict({"X": Xt}, n=1000)
    assert pred.accuracy(yt) >= 0.92
    assert np.mean(post.history[-50:]) > np.mean(post.history[:50]) + 100
    assert np.allclose(pred.probs.sum(1), 1.0)
    draws = post.sample(20, seed=0)
    assert draws["u"].shape == (20, 3, 20) and np.all(draws["sigma2"] > 0)
    hyper = post.hyperparameters()
    assert ("q_sigma2.a" in hyper) == isinstance(prior, InverseGamma)


def test_posterior_contract(binary_t_posterior):
    # the engine that made it, independent draws, and an int seed gives what its JAX key gives
    post = binary_t_posterior
    assert isinstance(post.engine, bk.SparseVariational) and post.markov is False
    for key in (jax.random.PRNGKey(7), jax.random.key(7)):
        for name, value in post.sample(5, 7).items():
            np.testing.assert_array_equal(post.sample(5, key)[name], value)
        np.testing.assert_array_equal(post.predict(n=300, seed=key).probs, post.predict(n=300, seed=7).probs)
    # `num_samples` is the same option as `n` under its older name
    np.testing.assert_array_equal(post.predict(num_samples=300, seed=2).probs, post.predict(n=300, seed=2).probs)
    with pytest.raises(ConfigError, match="not both"):
        post.predict(n=10, num_samples=10)
    with pytest.raises(ConfigError, match="unknown option"):
        post.predict(noisy=False)


def test_bad_input_is_named():
    X, y = blobs(30)
    model = ProcessClassifier(RBF(), num_classes=3)
    engine = bk.SparseVariational(steps=2, progress=False)
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        bk.fit(model, {"X": X, "y": y + 1}, engine=engine)
    with pytest.raises(DataError, match="integer class labels"):
        bk.fit(model, {"X": X, "y": y + 0.5}, engine=engine)
    with pytest.raises(DataError, match="rows"):
        bk.fit(model, {"X": X[:10], "y": y}, engine=engine)
    with pytest.raises(ConfigError, match="`num_classes` must be an int >= 2"):
        ProcessClassifier(RBF(), num_classes=1)
    with pytest.raises(ModelError, match="InverseGamma"):
        ProcessClassifier(RBF(), scale_prior=LogNormal())
    with pytest.raises(ConfigError, match="num_samples"):
        bk.SparseVariational(num_samples=0)
    with pytest.raises(ConfigError, match="batch_size"):
        bk.SparseVariational(batch_size=0)
    with pytest.raises(ConfigError, match="`learning_rate` must be a finite number > 0"):
        bk.SparseVariational(learning_rate=0.0)


@pytest.mark.slow  # 70 s statistical comparison of two fits
def test_student_t_process_is_less_confident_far_from_the_data():
    # The paper's robustness claim on a synthetic task: three Gaussian blobs (n = 120, 10 inducing
    # points), inputs on a circle of radius 10 (the data lie within ~4 of the origin). With the
    # ReLU NNGP the latent mean and scale both grow linearly there, so the GP stays confident;
    # the t-process's heavier tails keep more mass on the other classes. Measured mean entropy
    # (nats): GP 0.181, t with IG(2, 2) 0.185, with IG(1, 1) 0.188, with IG(0.5, 0.5) 0.203
    # (heavier-tailed prior, higher entropy). Monte Carlo error of each mean entropy, 20,000 draws
    # per point, is below 1e-3. In-distribution accuracy is the same for all (0.973).
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    X = CENTERS[y] + 0.8 * rng.standard_normal((120, 2))
    yt = rng.integers(0, 3, 300)
    Xt = CENTERS[yt] + 0.8 * rng.standard_normal((300, 2))
    angle = rng.uniform(0, 2 * np.pi, 300)
    far = 10 * np.c_[np.cos(angle), np.sin(angle)]
    engine = bk.SparseVariational(steps=800, learning_rate=0.03, progress=False)
    entropy, accuracy = {}, {}
    for name, prior in (("gp", Fixed(1.0)), ("t", InverseGamma(1.0, 1.0))):
        model = ProcessClassifier(NNGP(weight_var=2.0, bias_var=0.1), num_classes=3, scale_prior=prior,
                                  num_inducing=10)
        post = bk.fit(model, {"X": X, "y": y}, engine=engine, seed=0)
        entropy[name] = post.predict({"X": far}, n=20_000, seed=5).entropy().mean()
        accuracy[name] = post.predict({"X": Xt}, n=2000).accuracy(yt)
    assert entropy["t"] > entropy["gp"] + 3e-3
    assert min(accuracy.values()) >= 0.95
