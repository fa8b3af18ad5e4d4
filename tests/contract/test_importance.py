"""The worked-example engine (docs/extending.md) is right, not only well-formed: on the conjugate
normal model its draws match the exact posterior."""

import numpy as np

import bayeskit as bk
from tests.conftest import normal_mean_model, normal_mean_posterior

from .importance import ImportanceSampling


def test_importance_sampling_matches_the_exact_posterior(normal_data):
    post = bk.fit(normal_mean_model, data=normal_data, engine=ImportanceSampling(), seed=0)
    mean, sd = normal_mean_posterior(normal_data["sigma"], normal_data["y"])
    ess = float(post.sample_stats["ess"][0, 0])
    draws = post.draws["mu"].ravel()
    assert ess > 1000  # the posterior is close enough to the prior for 20,000 particles
    # the resampled mean carries the weights' error (1/ESS) and the resampling's (1/draws): 4 standard errors
    se = sd * np.sqrt(1 / ess + 1 / draws.size)
    assert abs(draws.mean() - mean) < 4 * se
    assert abs(draws.std() - sd) < 4 * sd / np.sqrt(2 * min(ess, draws.size))
    np.testing.assert_allclose(post.draws["mu_sq"], post.draws["mu"] ** 2)  # deterministic sites come along
    assert "r_hat" not in post.summary().columns
