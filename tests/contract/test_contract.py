"""The Posterior contract, checked for every (model kind, engine) pair in `cases.CASES`.

Whatever the engine, a posterior must: give `sample(n, seed)` arrays with leading axis n; be a pure
function of the seed (an int and the JAX key it stands for give the same numbers; different seeds
differ); survive save -> `bk.load` with its draws and its engine; `predict` through one signature;
convert to ArviZ with the dimensions ArviZ expects; summarise without R-hat unless its draws are
Markov chains; and an engine that cannot fit a model says so, naming both and what would fit.
"""

from __future__ import annotations

import logging

import jax
import numpy as np
import pytest

import bayeskit as bk

from .cases import CASES


@pytest.fixture(scope="module", params=CASES, ids=[c.name for c in CASES])
def case(request):
    return request.param


_FITS: dict = {}


def fitted(case, seed):
    """One fit per (case, seed form), shared by the tests of this module."""
    key = (case.name, repr(np.asarray(jax.random.key_data(seed))) if not isinstance(seed, int) else seed)
    if key not in _FITS:
        _FITS[key] = bk.fit(case.model(), data=case.data(), engine=case.engine(), seed=seed)
    return _FITS[key]


def _equal(a: dict, b: dict):
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


def test_sample_shapes(case):
    post = fitted(case, 0)
    assert isinstance(post, bk.Posterior)
    draws = post.sample(7, seed=0)
    assert draws and all(np.asarray(v).shape[0] == 7 for v in draws.values())
    with pytest.raises(bk.ConfigError, match="`n` must be an int >= 1"):
        post.sample(0)


def test_pure_in_the_seed(case):
    post = fitted(case, 3)
    refit = bk.fit(case.model(), data=case.data(), engine=case.engine(), seed=3)
    _equal(post.sample(20, seed=1), refit.sample(20, seed=1))
    # the JAX key an int stands for, raw or typed, gives the same posterior and the same draws
    for key in (jax.random.PRNGKey(3), jax.random.key(3)):
        _equal(post.sample(20, seed=1), fitted(case, key).sample(20, seed=1))
    _equal(post.sample(20, seed=1), post.sample(20, seed=jax.random.key(1)))


def test_different_seeds_differ(case):
    a, b = fitted(case, 0).sample(20, seed=1), fitted(case, 3).sample(20, seed=1)
    c = fitted(case, 0).sample(20, seed=2)
    fit_differs = any(not np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)
    assert fit_differs == case.random_fit, "a random fit differs with its seed; a deterministic one does not"
    assert any(not np.array_equal(np.asarray(a[k]), np.asarray(c[k])) for k in a), "different sample seeds"


def test_save_load_round_trip(case, tmp_path):
    post = fitted(case, 0)
    path = tmp_path / f"{case.name}.nc"
    post.save(path)
    back = bk.load(path)
    _equal(back.draws, post.groups()["posterior"])
    assert type(back.engine) is type(post.engine) and back.engine is not None
    assert back.markov == post.markov
    if not post.engine.settings()["stored_as_repr"]:
        assert back.engine == post.engine  # every setting a plain value: the same engine comes back
    assert back.engine_settings() == post.engine.settings()  # as saved, repr-stored settings too
    # the run's record (ESS per time, objective per step, training loss) comes back value for value
    assert set(back.traces()) == set(post.traces())
    for name, values in post.traces().items():
        np.testing.assert_array_equal(back.traces()[name], np.asarray(values, dtype=float).ravel(), err_msg=name)


def test_report(case, tmp_path):
    """Every posterior writes a self-contained HTML report: its engine, checks, summary rows of its
    variables, a figure per plot that applies, and each of the run's traces; so does its saved file."""
    import re

    post = fitted(case, 0)
    page = open(post.report(tmp_path / "report.html")).read()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert not re.search(r'(src|href)="(?!data:image/png;base64,|#)', page)  # self-contained: no outside links
    assert f"<td><code>{type(post.engine).__name__}</code>" in page
    for section in ("overview", "checks", "summary", "plots"):
        assert f'<section id="{section}">' in page, section
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    titles = [t for t, _ in images]
    assert "Trace" in titles and all(len(data) > 2000 for _, data in images)  # a real PNG, not an empty one
    assert ("Rank" in titles) == (post.markov and post.to_arviz().posterior.sizes["chain"] > 1)
    for name in post.traces():
        assert name in titles, name
    first = next(iter(post.to_arviz().posterior.data_vars))
    assert re.search(rf"<tr><th>{re.escape(first)}(\[[^<]*\])?</th>", page), first
    post.save(tmp_path / "fit.nc")
    assert "<section id=\"summary\">" in open(bk.load(tmp_path / "fit.nc").report(tmp_path / "back.html")).read()


def test_predict_signature(case):
    post = fitted(case, 0)
    out = post.predict(case.predict, seed=0) if case.predict is not None else post.predict(seed=0)
    again = post.predict(case.predict, seed=0) if case.predict is not None else post.predict(seed=0)
    if isinstance(out, dict):
        _equal(out, again)
        for v in out.values():
            assert np.all(np.isfinite(np.asarray(v, dtype=float)))
    with pytest.raises((bk.ConfigError, TypeError)):
        post.predict(case.predict, seed=0, no_such_option=1)


def test_to_arviz_and_summary(case, caplog):
    import arviz as az

    post = fitted(case, 0)
    idata = post.to_arviz()
    assert isinstance(idata, az.InferenceData) and "posterior" in idata.groups()
    assert idata.posterior.sizes["chain"] >= 1 and idata.posterior.sizes["draw"] >= 1
    with caplog.at_level(logging.WARNING, logger="arviz"):
        table = post.summary()
    assert {"mean", "sd", "ess_bulk"} <= set(table.columns)
    assert ("r_hat" in table.columns) == post.markov
    assert not [r for r in caplog.records if "Shape validation failed" in r.getMessage()]


def test_wrong_engine_is_named(case):
    model = case.model()
    wrong = bk.ParticleFilter(progress=False) if case.name not in ("particle_filter", "paris", "particle_gibbs") \
        else bk.NUTS(progress=False)
    with pytest.raises(bk.IncompatibleEngineError, match=rf"engine {type(wrong).__name__} cannot fit model .*engines "
                                                          r"that fit it: .*bk\."):
        bk.fit(model, data=case.data(), engine=wrong)
