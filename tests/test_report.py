"""`bayeskit report` and `Posterior.report`: what the page says must be what the diagnostics say.

The contract suite (tests/contract) writes a report of every engine's posterior; the browser test
(test_report_browser.py) renders one in Chromium. Here: the checks' numbers and verdicts against
`diagnostics.check` and ArviZ's LOO on posteriors built to breach them, the command line, and bad input.
"""

from __future__ import annotations

import html
import re

import numpy as np
import pytest

import bayeskit as bk
from bayeskit.cli import main
from bayeskit.diagnostics import check


def _row(page: str, name: str) -> str:
    """The checks table's row for `name` (its cells' text)."""
    match = re.search(rf'<tr class="(\w+)"><th>{re.escape(html.escape(name))}</th>(.*?)</tr>', page)
    assert match, f"no check row {name!r}"
    return match.group(1) + " " + html.unescape(re.sub(r"<[^>]+>", " | ", match.group(2)))


def _stuck_chains() -> bk.DrawsPosterior:
    """Four chains of N(0, 1) draws, one shifted by 3: R-hat far above 1.01, and no divergences."""
    rng = np.random.default_rng(0)
    mu = rng.standard_normal((4, 300))
    mu[3] += 3.0
    stats = {"diverging": np.zeros((4, 300), bool), "energy": rng.standard_normal((4, 300))}
    stats["diverging"][0, :5] = True
    return bk.DrawsPosterior({"mu": mu, "sigma": np.exp(rng.standard_normal((4, 300)))}, sample_stats=stats)


def test_checks_report_the_diagnostics_numbers(tmp_path):
    post = _stuck_chains()
    page = open(post.report(tmp_path / "r.html")).read()
    conv = check(post)
    assert conv.max_rhat > 1.1
    row = _row(page, "max R-hat")
    assert row.startswith("bad") and f"{conv.max_rhat:.3f} (mu)" in row and "breached" in row
    row = _row(page, "divergent transitions")
    assert row.startswith("bad") and "5 (0.42% of 1200)" in row
    assert _row(page, "min E-BFMI").startswith("ok")  # white-noise energy: E-BFMI near 2
    assert "checks breached: max R-hat" in page
    # the summary's R-hat cell (the last: ArviZ rounds it to 2 decimals) is marked for mu, not for sigma
    assert re.search(r'<tr><th>mu</th>(<td[^>]*>[^<]*</td>)*<td class="bad">' + f"{conv.max_rhat:.2f}</td></tr>", page)
    assert re.search(r"<tr><th>sigma</th>(<td>[^<]*</td>)*<td>1(\.0\d?)?</td></tr>", page)


def test_pareto_k_and_elpd_match_arviz(tmp_path):
    """On a NUTS fit of eight schools the elpd_loo and the count of k > 0.7 are ArviZ's own numbers."""
    import arviz as az

    from bayeskit.datasets import eight_schools

    post = bk.fit(eight_schools.model, data=eight_schools.DATA,
                  engine=bk.NUTS(chains=2, warmup=300, draws=300, progress=False, target_accept=0.95), seed=1)
    page = open(post.report(tmp_path / "r.html", var_names=["mu", "tau"])).read()
    loo = az.loo(post.to_arviz(), pointwise=True)
    assert f"{loo.elpd_loo:.2f} ± {loo.se:.2f} (p_loo {loo.p_loo:.2f})" in _row(page, "elpd_loo (y)")
    bad = int(np.sum(np.asarray(loo.pareto_k) > 0.7))
    assert f"{bad} of 8 (max k {float(np.max(loo.pareto_k)):.2f})" in _row(page, "Pareto k > 0.7 (y)")
    for title in ("Trace", "Rank", "Energy", "Posterior predictive check", "LOO-PIT (y)"):
        assert f'<img alt="{title}"' in page, title
    assert "<tr><th>theta_trans" not in page  # var_names chose what is summarised


def test_vi_and_smc_pages_show_their_runs(tmp_path):
    from tests.conftest import normal_mean_model
    from tests.contract.cases import _linear_gaussian, _normal_data, _state_space_data

    vi = bk.fit(normal_mean_model, data=_normal_data(), engine=bk.VI(steps=300, draws=200, progress=False), seed=0)
    page = open(vi.report(tmp_path / "vi.html")).read()
    assert '<section id="run">' in page and '<img alt="objective"' in page
    assert "R-hat" not in page  # independent draws
    smc = bk.fit(_linear_gaussian(), data=_state_space_data(),
                 engine=bk.ParticleFilter(n_particles=64, progress=False), seed=0)
    page = open(smc.report(tmp_path / "smc.html")).read()
    t = int(np.argmin(smc.ess))
    assert f"{smc.ess[t]:.1f} of 64 particles at t = {t}" in _row(page, "min ESS of the particle weights")
    assert '<img alt="ess"' in page
    # x has 25 x 1 values: the plots keep the first 8 time steps and say so
    assert "Plots show the first 8 of 25 along time." in page


def test_command_line(tmp_path, capsys):
    post = _stuck_chains()
    post.save(tmp_path / "fit.nc")
    assert main(["report", str(tmp_path / "fit.nc"), "--title", "Stuck chains"]) == 0
    page = open(tmp_path / "fit.html").read()
    assert "<title>Stuck chains</title>" in page and "max R-hat" in page
    assert main(["report", str(tmp_path / "fit.nc"), "-o", str(tmp_path / "other.html"), "--var-names", "sigma"]) == 0
    assert "<tr><th>sigma</th>" in open(tmp_path / "other.html").read()
    assert "wrote" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing.nc")]) == 2
    assert "is not a file" in capsys.readouterr().err


def test_bad_input(tmp_path):
    post = _stuck_chains()
    with pytest.raises(bk.ConfigError, match="`path` must be a file path in an existing folder"):
        post.report(tmp_path / "no" / "such" / "folder.html")
    with pytest.raises(bk.ConfigError, match="`path` must be a file path"):
        post.report(tmp_path)
    with pytest.raises(bk.DataError, match="`var_names` names 'nope', not in the posterior; its variables are 'mu', "
                                           "'sigma'"):
        post.report(tmp_path / "r.html", var_names=["nope"])
    assert not (tmp_path / "r.html").exists()
