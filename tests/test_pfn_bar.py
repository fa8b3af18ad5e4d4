"""The bar distribution (a PFN's output head) against quadrature and its own inverse: the density
integrates to 1 with the stated mean and variance, cdf and icdf invert each other in the buckets
and in the half-normal tails, and sampling follows the cdf."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bayeskit.core.errors import ConfigError  # noqa: E402
from bayeskit.engines.pfn.bar import BarDistribution, borders_from_samples  # noqa: E402


@pytest.fixture(scope="module")
def bar():
    borders = borders_from_samples(np.random.default_rng(0).normal(size=5000), 20)
    return BarDistribution(borders, full_support=True)


@pytest.fixture(scope="module")
def logits():
    return torch.as_tensor(np.random.default_rng(1).normal(scale=1.5, size=(3, 20)))


def test_borders_are_equal_mass_quantiles():
    ys = np.random.default_rng(2).exponential(size=10_000)
    borders = borders_from_samples(ys, 10).numpy()
    counts = np.histogram(ys, borders)[0]
    np.testing.assert_array_equal(counts.sum(), ys.size)
    assert counts.min() >= 999 and counts.max() <= 1001  # 1,000 per bucket up to ties at the borders


@pytest.mark.parametrize("full_support", [True, False])
def test_density_integrates_to_one_and_its_first_moment_is_the_mean(bar, logits, full_support):
    # midpoint rule on a grid holding every border (no midpoint sits on a jump: exact in the flat
    # buckets) reaching 12 tail scales out (mass beyond < 1e-30): error below 1e-8
    dist = BarDistribution(bar.borders, full_support=full_support)
    b = bar.borders.numpy()
    s = max(float(v) for v in bar.tail_scales())
    grid = np.unique(np.concatenate([np.linspace(b[1] - 12 * s, b[-2] + 12 * s, 200_001), b]))
    mid, width = (grid[1:] + grid[:-1]) / 2, np.diff(grid)
    density = torch.exp(dist.log_prob(logits[:, None, :], torch.as_tensor(mid))).numpy()  # (3, G)
    np.testing.assert_allclose((density * width).sum(-1), 1.0, atol=1e-8)
    mean = (density * width * mid).sum(-1)
    np.testing.assert_allclose(mean, dist.mean(logits).numpy(), atol=1e-6)
    variance = (density * width * (mid - mean[:, None]) ** 2).sum(-1)
    np.testing.assert_allclose(variance, dist.variance(logits).numpy(), rtol=1e-6)
    # the cdf is the integral of the density
    cum = np.cumsum(density * width, -1)
    np.testing.assert_allclose(dist.cdf(logits[:, None, :], torch.as_tensor(grid[1:])).numpy()[:, ::997],
                               cum[:, ::997], atol=1e-8)


def test_cdf_and_icdf_invert_each_other_tails_included(bar, logits):
    mass = torch.softmax(logits, -1)
    # levels inside the left tail (below P_0), the inner buckets, and the right tail (above 1 - P_{K-1})
    q = torch.cat([torch.linspace(1e-9, 1, 50, dtype=torch.float64)[:, None] * mass[:, 0],
                   torch.linspace(0.01, 0.99, 199, dtype=torch.float64)[:, None].expand(-1, 3),
                   1 - torch.linspace(1e-9, 1, 50, dtype=torch.float64)[:, None] * mass[:, -1]])
    y = bar.icdf(logits, q)
    np.testing.assert_allclose(bar.cdf(logits, y).numpy(), q.numpy(), atol=1e-10)
    b = bar.borders.numpy()
    assert y[:50].max() <= b[1] + 1e-12 and y[-50:].min() >= b[-2] - 1e-12  # the tail levels land in the tails
    assert float(y[0].max()) < b[0]  # a deep left-tail quantile lies beyond the outer border
    ys = torch.linspace(b[0] - 3, b[-1] + 3, 301, dtype=torch.float64)[:, None]
    np.testing.assert_allclose(bar.icdf(logits, bar.cdf(logits, ys)).numpy(), ys.expand(-1, 3).numpy(), atol=1e-8)


def test_samples_follow_the_cdf(bar, logits):
    # 200,000 draws: the empirical cdf at 25 points within 4 binomial SE of the cdf, tails included
    n = 200_000
    draws = bar.sample(logits, (n,), generator=torch.Generator().manual_seed(0)).numpy()  # (n, 3)
    b = bar.borders.numpy()
    points = np.concatenate([np.linspace(b[0] - 1.0, b[1], 8), b[5:16:2], np.linspace(b[-2], b[-1] + 1.0, 8)])
    cdf = bar.cdf(logits, torch.as_tensor(points)[:, None]).numpy()  # (P, 3)
    empirical = (draws[None, :, :] <= points[:, None, None]).mean(1)
    se = np.sqrt(cdf * (1 - cdf) / n) + 1 / n
    assert np.all(np.abs(empirical - cdf) <= 4 * se)
    assert draws.min() < b[0] and draws.max() > b[-1]  # full support: draws reach past the borders


def test_tails_hold_half_their_mass_inside_the_outer_buckets(bar, logits):
    mass = torch.softmax(logits, -1)
    b = bar.borders
    left_inside = mass[:, 0] - bar.cdf(logits, b[0])  # mass of the left tail between b_0 and b_1
    np.testing.assert_allclose(left_inside.numpy(), mass[:, 0].numpy() / 2, rtol=1e-12)
    right_inside = bar.cdf(logits, b[-1]) - bar.cdf(logits, b[-2])
    np.testing.assert_allclose(right_inside.numpy(), mass[:, -1].numpy() / 2, rtol=1e-12)


def test_bounded_form_has_no_mass_outside_the_borders(bar, logits):
    bounded = BarDistribution(bar.borders, full_support=False)
    b = bar.borders
    assert torch.all(torch.isinf(bounded.log_prob(logits, b[0] - 0.1)))
    np.testing.assert_allclose(bounded.cdf(logits, b[-1]).numpy(), 1.0)
    np.testing.assert_allclose(bounded.icdf(logits, torch.tensor(0.0, dtype=torch.float64)).numpy(), float(b[0]))
    # a flat bucket: NLL = -(log P_k - log w_k)
    k = 7
    y = (b[k] + b[k + 1]) / 2
    expected = torch.log_softmax(logits, -1)[:, k] - math.log(float(b[k + 1] - b[k]))
    np.testing.assert_allclose(bounded.log_prob(logits, y).numpy(), expected.numpy(), rtol=1e-12)


def test_bad_input_is_named():
    with pytest.raises(ConfigError, match="num_buckets"):
        borders_from_samples(np.arange(10.0), 1)
    with pytest.raises(ConfigError, match="repeated"):
        borders_from_samples(np.repeat([0.0, 1.0], 50), 10)
    with pytest.raises(ConfigError, match="borders"):
        BarDistribution(torch.tensor([0.0, 2.0, 1.0]))
    bar = BarDistribution(torch.linspace(0, 1, 5))
    with pytest.raises(ConfigError, match="logits"):
        bar.log_prob(torch.zeros(3), 0.5)
    with pytest.raises(ConfigError, match="q"):
        bar.icdf(torch.zeros(4), 1.5)
