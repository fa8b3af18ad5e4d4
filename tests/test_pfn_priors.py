"""Dataset priors for PFNs against their definitions: whitened by the covariance the prior
claims, each simulated dataset gives q = yᵀ C⁻¹ y ~ σ² χ²_T, whose mean is known; scale-prior
samplers against their own densities by quadrature."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from scipy import integrate

from bayeskit.core.errors import ConfigError, ModelError
from bayeskit.models.kernels import RBF
from bayeskit.models.priors import ModelPrior, ProcessPrior
from bayeskit.models.processes import BurrXII, Custom, Fixed, Gamma, HalfCauchy, InverseGamma, LogNormal
from bayeskit.models.processes import ScaleMixtureProcess as Process

B, T = 4000, 12


def whitened_q(x, y, cov):
    """yᵀ C(x)⁻¹ y per dataset."""
    def one(xi, yi):
        return yi @ jnp.linalg.solve(cov(xi), yi)

    return np.asarray(jax.vmap(one)(x, y))


@pytest.mark.parametrize(("scale_prior", "mean_s2"), [(Fixed(2.0), 2.0), (InverseGamma(3.0, 2.0), 1.0)])
def test_process_datasets_have_the_process_covariance(scale_prior, mean_s2):
    # q = yᵀ A⁻¹ y with A = K(x, x) + εI is σ² χ²_T: E[q] = E[σ²] T, within 4 SE over 4,000 datasets
    process = Process(RBF(lengthscale=0.3), noise=0.05, scale_prior=scale_prior)
    x, y = ProcessPrior(process, x_dim=2).sample(jax.random.key(0), B, T)
    assert x.shape == (B, T, 2) and y.shape == (B, T)
    assert float(x.min()) >= 0 and float(x.max()) <= 1  # the default inputs: uniform on the unit square
    q = whitened_q(x, y, process.gram)
    assert abs(q.mean() - mean_s2 * T) < 4 * q.std() / np.sqrt(B)


def test_hyperpriors_substitute_the_hyperparameters():
    # the same keys draw x, σ² and y whatever the hyperpriors: a point-mass hyperprior at 0.3
    # reproduces the process with lengthscale 0.3 exactly, and a broad one varies it per dataset
    fixed = ProcessPrior(Process(RBF(lengthscale=0.3), noise=0.05, scale_prior=Fixed()))
    point = ProcessPrior(Process(RBF(lengthscale=1.0), noise=0.05, scale_prior=Fixed()),
                         priors={"kernel.lengthscale": dist.Delta(0.3)})
    key = jax.random.key(1)
    np.testing.assert_allclose(fixed.sample(key, 8, T)[1], point.sample(key, 8, T)[1], rtol=1e-10)
    broad = ProcessPrior(Process(RBF(lengthscale=1.0), noise=0.05, scale_prior=Fixed()),
                         priors={"kernel.lengthscale": dist.LogNormal(np.log(0.3), 1.0)})
    assert not np.allclose(fixed.sample(key, 8, T)[1], broad.sample(key, 8, T)[1])


def linear(X, y=None):
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
    numpyro.sample("y", dist.Normal(X @ w, 0.5), obs=y)


def test_model_datasets_have_the_model_covariance():
    # y = x w + e, w ~ N(0, I), e ~ N(0, 0.25): C(x) = x xᵀ + 0.25 I, so E[q] = T (4 SE)
    prior = ModelPrior(linear, x_dim=3, inputs=dist.Normal(0.0, 1.0).expand([3]).to_event(1))
    assert prior.target == "y"
    x, y = prior.sample(jax.random.key(2), B, T)
    q = whitened_q(x, y, lambda xi: xi @ xi.T + 0.25 * jnp.eye(T))
    assert abs(q.mean() - T) < 4 * q.std() / np.sqrt(B)


@pytest.mark.parametrize("prior", [InverseGamma(3.0, 2.0), Gamma(2.0, 3.0), LogNormal(0.2, 0.7),
                                   BurrXII(2.0, 1.5, 0.8), HalfCauchy(0.7)], ids=lambda p: type(p).__name__)
def test_scale_prior_samplers_follow_their_densities(prior):
    # the fraction of 40,000 draws below s equals ∫₀ˢ p by quadrature, at 5 points, within 4 binomial SE
    draws = np.asarray(prior.sample(jax.random.key(3), (40_000,)))
    for s in np.quantile(draws, [0.05, 0.25, 0.5, 0.75, 0.95]):
        cdf = integrate.quad(lambda t: float(np.exp(prior.log_prob(t))), 0, s, limit=200)[0]
        assert abs((draws <= s).mean() - cdf) < 4 * np.sqrt(cdf * (1 - cdf) / draws.size)


def test_bad_priors_are_named():
    with pytest.raises(ModelError, match="scale prior"):
        ProcessPrior(Process(RBF(), scale_prior=Custom(fn=lambda s2: -s2)))
    with pytest.raises(ConfigError, match="priors"):
        ProcessPrior(Process(RBF()), priors={"kernel.period": dist.Normal()})
    with pytest.raises(ConfigError, match="inputs"):
        ProcessPrior(Process(RBF()), x_dim=2, inputs=dist.Uniform(0.0, 1.0))
    with pytest.raises(ConfigError, match="target"):
        ModelPrior(linear, target="z")
    with pytest.raises(ConfigError, match="num_points"):
        ModelPrior(linear).sample(jax.random.key(0), 4, 0)
