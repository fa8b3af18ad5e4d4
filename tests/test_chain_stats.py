"""bayeskit's NumPy R-hat, bulk ESS and E-BFMI (the checks `bk.fit` runs) against ArviZ's.

Same estimators, same arithmetic up to summation order: agreement to 1e-10 relative, on chains
that exercise every branch (ties from rejected moves, odd draw counts, one chain, constant
components, short and strongly autocorrelated chains, NaN draws).
"""

import numpy as np
import pytest

from bayeskit.diagnostics import chain_stats

az = pytest.importorskip("arviz")
from arviz.stats.diagnostics import _ess_bulk, _rhat_rank  # noqa: E402


def _ar1(rng, chains, draws, phi, shape=()):
    x = np.zeros((chains, draws) + shape)
    e = rng.standard_normal((chains, draws) + shape)
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x


def _reference(fn, x):
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    return np.array([fn(flat[:, :, j]) for j in range(flat.shape[2])]).reshape(x.shape[2:])


CASES = {
    "iid": lambda rng: rng.standard_normal((4, 1000, 3)),
    "ar1 0.9, odd draws": lambda rng: _ar1(rng, 4, 501, 0.9, (2,)),
    "ar1 0.999 (barely mixing)": lambda rng: _ar1(rng, 3, 400, 0.999),
    "ties (rejections)": lambda rng: np.repeat(rng.standard_normal((4, 250, 2)), 4, axis=1),
    "discrete values": lambda rng: rng.integers(0, 3, size=(4, 200, 2)).astype(float),
    "shifted chain": lambda rng: rng.standard_normal((4, 300)) + np.array([0, 0, 0, 2.0])[:, None],
    "antithetic": lambda rng: np.cumprod(-np.ones((2, 100)), axis=1) + 0.01 * rng.standard_normal((2, 100)),
    "short": lambda rng: rng.standard_normal((2, 5)),
}


@pytest.mark.parametrize("case", CASES)
def test_rhat_and_ess_equal_arviz(case):
    x = CASES[case](np.random.default_rng(7))
    np.testing.assert_allclose(chain_stats.rhat(x), _reference(_rhat_rank, x), rtol=1e-10)
    np.testing.assert_allclose(chain_stats.ess_bulk(x), _reference(_ess_bulk, x), rtol=1e-10)


def test_undefined_cases_are_nan_as_in_arviz():
    rng = np.random.default_rng(0)
    one_chain = rng.standard_normal((1, 100))
    assert np.isnan(chain_stats.rhat(one_chain))  # R-hat compares chains
    np.testing.assert_allclose(chain_stats.ess_bulk(one_chain), _ess_bulk(one_chain), rtol=1e-10)
    assert np.isnan(chain_stats.ess_bulk(rng.standard_normal((4, 3)))).all()  # < 4 draws
    with_nan = rng.standard_normal((4, 100, 2))
    with_nan[1, 5, 0] = np.nan
    assert np.isnan(chain_stats.rhat(with_nan)[0]) and np.isfinite(chain_stats.rhat(with_nan)[1])
    constant = np.ones((4, 100))
    assert chain_stats.ess_bulk(constant) == _ess_bulk(constant) == 400


def test_bfmi_equals_arviz():
    energy = _ar1(np.random.default_rng(3), 4, 500, 0.7)
    np.testing.assert_allclose(chain_stats.bfmi(energy), az.bfmi(energy), rtol=1e-12)
