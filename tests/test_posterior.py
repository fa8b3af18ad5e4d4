"""The Posterior contract: sample, predict, summary, ArviZ, netCDF round trip, diagnostics, plots."""

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import bayeskit as bk
from bayeskit.diagnostics import bfmi, check, save_rank_plot, save_trace_plot, warn_if_problems

from .conftest import normal_mean_posterior


def regression(x, y=None):
    a = numpyro.sample("a", dist.Normal(0, 10))
    b = numpyro.sample("b", dist.Normal(0, 10))
    s = numpyro.sample("s", dist.HalfNormal(2))
    mean = numpyro.deterministic("mean", a + b * x)
    with numpyro.plate("n", x.shape[0]):
        numpyro.sample("y", dist.Normal(mean, s), obs=y)


@pytest.fixture(scope="module")
def reg_fit():
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, 30)
    y = 1.0 + 2.0 * x + 0.5 * rng.standard_normal(30)
    return bk.fit(regression, data={"x": x, "y": y}, engine=bk.NUTS(chains=2, warmup=300, draws=500, progress=False),
                  seed=0)


def test_summary_columns(normal_fit):
    table = normal_fit.summary()
    assert list(table.columns) == ["mean", "sd", "hdi_3%", "hdi_97%", "mcse_mean", "mcse_sd", "ess_bulk",
                                   "ess_tail", "r_hat"]
    assert list(table.index) == ["mu", "mu_sq"]
    eti = normal_fit.summary(interval="eti", ci_prob=0.9)
    assert {"eti_5%", "eti_95%", "r_hat"} <= set(eti.columns)
    mu = normal_fit.draws["mu"].ravel()
    assert eti.loc["mu", "eti_5%"] == pytest.approx(np.quantile(mu, 0.05), abs=5e-3)  # ArviZ rounds
    with pytest.raises(bk.ConfigError, match="`interval` must be"):
        normal_fit.summary(interval="hpd")
    assert list(normal_fit.summary(kind="stats", interval="eti").columns) == ["mean", "sd", "eti_3%", "eti_97%"]
    assert "eti_3%" not in normal_fit.summary(kind="diagnostics", interval="eti").columns


def test_summary_interval_covers_exact(normal_fit, normal_data):
    # the 94% HDI of the draws brackets the exact posterior mean
    mean, _ = normal_mean_posterior(normal_data["sigma"], normal_data["y"])
    row = normal_fit.summary().loc["mu"]
    assert row["hdi_3%"] < mean < row["hdi_97%"]


def test_to_arviz_groups(reg_fit):
    idata = reg_fit.to_arviz()
    assert set(idata.groups()) >= {"posterior", "sample_stats", "observed_data", "constant_data"}
    assert idata.posterior["b"].shape == (2, 500)
    assert idata.posterior["mean"].dims == ("chain", "draw", "mean_dim_0")
    np.testing.assert_array_equal(idata.observed_data["y"].values, reg_fit.observed_data["y"])
    assert "x" in idata.constant_data


def test_sample(reg_fit):
    draws = reg_fit.sample(100, seed=1)
    assert set(draws) == {"a", "b", "s", "mean"}
    assert draws["mean"].shape == (100, 30)
    np.testing.assert_array_equal(draws["a"], reg_fit.sample(100, seed=1)["a"])
    # without replacement while n <= chains x draws: every draw at most once
    labelled = bk.DrawsPosterior({"i": np.arange(1000.0).reshape(2, 500)})
    assert np.unique(labelled.sample(1000, seed=0)["i"]).size == 1000
    assert reg_fit.sample(5000, seed=0)["a"].shape == (5000,)
    with pytest.raises(bk.ConfigError, match="`n` must be an int >= 1"):
        reg_fit.sample(0)


def test_predict_new_inputs(reg_fit):
    x_new = np.array([-1.0, 0.0, 3.0])
    pred = reg_fit.predict({"x": x_new}, seed=0)
    assert pred["y"].shape == (1000, 3)
    # the predictive mean at x is a + b x averaged over draws
    a, b = reg_fit.draws["a"].ravel(), reg_fit.draws["b"].ravel()
    np.testing.assert_allclose(pred["mean"], a[:, None] + b[:, None] * x_new)
    # predictive sd = sqrt(var(a + b x) + E[s^2]); compare with 1000 draws (relative error of an sd ~ 2%)
    expect = np.sqrt(np.var(a[:, None] + b[:, None] * x_new, axis=0) + np.mean(reg_fit.draws["s"] ** 2))
    np.testing.assert_allclose(pred["y"].std(axis=0), expect, rtol=0.1)
    # default: the fit's own inputs; n: a subset of draws
    assert reg_fit.predict(n=50)["y"].shape == (50, 30)


def test_scalar_observation_is_observed_data():
    # a Python number passed as the observation is data: recorded, and simulated by predict
    def model(y):  # no default: predict passes y=None
        mu = numpyro.sample("mu", dist.Normal(0, 1))
        numpyro.sample("y", dist.Normal(mu, 1), obs=y)

    post = bk.fit(model, data={"y": 1.0}, engine=bk.NUTS(chains=2, warmup=200, draws=500, progress=False), seed=0)
    assert post.observed_keys == ("y",) and float(post.observed_data["y"]) == 1.0 and post.static_data == {}
    # predictive: mu | y ~ N(0.5, 1/2), so y_rep ~ N(0.5, sqrt(1.5)); sd of 1000 draws within 10%
    assert post.predict(seed=0)["y"].std() == pytest.approx(np.sqrt(1.5), rel=0.1)


def test_predict_rejects_unknown_argument(reg_fit):
    with pytest.raises(bk.DataError, match="data key 'z' is not an argument"):
        reg_fit.predict({"z": np.ones(3)})


def test_save_load_round_trip_is_exact(reg_fit, tmp_path):
    path = tmp_path / "fit.nc"
    reg_fit.save(path)
    back = bk.load(path)
    for group in ("draws", "sample_stats", "observed_data", "constant_data"):
        ours, theirs = getattr(reg_fit, group), getattr(back, group)
        assert set(ours) == set(theirs), group
        for k in ours:
            assert ours[k].dtype == theirs[k].dtype, (group, k)
            np.testing.assert_array_equal(ours[k], theirs[k])
    assert back.engine == reg_fit.engine and back.latent_sites == reg_fit.latent_sites
    with pytest.raises(bk.ModelError, match="bk.load\\(path, model=model\\)"):
        back.predict()
    with_model = bk.load(path, model=regression)
    np.testing.assert_array_equal(with_model.predict(seed=3)["y"], reg_fit.predict(seed=3)["y"])


def test_saved_file_is_arviz_netcdf(reg_fit, tmp_path):
    from bayeskit.diagnostics.arviz_bridge import _arviz

    path = tmp_path / "fit.nc"
    reg_fit.save(path)
    idata = _arviz().from_netcdf(path)
    np.testing.assert_array_equal(idata.posterior["b"].values, reg_fit.draws["b"])


def test_load_errors(tmp_path):
    with pytest.raises(bk.ConfigError, match="is not a file"):
        bk.load(tmp_path / "missing.nc")


def test_diagnostics_report(normal_fit):
    report = check(normal_fit)
    assert report.max_rhat < 1.01 and report.divergences == 0 and report.problems == []
    assert report.min_ess_bulk > 800
    assert len(bfmi(normal_fit)) == 4 and (bfmi(normal_fit) > 0.3).all()


def test_rhat_warning_carries_the_number():
    # two chains stuck in different places: R-hat far above 1.01
    rng = np.random.default_rng(0)
    draws = {"x": np.stack([rng.normal(0, 1, 500), rng.normal(3, 1, 500)])}
    post = bk.DrawsPosterior(draws, sample_stats={"diverging": np.zeros((2, 500), bool)})
    with pytest.warns(bk.ConvergenceWarning, match=r"max R-hat \d\.\d+ > 1.01 \(for x\)"):
        warn_if_problems(post)


def test_low_ess_warning():
    # a random walk: strongly autocorrelated, bulk ESS far below 100 per chain
    walk = np.cumsum(np.random.default_rng(0).normal(size=(2, 400)), axis=1)
    post = bk.DrawsPosterior({"x": walk})
    with pytest.warns(bk.ConvergenceWarning, match=r"min ESS_bulk \d+ < 200 \(100 per chain\)"):
        warn_if_problems(post)


def test_plots_are_png(reg_fit, tmp_path):
    for fn, name in ((save_trace_plot, "trace.png"), (save_rank_plot, "rank.png")):
        path = fn(reg_fit, tmp_path / name, var_names=["a", "b"])
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def _unsorted(x, y=None):
    z = numpyro.sample("z", dist.Normal(0, 1))
    a = numpyro.sample("a", dist.HalfNormal(1))
    m = numpyro.sample("m", dist.Normal(0, 1))
    numpyro.deterministic("d", z + m)
    numpyro.sample("y", dist.Normal(z + a * x + m, 1), obs=y)


@pytest.mark.parametrize("engine", [bk.NUTS(chains=2, warmup=100, draws=100, progress=False),
                                    bk.VI(steps=100, progress=False)], ids=["NUTS", "VI"])
def test_variables_keep_the_models_order(engine, tmp_path, capfd):
    """Sites in the order the model runs them (z, a, m, then the deterministic d), in the draws, the
    summary and the file, as a reader of the model expects; not sorted as pytrees sort keys. A VI
    summary (one chain of independent draws) prints no ArviZ notice about R-hat's shape."""
    x = np.linspace(0, 1, 10)
    post = bk.fit(_unsorted, {"x": x, "y": x}, engine, seed=0)
    assert list(post.draws) == ["z", "a", "m", "d"]
    capfd.readouterr()
    assert post.summary().index.tolist() == ["z", "a", "m", "d"]
    assert "Shape validation" not in capfd.readouterr().err
    post.save(tmp_path / "p.nc")
    assert list(bk.load(tmp_path / "p.nc").draws) == ["z", "a", "m", "d"]


def test_pointwise_log_likelihood_is_the_normal_density_at_each_draw(reg_fit):
    """log p(y_i | a, b, s) at every draw equals scipy's normal log-density (1e-10), laid out as
    az.from_numpyro lays it: (chain, draw, observation)."""
    from scipy import stats

    ll = reg_fit.pointwise_log_likelihood()["y"]
    d = reg_fit.draws
    x, y = reg_fit.constant_data["x"], reg_fit.observed_data["y"]
    want = stats.norm.logpdf(y, d["a"][..., None] + d["b"][..., None] * x, d["s"][..., None])
    assert ll.shape == (2, 500, 30)
    np.testing.assert_allclose(ll, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("engine", [bk.HMC(chains=2, warmup=300, draws=500, progress=False),
                                    bk.VI(steps=1000, progress=False)], ids=["HMC", "VI"])
def test_loo_waic_and_compare_work_on_fits(reg_fit, engine):
    """az.loo and az.waic on bayeskit fits, and az.compare of two engines' fits of one model: the
    same data, so their elpd agree within the comparison's standard error of the difference (4 dse)."""
    import arviz as az

    other = bk.fit(regression, data={"x": reg_fit.constant_data["x"], "y": reg_fit.observed_data["y"]}, engine=engine,
                   seed=1)
    loo = az.loo(reg_fit.to_arviz(), pointwise=True)
    assert loo.pareto_k.shape == (30,) and float(loo.pareto_k.max()) < 0.7
    with np.errstate(all="ignore"):
        assert np.isfinite(az.waic(other.to_arviz()).elpd_waic)
    table = az.compare({"nuts": reg_fit.to_arviz(), "other": other.to_arviz()})
    assert set(table.index) == {"nuts", "other"}
    assert abs(table["elpd_loo"].iloc[0] - table["elpd_loo"].iloc[1]) < 4 * max(table["dse"].iloc[1], 0.05)


def test_the_log_likelihood_is_saved_and_can_be_left_out(reg_fit, tmp_path, monkeypatch):
    from bayeskit.core import posterior as posterior_module

    reg_fit.save(tmp_path / "with.nc")
    back = bk.load(tmp_path / "with.nc")  # no model: the saved log-likelihood is what it has
    np.testing.assert_array_equal(back.pointwise_log_likelihood()["y"], reg_fit.pointwise_log_likelihood()["y"])
    assert "log_likelihood" in back.to_arviz().groups()
    reg_fit.save(tmp_path / "without.nc", log_likelihood=False)
    assert "log_likelihood" not in bk.load(tmp_path / "without.nc").to_arviz().groups()
    assert "log_likelihood" not in reg_fit.to_arviz(log_likelihood=False).groups()

    fresh = bk.load(tmp_path / "without.nc", model=regression)
    monkeypatch.setattr(posterior_module, "LOG_LIKELIHOOD_MEMORY", 1000)  # 2 x 500 draws x 30 values is 240 kB
    with pytest.warns(UserWarning, match=r"would take .* GiB .*pass log_likelihood=True"):
        assert fresh.pointwise_log_likelihood() == {}


def test_posterior_predictive_group_pairs_each_replicate_with_its_draw(reg_fit, tmp_path):
    """ỹ at draw k is drawn given θ_k: (ỹ − a_k − b_k x) / s_k is standard normal over all 30,000
    values (mean within 4 SE, variance within 4%, about 4 SE of a variance), which a replicate
    drawn at another draw would not be. az.plot_ppc and az.plot_loo_pit run on the InferenceData,
    and the group is saved."""
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    rep = reg_fit.posterior_predictive()["y"]
    d = reg_fit.draws
    z = (rep - d["a"][..., None] - d["b"][..., None] * reg_fit.constant_data["x"]) / d["s"][..., None]
    assert rep.shape == (2, 500, 30)
    assert abs(z.mean()) < 4 / np.sqrt(z.size) and abs(z.var() - 1) < 0.04
    idata = reg_fit.to_arviz()
    az.plot_ppc(idata, num_pp_samples=20)
    az.plot_loo_pit(idata, y="y")
    reg_fit.save(tmp_path / "p.nc")
    np.testing.assert_array_equal(bk.load(tmp_path / "p.nc").posterior_predictive()["y"], rep)
    assert "posterior_predictive" not in reg_fit.to_arviz(posterior_predictive=False).groups()


def test_coords_and_dims_name_dimensions_in_inference_data_summaries_and_files(tmp_path):
    """`bk.fit(..., coords=, dims=)` as ArviZ takes them: the schools name theta's dimension in the
    posterior, the observations and the log-likelihood, label the summary, and survive a file; a dims
    entry of the wrong length or coords of the wrong size are named errors."""
    from bayeskit.datasets import eight_schools

    names = ["A", "B", "C", "D", "E", "F", "G", "H"]
    post = bk.fit(eight_schools.model, eight_schools.DATA, bk.NUTS(chains=2, warmup=200, draws=200, progress=False),
                  seed=0, coords={"school": names}, dims={"theta_trans": ["school"], "y": ["school"]})
    idata = post.to_arviz()
    assert idata.posterior["theta_trans"].dims == ("chain", "draw", "school")
    assert list(idata.posterior.coords["school"].values) == names
    assert idata.observed_data["y"].dims == ("school",) and idata.log_likelihood["y"].dims[-1] == "school"
    assert "theta_trans[C]" in post.summary().index
    post.save(tmp_path / "p.nc")
    back = bk.load(tmp_path / "p.nc").to_arviz()
    assert back.posterior["theta_trans"].dims == ("chain", "draw", "school")
    assert list(back.posterior.coords["school"].values) == names
    post.name_dimensions({"school": names[:3]}, {"theta_trans": ["school"]})
    with pytest.raises(bk.DataError, match=r"`coords\['school'\]` has 3 labels, but 'theta_trans' has 8"):
        post.to_arviz()
    post.name_dimensions(None, {"theta_trans": ["school", "term"]})
    with pytest.raises(bk.DataError, match=r"`dims\['theta_trans'\]` names 2 dimension"):
        post.to_arviz()
    with pytest.raises(bk.ConfigError, match=r"`dims\['mu'\]` must be a list"):
        post.name_dimensions(None, {"mu": "school"})
