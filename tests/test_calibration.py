"""Calibration of every engine: the uniformity test itself, then simulation-based calibration (SBC;
Talts et al. 2018) and predictive PIT through `bk.fit` as a user runs it.

A calibrated engine passes at family-wise level 0.05 (each scalar at 0.05 / scalars): with seeded
simulations the verdict is deterministic, and a failure means the engine's law is off by more than
the test's power at that number of simulations can miss. SBC must also be able to fail: mean-field
VI on a correlated posterior is too narrow and is flagged as such. Small versions run in the default
tier; `slow` ones use 200+ simulations and the engines' defaults.
"""

from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import bayeskit as bk
from bayeskit.core.errors import ConfigError, DataError, SamplingError
from bayeskit.diagnostics import sbc, uniformity_test
from bayeskit.diagnostics.calibration import _rank

# -- the uniformity test ----------------------------------------------------------------------------


def test_uniformity_test_is_exact_under_the_null_and_rejects_u_and_hump_shapes():
    """Under uniformity p is uniform: of 400 seeded samples of 60, the share with p < 0.05 is within
    4 binomial SE (0.044) of 0.05. Beta(0.5, 0.5) (∪) and Beta(2, 2) (∩) samples of 200 are rejected."""
    p = np.array([uniformity_test(np.random.default_rng(i).uniform(size=60)).p_value for i in range(400)])
    assert abs(np.mean(p < 0.05) - 0.05) < 4 * np.sqrt(0.05 * 0.95 / 400)
    assert abs(np.mean(p < 0.5) - 0.5) < 4 * np.sqrt(0.25 / 400)
    rng = np.random.default_rng(0)
    for a in (0.5, 2.0):
        test = uniformity_test(rng.beta(a, a, size=200))
        assert test.p_value < 0.001 and test.outside


def test_the_band_and_the_p_value_agree():
    """The ECDF leaves the simultaneous 95% band exactly when p < 0.05 (both come from one null law;
    they may differ only within the null simulation's resolution, so samples with p in
    [0.04, 0.06] are skipped)."""
    rng = np.random.default_rng(1)
    checked = 0
    for i in range(150):
        u = rng.beta(1 + 0.004 * i, 1, size=80)
        test = uniformity_test(u)
        if abs(test.p_value - 0.05) > 0.01:
            assert test.outside == (test.p_value < 0.05), (i, test.p_value)
            checked += 1
    assert checked > 100


def test_ranks_break_ties_uniformly():
    """A discrete truth equal to every draw has rank uniform on 0 … L (otherwise always 0)."""
    rng = np.random.default_rng(0)
    ranks = np.array([_rank(np.zeros((9, 1)), np.zeros(1), rng)[0] for _ in range(5000)])
    counts = np.bincount(ranks, minlength=10)
    assert counts.size == 10
    assert np.all(np.abs(counts - 500) < 4 * np.sqrt(500 * 0.9))  # each within 4 binomial SE


def test_uniformity_test_names_its_argument():
    with pytest.raises(ValueError, match="`u` must hold at least 2 values in"):
        uniformity_test([0.2, 1.5])


# -- SBC through bk.fit -----------------------------------------------------------------------------


def _correlated_regression(n=30):
    """y ~ N(X b, 1), b ~ N(0, I₂), two inputs with correlation ≈ 0.99: b's posterior correlation ≈ −0.99."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=n)
    X = np.stack([z, z + 0.15 * rng.normal(size=n)], 1)

    def model(X, y=None):
        b = numpyro.sample("b", dist.Normal(0, 1).expand([2]).to_event(1))
        numpyro.sample("y", dist.Normal(X @ b, 1.0), obs=y)

    return model, {"X": X, "y": np.zeros(n)}


def test_sbc_of_nuts_on_eight_schools_passes():
    from bayeskit.datasets import eight_schools

    result = sbc(eight_schools.model, bk.NUTS(chains=2, draws=500), eight_schools.DATA, simulations=24, draws=49,
                 seed=0, progress=False)
    assert result.ranks["theta_trans"].shape == (24, 8) and result.ranks["mu"].shape == (24,)
    assert result.ranks["mu"].min() >= 0 and result.ranks["mu"].max() <= 49
    assert result.passed(), result.failures()
    assert len(result.table()) == 10  # mu, tau and the 8 theta_trans


def test_sbc_passes_full_rank_vi_and_flags_mean_field_vi_as_too_narrow():
    """On a Gaussian posterior with correlation −0.99 a full-rank Gaussian guide is exact and passes;
    mean-field's marginals are far too narrow (sd ≈ sqrt(1 − ρ²) ≈ 0.14 of the truth): its ranks pile at
    both ends and SBC must say so."""
    model, data = _correlated_regression()
    full = sbc(model, bk.VI(guide="full_rank"), data, simulations=20, seed=0, progress=False)
    assert full.passed(), full.failures()
    mean_field = sbc(model, bk.VI(guide="mean_field"), data, simulations=20, seed=0, progress=False)
    failures = mean_field.failures()
    assert set(failures) == {"b[0]", "b[1]"}
    assert all(v.startswith("posterior too narrow") for v in failures.values()), failures
    assert (mean_field.table()["dispersion"] > 1.5).all()


def test_sbc_of_process_hyperparameters_with_nuts():
    """Lengthscale and noise of a Student-t process (σ² integrated out), NUTS through `numpyro_model`:
    datasets come from the model's own observed site (`ProcessMarginal`)."""
    from bayeskit.models.kernels import RBF
    from bayeskit.models.processes import InverseGamma, ScaleMixtureProcess, numpyro_model

    process = ScaleMixtureProcess(RBF(variance=1.0, lengthscale=1.0), noise=0.1, scale_prior=InverseGamma(3.0, 2.0))
    model = numpyro_model(process, {"kernel.lengthscale": dist.LogNormal(0.0, 0.5), "noise": dist.LogNormal(-2, 0.5)})
    X = np.linspace(-3, 3, 20)[:, None]
    result = sbc(model, bk.NUTS(chains=2, draws=300), {"X": X, "y": np.zeros(20)}, simulations=16, draws=49,
                 seed=0, progress=False)
    assert result.passed(), result.failures()


def test_sbc_of_particle_gibbs_states_of_a_linear_gaussian_model():
    """States x_0 … x_7 of a scalar linear-Gaussian model, simulated by the model, ranked among
    particle Gibbs' reference paths (4 runs x 20 kept sweeps, thinned to 19)."""
    from bayeskit.models.state_space import LinearGaussian

    model = LinearGaussian.scalar(a=0.9, c=1.0, q=0.5, r=1.0)
    engine = bk.ParticleGibbs(functional=lambda x, x_next, t: x, n_particles=16, runs=4, sweeps=25, burn_in=5)
    result = sbc(model, engine, {"y": np.zeros((8, 1))}, simulations=20, draws=19, seed=0, progress=False)
    assert result.ranks["x"].shape == (20, 8, 1)
    assert result.passed(), result.failures()


def test_pit_calibration_of_a_shipped_neural_process():
    """The shipped MPNP on its own prior (RBF tasks): PIT of one held-out point per dataset after 10
    context points; 120 datasets. Coverage of each central interval within 3 binomial SE of its level."""
    pytest.importorskip("torch")
    from bayeskit.datasets.gp_tasks import gp_tasks

    prior = gp_tasks("rbf")
    result = bk.diagnostics.pit_calibration(prior.process, bk.NeuralProcess(network="mpnp-gp"), prior,
                                            datasets=120, context=10, seed=0, progress=False)
    assert result.kind == "pit" and result.values["y"].shape == (120,)
    assert result.passed(), result.failures()
    for level, share in result.coverage.items():
        assert abs(share - level) < 3 * np.sqrt(level * (1 - level) / 120), (level, share)


def test_sbc_plot_and_dataset(tmp_path):
    model, data = _correlated_regression()
    result = sbc(model, bk.VI(guide="mean_field", steps=500), data, simulations=12, draws=19, seed=1, progress=False)
    fig = result.plot(tmp_path / "sbc.png")
    assert (tmp_path / "sbc.png").stat().st_size > 5000
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
    ds = result.to_dataset()
    assert ds["b"].dims == ("chain", "draw", "b_dim_0") and ds["b"].shape == (1, 12, 2)
    with pytest.raises(DataError, match="`var_names`"):
        result.plot(var_names=["nope"])


def test_sbc_is_a_pure_function_of_its_seed():
    model, data = _correlated_regression()
    a = sbc(model, bk.VI(guide="full_rank", steps=300), data, simulations=4, draws=9, seed=3, progress=False)
    b = sbc(model, bk.VI(guide="full_rank", steps=300), data, simulations=4, draws=9, seed=3, progress=False)
    np.testing.assert_array_equal(a.ranks["b"], b.ranks["b"])
    np.testing.assert_array_equal(a.truth["b"], b.truth["b"])


def test_a_failing_simulation_keeps_the_ones_before_it():
    """A dataset the engine rejects (a NaN observation in simulation 3) raises a SamplingError naming
    the simulation, with the three finished ones in ``partial``."""
    model, data = _correlated_regression()
    from bayeskit.core.model import as_model
    from bayeskit.diagnostics.calibration import _numpyro_simulator

    base = _numpyro_simulator(as_model(model), data, None)

    def simulate(key, n):
        truth, datasets = base(key, n)
        datasets[3] = {**datasets[3], "y": np.full(30, np.nan)}
        return truth, datasets

    with pytest.raises(SamplingError, match="simulation 3 failed") as info:
        sbc(model, bk.VI(steps=200), data, simulations=6, draws=9, simulate=simulate, progress=False)
    assert info.value.partial.simulations == 3


def test_sbc_input_errors_name_the_argument():
    model, data = _correlated_regression()
    with pytest.raises(DataError, match="replaces the observations"), pytest.warns(UserWarning, match="'y' was not"):
        sbc(model, bk.VI(), {"X": data["X"]}, simulations=2, progress=False)
    with pytest.raises(DataError, match="not latent variables"):
        sbc(model, bk.VI(), data, var_names=["c"], simulations=2, progress=False)
    with pytest.raises(ConfigError, match="`simulations` must be an int"):
        sbc(model, bk.VI(), data, simulations=0, progress=False)
    with pytest.raises(ConfigError, match="but the engine returns 200"):  # raised as it is: nothing was done
        sbc(model, bk.NUTS(chains=1, warmup=50, draws=200), data, simulations=2, draws=999, progress=False)


# -- full versions ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("engine", [bk.NUTS(), bk.HMC(num_steps=16)], ids=["NUTS", "HMC"])
def test_sbc_full_eight_schools(engine):
    from bayeskit.datasets import eight_schools

    result = sbc(eight_schools.model, engine, eight_schools.DATA, simulations=200, seed=0, progress=False)
    assert result.passed(), result.failures()


@pytest.mark.slow
def test_sbc_full_logistic_regression_with_nuts():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))

    def model(X, y=None):
        a = numpyro.sample("a", dist.Normal(0, 1.5))
        b = numpyro.sample("b", dist.Normal(0, 1).expand([3]).to_event(1))
        numpyro.sample("y", dist.Bernoulli(logits=a + X @ b), obs=y)

    result = sbc(model, bk.NUTS(), {"X": X, "y": np.zeros(60)}, simulations=200, seed=0, progress=False)
    assert result.passed(), result.failures()


@pytest.mark.slow
def test_sbc_full_vi():
    model, data = _correlated_regression()
    assert sbc(model, bk.VI(guide="full_rank"), data, simulations=200, seed=0, progress=False).passed()
    assert set(sbc(model, bk.VI(guide="mean_field"), data, simulations=200, seed=0,
                   progress=False).failures()) == {"b[0]", "b[1]"}


@pytest.mark.slow
def test_lc_pfn_intervals_are_conservative_one_epoch_ahead():
    """Measured, not hoped: the shipped `lc-tiny` (3,000 training steps) is over-dispersed one epoch
    after 10 observed (50% intervals cover 65%); it is never over-confident: every level's coverage is
    at least its nominal value less 2 binomial SE, on 300 curves."""
    pytest.importorskip("torch")
    from bayeskit.models.learning_curves import learning_curve_model

    result = bk.diagnostics.pit_calibration(learning_curve_model, bk.PFN(network="lc-tiny"),
                                            bk.pfn.LearningCurvePrior(), datasets=300, context=10, seed=0,
                                            progress=False)
    assert result.failures() and "too wide" in result.failures()["y"]
    for level, share in result.coverage.items():
        assert share >= level - 2 * np.sqrt(level * (1 - level) / 300), (level, share)


@pytest.mark.slow
def test_sbc_full_process_hyperparameters_and_particle_gibbs():
    from bayeskit.models.kernels import RBF
    from bayeskit.models.processes import InverseGamma, ScaleMixtureProcess, numpyro_model
    from bayeskit.models.state_space import LinearGaussian

    process = ScaleMixtureProcess(RBF(variance=1.0, lengthscale=1.0), noise=0.1, scale_prior=InverseGamma(3.0, 2.0))
    model = numpyro_model(process, {"kernel.lengthscale": dist.LogNormal(0.0, 0.5), "noise": dist.LogNormal(-2, 0.5)})
    X = np.linspace(-3, 3, 25)[:, None]
    result = sbc(model, bk.NUTS(), {"X": X, "y": np.zeros(25)}, simulations=100, seed=0, progress=False)
    assert result.passed(), result.failures()

    lg = LinearGaussian.scalar(a=0.9, c=1.0, q=0.5, r=1.0)
    pg = bk.ParticleGibbs(functional=lambda x, x_next, t: x, n_particles=32, runs=4, sweeps=105, burn_in=5)
    result = sbc(lg, pg, {"y": np.zeros((20, 1))}, simulations=100, seed=0, progress=False)
    assert result.passed(), result.failures()
