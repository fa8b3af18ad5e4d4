"""Bad input gets an error that names the argument (or site) and what was expected."""

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import bayeskit as bk
from bayeskit.core.seeds import as_key

from .conftest import normal_mean_model

FAST = dict(chains=2, warmup=20, draws=20, progress=False)


def test_error_hierarchy():
    assert issubclass(bk.DataError, bk.BayeskitError) and issubclass(bk.DataError, ValueError)
    assert issubclass(bk.InitializationError, RuntimeError)
    assert issubclass(bk.IncompatibleEngineError, TypeError)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_observation_names_the_site(bad):
    y = np.ones(5)
    y[3] = bad
    with pytest.raises(bk.DataError, match=r"observed site 'y'.*1 non-finite.*index \(3,\)"):
        bk.fit(normal_mean_model, data={"sigma": np.ones(5), "y": y}, engine=bk.NUTS(**FAST))


def test_non_finite_input_names_the_key():
    sigma = np.ones(5)
    sigma[0] = np.nan
    with pytest.raises(bk.DataError, match="data key 'sigma'"):
        bk.fit(normal_mean_model, data={"sigma": sigma, "y": np.ones(5)}, engine=bk.NUTS(**FAST))


def test_unknown_data_key():
    with pytest.raises(bk.DataError, match=r"data key 'x' is not an argument of model 'normal_mean_model'.*sigma, y"):
        bk.fit(normal_mean_model, data={"sigma": np.ones(3), "y": np.ones(3), "x": 1.0}, engine=bk.NUTS(**FAST))


def test_data_must_be_a_mapping():
    with pytest.raises(bk.DataError, match="`data` must be a dict"):
        bk.fit(normal_mean_model, data=[1, 2], engine=bk.NUTS(**FAST))


def test_model_without_latent_sites():
    def observed_only(y=None):
        numpyro.sample("y", dist.Normal(0, 1), obs=y)

    with pytest.raises(bk.ModelError, match="no latent sample sites"):
        bk.fit(observed_only, data={"y": 0.5}, engine=bk.NUTS(**FAST))


def test_discrete_latent_site_is_refused():
    def discrete(y=None):
        k = numpyro.sample("k", dist.Poisson(3.0))
        numpyro.sample("y", dist.Normal(k, 1.0), obs=y)

    with pytest.raises(bk.ModelError, match="discrete latent site.*'k'"):
        bk.fit(discrete, data={"y": 0.5}, engine=bk.NUTS(**FAST))


def test_non_finite_initial_density_names_the_site():
    # Observations outside the likelihood's support: every start has log density -inf.
    def positive(y=None):
        rate = numpyro.sample("rate", dist.Gamma(2.0, 1.0))
        numpyro.sample("y", dist.Gamma(2.0, rate), obs=y)  # log(-2) is nan

    with pytest.raises(bk.InitializationError, match=r"chain\(s\) 0, 1 .*'y' \(observed\) has log density (nan|-inf)"):
        bk.fit(positive, data={"y": np.array([1.0, -2.0])}, engine=bk.NUTS(**FAST))


def test_model_that_raises_is_reported():
    def broken(y=None):
        numpyro.sample("a", dist.Normal(0, 1))
        raise RuntimeError("boom")

    with pytest.raises(bk.ModelError, match="failed when run with the given data: RuntimeError: boom"):
        bk.fit(broken, engine=bk.NUTS(**FAST))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(chains=0), "`chains` must be an int >= 1"),
        (dict(chains=-2), "`chains` must be an int >= 1"),
        (dict(draws=0), "`draws` must be an int >= 1"),
        (dict(warmup=-1), "`warmup` must be an int >= 0"),
        (dict(chains=2.5), "`chains` must be an int"),
        (dict(target_accept=1.2), r"`target_accept` must be a finite number in \(0, 1\)"),
        (dict(max_tree_depth=0), "`max_tree_depth` must be an int >= 1"),
        (dict(init="zeros"), "`init` must be one of"),
        (dict(init_radius=0.0), "`init_radius` must be a finite number > 0"),
    ],
)
def test_engine_settings_are_checked(kwargs, match):
    with pytest.raises(bk.ConfigError, match=match):
        bk.NUTS(**kwargs)


def test_hmc_settings_are_checked():
    with pytest.raises(bk.ConfigError, match="`num_steps` must be an int >= 1"):
        bk.HMC(num_steps=0)


def test_init_value_for_unknown_site():
    with pytest.raises(bk.ConfigError, match="`init` names 'nu', which is not a latent site"):
        bk.fit(normal_mean_model, data={"sigma": np.ones(3), "y": np.ones(3)}, engine=bk.NUTS(init={"nu": 1.0}, **FAST))


def test_engine_type_is_checked():
    with pytest.raises(bk.ConfigError, match="`engine` must be a bayeskit engine"):
        bk.fit(normal_mean_model, data={"sigma": np.ones(3)}, engine="nuts")


def test_incompatible_engine_names_model_and_engine():
    class Process:
        name = "my_process"
        engines = ()

    with pytest.raises(bk.IncompatibleEngineError, match="engine NUTS cannot fit model 'my_process'"):
        bk.fit(Process(), engine=bk.NUTS(**FAST))


def test_seeds():
    assert (as_key(3) == jax.random.PRNGKey(3)).all()
    assert (as_key(2**32 + 5) == jax.random.PRNGKey(2**32 + 5)).all() and (as_key(0) == jax.random.PRNGKey(0)).all()
    assert (as_key(jax.random.key(3)) == jax.random.PRNGKey(3)).all()
    assert (as_key(jax.random.PRNGKey(3)) == jax.random.PRNGKey(3)).all()
    for bad in (True, -1, "0", 1.5):
        with pytest.raises(bk.ConfigError, match="`seed` must be"):
            as_key(bad)
