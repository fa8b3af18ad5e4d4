"""A posterior as one self-contained HTML page, to hand to a colleague.

`report(posterior, path)` (also ``post.report(path)`` and ``bayeskit report fit.nc``) writes the
engine and its settings, the software versions, the checks with what each threshold means and which
are breached, the summary table, the plots ArviZ makes of draws (trace, rank, energy, posterior
predictive check, LOO-PIT) and the engine's own record of its run (`Posterior.traces`: ESS over
time for SMC, the objective for VI, the training loss for PFNs). Figures are PNGs inlined as data
URIs and the page has no script, so the file opens anywhere, offline, as it was written.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import os
import platform
import warnings
from dataclasses import dataclass

import numpy as np

from . import arviz_bridge
from .convergence import BFMI_THRESHOLD, ESS_PER_CHAIN, RHAT_THRESHOLD

#: PSIS-LOO is unreliable for an observation whose Pareto k exceeds this (Vehtari et al. 2024, for S ≥ 2,200 draws).
PARETO_K_THRESHOLD = 0.7
#: Plotted scalars at most (trace and rank plots), and labels kept along any one dimension.
PLOT_SCALARS, PLOT_PER_DIM = 12, 8
#: Rows of the summary table at most (the CSV of the rest is one `post.summary()` away).
SUMMARY_ROWS = 200
#: Packages whose versions the report lists (read from their metadata: nothing is imported).
PACKAGES = ("bayeskit", "jax", "jaxlib", "numpyro", "blackjax", "optax", "arviz", "numpy", "scipy", "xarray",
            "torch", "gpytorch")

#: Axis labels of the traces engines record (`Posterior.traces`); others are labelled by their name.
TRACE_LABELS = {
    "ess": ("time step t", "ESS of the weights", "Effective sample size of the particle weights at each time step "
                                                 "(first run); dips mark observations the particles barely explain."),
    "objective": ("step", "objective", "The objective program's estimate at each optimisation step; it should "
                                       "level off before the run ends."),
    "training_loss": ("step", "loss", "Training loss per step (negative log predictive density of held-out "
                                      "points of prior datasets); it should level off."),
    "learning_loss": ("step", "−log p̂(y) / T", "Parameter learning: the progress value per step of stochastic "
                                               "gradient ascent; it should level off."),
}


@dataclass(frozen=True)
class Check:
    """One row of the report's checks: what was measured, its value, the threshold and what it means."""

    name: str
    value: str
    threshold: str
    meaning: str
    breached: bool | None  # None: reported for information, no threshold applies


def report(posterior, path, *, title: str | None = None, var_names=None, seed: int = 0) -> str:
    """Write `posterior` as one self-contained HTML file at `path` (overwritten) and return the path.

    ``var_names`` picks the variables plotted and summarised (default: in model order, as many as fit
    in `PLOT_SCALARS` scalars for the plots); ``seed`` draws the replicates of posteriors that hold no
    draws of their own. The optional groups (pointwise log-likelihood, posterior predictive) are used
    where the posterior has them or can compute them within `LOG_LIKELIHOOD_MEMORY`.
    """
    from ..core.errors import ConfigError

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(folder):
        raise ConfigError(f"`path` must be a file path in an existing folder, got {path!r}")
    if var_names is not None:
        var_names = [var_names] if isinstance(var_names, str) else list(var_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ArviZ's notices about shapes and k; the page reports them
        idata = arviz_bridge.to_inference_data(posterior)
    known = list(idata.posterior.data_vars)
    if var_names is not None:
        missing = [v for v in var_names if v not in known]
        if missing:
            from ..core.errors import DataError

            raise DataError(f"`var_names` names {', '.join(map(repr, missing))}, not in the posterior; its variables "
                            f"are {', '.join(map(repr, known))}")
    settings = posterior.engine_settings()
    engine = settings.get("engine", "—") if settings else "—"
    title = title or f"{type(posterior).__name__} from {engine}"
    notes: list[str] = []

    sections = [
        _section("overview", "Overview", _overview(posterior, idata, settings)),
        _section("checks", "Checks", _checks_html(_checks(posterior, idata))),
        _section("summary", "Summary", _summary_html(posterior, idata, var_names, notes)),
        _section("plots", "Plots", _plots_html(posterior, idata, var_names, notes)),
    ]
    traces = posterior.traces()
    if traces:
        sections.append(_section("run", "The run, step by step", _traces_html(traces)))
    if notes:
        sections.append(_section("notes", "Notes", "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes)
                                 + "</ul>"))
    page = _PAGE.format(title=html.escape(title), css=_CSS, created=_now(),
                        nav=" · ".join(f'<a href="#{s[0]}">{html.escape(s[1])}</a>' for s in sections),
                        body="\n".join(s[2] for s in sections))
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp, path)  # a failed write never leaves half a page at `path`
    return path


# -- sections -------------------------------------------------------------------------------------

def _section(anchor: str, heading: str, body: str) -> tuple[str, str, str]:
    return anchor, heading, f'<section id="{anchor}"><h2>{html.escape(heading)}</h2>\n{body}\n</section>'


def _overview(posterior, idata, settings: dict) -> str:
    shape = _draws_shape(idata)
    what = [("posterior", type(posterior).__name__),
            ("draws", f"{shape[0]} chain(s) × {shape[1]} draws" if shape else "—"),
            ("draws are", "Markov chains (R-hat applies)" if posterior.markov else "independent draws"),
            ("variables", ", ".join(idata.posterior.data_vars)),
            ("observed", ", ".join(getattr(posterior, "observed_sites", ())) or "—"),
            ("groups", ", ".join(idata.groups()))]
    fitted_with = posterior.attrs().get("inference_library_version")
    if fitted_with:
        what.append(("fitted with", f"bayeskit {fitted_with}"))
    engine = {k: v for k, v in settings.items() if k not in ("stored_as_repr", "stored_as_reference")}
    as_repr = settings.get("stored_as_repr", [])
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td><code>{html.escape(_short(v))}</code>"
                   f"{' <small>(stored as its repr)</small>' if k in as_repr else ''}</td></tr>"
                   for k, v in engine.items())
    return (_table(what, "about") + "<h3>Engine settings</h3>" +
            (f'<table class="kv">{rows}</table>' if rows else "<p>No engine recorded (a posterior built by hand).</p>")
            + "<h3>Versions</h3>" + _table(_versions(), "versions"))


def _checks(posterior, idata) -> list[Check]:
    checks: list[Check] = []
    stats = getattr(posterior, "sample_stats", None) or {}
    shape = _draws_shape(idata)
    if posterior.markov and shape and hasattr(posterior, "draws"):
        from .convergence import check

        conv = check(posterior)
        chains = conv.chains
        checks.append(Check("max R-hat", f"{conv.max_rhat:.3f} ({conv.worst_rhat or '—'})", f"≤ {RHAT_THRESHOLD}",
                            "Rank-normalised split R-hat compares the chains with each other and their halves; above "
                            "the threshold the chains have not mixed (Vehtari et al. 2021).",
                            conv.max_rhat > RHAT_THRESHOLD))
        need = ESS_PER_CHAIN * chains
        checks.append(Check("min bulk ESS", f"{conv.min_ess_bulk:.0f}", f"≥ {need} ({ESS_PER_CHAIN} per chain)",
                            "Effective sample size of the posterior's bulk; below it R-hat and Monte Carlo errors are "
                            "themselves unreliable.", bool(conv.min_ess_bulk < need)))
        tail = arviz_bridge.ess(posterior, method="tail", idata=idata)
        min_tail = min((float(np.nanmin(v)) for v in tail.values() if np.isfinite(v).any()), default=float("nan"))
        checks.append(Check("min tail ESS", f"{min_tail:.0f}", f"≥ {need}",
                            "ESS of the 5% and 95% quantiles: how well the chains know the tails (intervals).",
                            bool(min_tail < need)))
        if "diverging" in stats:
            pct = 100 * conv.divergences / conv.draws
            checks.append(Check("divergent transitions", f"{conv.divergences} ({pct:.2f}% of {conv.draws})", "0",
                                "A divergence is a trajectory whose energy blew up: the sampler could not follow the "
                                "posterior's curvature there, so the draws may miss that region. Raise target_accept "
                                "or reparametrise (non-centred).", conv.divergences > 0))
        if conv.bfmi:
            low = min(conv.bfmi)
            checks.append(Check("min E-BFMI", f"{low:.2f} (per chain: {', '.join(f'{b:.2f}' for b in conv.bfmi)})",
                                f"≥ {BFMI_THRESHOLD}", "Energy Bayesian fraction of missing information: below it the "
                                "momentum resampling barely moves the energy, so heavy tails are explored slowly "
                                "(Betancourt 2016).", low < BFMI_THRESHOLD))
        depth = (getattr(posterior, "engine", None) and getattr(posterior.engine, "max_tree_depth", None))
        if "tree_depth" in stats and depth:
            hits = int(np.sum(np.asarray(stats["tree_depth"]) >= depth))
            checks.append(Check("at max tree depth", f"{hits} of {conv.draws}", "0",
                                f"Trajectories cut at {depth} doublings: not a bias, but a sign of a hard geometry "
                                "and wasted gradient evaluations.", hits > 0))
    elif shape:
        ess = arviz_bridge.ess(posterior, method="bulk", idata=idata)
        low = min((float(np.nanmin(v)) for v in ess.values() if np.isfinite(v).any()), default=float("nan"))
        checks.append(Check("min bulk ESS", f"{low:.0f} of {shape[0] * shape[1]} draws", "—",
                            "Independent draws: the ESS is close to the number of draws; it sets the Monte Carlo "
                            "error of the summary.", None))
    for problem in posterior.problems():
        checks.append(Check("engine's own check", problem, "—", "What the engine knows makes its draws "
                            "unrepresentative (warned about after the fit).", True))
    ess_trace = posterior.traces().get("ess")
    particles = getattr(getattr(posterior, "engine", None), "n_particles", None)
    if ess_trace is not None and len(ess_trace):
        t = int(np.argmin(ess_trace))
        of = f" of {particles} particles" if particles else ""
        checks.append(Check("min ESS of the particle weights", f"{ess_trace[t]:.1f}{of} at t = {t}", "—",
                            "Weight degeneracy: a low ESS means few particles carry the estimate at that step "
                            "(more particles or a better proposal help).", None))
    if "log_likelihood" in idata.groups():
        checks.extend(_loo_checks(idata))
    return checks


def _loo_checks(idata) -> list[Check]:
    out = []
    for name in idata.log_likelihood.data_vars:
        try:
            loo = arviz_bridge.loo(idata, var_name=name)
        except Exception as exc:  # e.g. one draw: LOO cannot be estimated; say so instead of failing the page
            out.append(Check(f"PSIS-LOO ({name})", f"not computed: {type(exc).__name__}: {exc}", "—", "", None))
            continue
        k = np.asarray(loo.pareto_k).ravel()
        bad = int(np.sum(k > PARETO_K_THRESHOLD))
        out.append(Check(f"elpd_loo ({name})", f"{loo.elpd_loo:.2f} ± {loo.se:.2f} (p_loo {loo.p_loo:.2f})", "—",
                         "Expected log pointwise predictive density by Pareto-smoothed importance-sampling "
                         "leave-one-out; compare models with az.compare.", None))
        out.append(Check(f"Pareto k > {PARETO_K_THRESHOLD} ({name})", f"{bad} of {k.size} (max k {np.max(k):.2f})",
                         "0", "Observations whose leave-one-out posterior differs too much from the full one for "
                         "importance sampling; their elpd terms are unreliable (refit without them, or use k-fold "
                         "cross-validation).", bad > 0))
    return out


def _checks_html(checks: list[Check]) -> str:
    if not checks:
        return "<p>No checks apply to this posterior.</p>"
    breached = [c for c in checks if c.breached]
    head = (f'<p class="bad">{len(breached)} of {sum(c.breached is not None for c in checks)} checks breached: '
            f"{html.escape(', '.join(c.name for c in breached))}.</p>" if breached else
            '<p class="ok">No check breached.</p>')
    rows = "".join(
        f'<tr class="{"bad" if c.breached else "ok" if c.breached is False else "info"}"><th>{html.escape(c.name)}</th>'
        f"<td>{html.escape(c.value)}</td><td>{html.escape(c.threshold)}</td>"
        f"<td>{'breached' if c.breached else 'ok' if c.breached is False else 'info'}</td>"
        f"<td>{html.escape(c.meaning)}</td></tr>" for c in checks)
    return (head + '<table class="checks"><tr><th>check</th><th>value</th><th>threshold</th><th>status</th>'
            f"<th>what it means</th></tr>{rows}</table>")


def _summary_html(posterior, idata, var_names, notes) -> str:
    names = var_names or _within(idata, SUMMARY_ROWS)
    if var_names is None and len(names) < len(idata.posterior.data_vars):
        left = [v for v in idata.posterior.data_vars if v not in names]
        notes.append(f"The summary leaves out {', '.join(left)} (over {SUMMARY_ROWS} scalars); "
                     f"pass var_names= to choose.")
    table = arviz_bridge.summary(posterior, idata=idata, var_names=names)
    if len(table) > SUMMARY_ROWS:
        notes.append(f"The summary shows the first {SUMMARY_ROWS} of {len(table)} rows.")
        table = table.iloc[:SUMMARY_ROWS]
    chains = _draws_shape(idata)[0] if _draws_shape(idata) else 1

    def style(column, value):
        if column == "r_hat" and value > RHAT_THRESHOLD:
            return ' class="bad"'
        if column.startswith("ess") and posterior.markov and value < ESS_PER_CHAIN * chains:
            return ' class="bad"'
        return ""

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = "".join(f"<tr><th>{html.escape(str(i))}</th>" + "".join(
        f"<td{style(c, v)}>{_number(v)}</td>" for c, v in zip(table.columns, row, strict=True)) + "</tr>"
        for i, row in zip(table.index, table.to_numpy(), strict=True))
    return f'<table class="summary"><tr><th></th>{head}</tr>{rows}</table>'


def _plots_html(posterior, idata, var_names, notes) -> str:
    selected, coords = _plot_selection(idata, var_names, notes)
    figures = []
    shape = _draws_shape(idata)
    plots = [("Trace", "plot_trace", dict(var_names=selected, coords=coords),
              "Left: the marginal density of each chain (one curve per component of a vector); right: the draws "
              "in order. Chains should overlap and look like noise around one level.")]
    if posterior.markov and shape and shape[0] > 1:
        plots.append(("Rank", "plot_rank", dict(var_names=selected, coords=coords),
                      "Histograms of each chain's ranks among all draws: flat when the chains sample the same "
                      "distribution."))
    if "sample_stats" in idata.groups() and "energy" in idata.sample_stats:
        plots.append(("Energy", "plot_energy", {},
                      "The marginal energy and its transitions: when the transition distribution is much narrower, "
                      "the sampler explores the tails slowly (low E-BFMI)."))
    groups = idata.groups()
    observed = [v for v in getattr(posterior, "observed_sites", ())
                if "posterior_predictive" in groups and v in idata.posterior_predictive]
    if observed and "observed_data" in groups:
        plots.append(("Posterior predictive check", "plot_ppc", dict(var_names=observed, num_pp_samples=100,
                                                                     random_seed=0),
                      "The observations' density (black) among those of replicated data sets drawn from the "
                      "posterior predictive (blue): a misfit shows as observed data outside the replicates."))
        if "log_likelihood" in groups:
            for name in observed:
                if name in idata.log_likelihood:
                    plots.append((f"LOO-PIT ({name})", "plot_loo_pit", dict(y=name, ecdf=True),
                                  "Leave-one-out probability integral transforms as an ECDF difference with its "
                                  "band: inside the band for a calibrated predictive; an S shape means too wide or "
                                  "too narrow, a shift a bias."))
    for heading, fn, kwargs, caption in plots:
        try:
            png = arviz_bridge.plot_png(idata, fn, **kwargs)
        except Exception as exc:  # one plot that cannot be drawn must not cost the rest of the page
            notes.append(f"The {heading.lower()} plot could not be drawn: {type(exc).__name__}: {exc}")
            continue
        figures.append(_figure(heading, png, caption))
    return "\n".join(figures) or "<p>No plots apply to this posterior.</p>"


def _traces_html(traces: dict) -> str:
    from matplotlib.figure import Figure

    out = []
    for name, values in traces.items():
        values = np.asarray(values, dtype=float).ravel()
        xlabel, ylabel, caption = TRACE_LABELS.get(name, ("step", name.replace("_", " "), ""))
        if name.startswith("learning_") and name not in TRACE_LABELS:
            caption = f"Parameter learning: {name[len('learning_'):]} at each step."
        fig = Figure(figsize=(7, 2.6), layout="constrained")
        ax = fig.subplots()
        ax.plot(np.arange(values.size), values, lw=1, color="C0")
        if values.size >= 50 and name != "ess":  # a running mean shows the level under the noise
            width = max(values.size // 50, 5)
            smooth = np.convolve(values, np.ones(width) / width, mode="valid")
            ax.plot(np.arange(width - 1, values.size), smooth, lw=1.6, color="C3", label=f"mean of {width}")
            ax.legend(loc="best", fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(name, fontsize=10)
        out.append(_figure(name, _png(fig), caption))
    return "\n".join(out)


# -- helpers --------------------------------------------------------------------------------------

def _draws_shape(idata) -> tuple[int, int] | None:
    sizes = idata.posterior.sizes
    return (int(sizes["chain"]), int(sizes["draw"])) if "chain" in sizes and "draw" in sizes else None


def _scalars(da) -> int:
    return int(np.prod([n for d, n in da.sizes.items() if d not in ("chain", "draw")], dtype=int))


def _within(idata, budget: int) -> list[str]:
    """Variables in model order while their scalars fit in `budget` (at least the first)."""
    names, used = [], 0
    for name, da in idata.posterior.data_vars.items():
        size = _scalars(da)
        if names and used + size > budget:
            break
        names.append(name)
        used += size
    return names


def _plot_selection(idata, var_names, notes) -> tuple[list[str], dict]:
    """Variables to plot and ``coords`` that keep the first `PLOT_PER_DIM` labels of any longer dimension,
    in model order while they fit in `PLOT_SCALARS` scalars."""
    post = idata.posterior
    coords = {d: post[d].values[:PLOT_PER_DIM] for d, n in post.sizes.items()
              if d not in ("chain", "draw") and n > PLOT_PER_DIM}
    cut = {d: post.sizes[d] for d in coords}

    def size(name):
        return int(np.prod([min(n, PLOT_PER_DIM) for d, n in post[name].sizes.items() if d not in ("chain", "draw")],
                           dtype=int))

    if var_names is not None:
        chosen = list(var_names)
    else:
        chosen, used = [], 0
        for name in post.data_vars:
            if chosen and used + size(name) > PLOT_SCALARS:
                continue
            chosen.append(name)
            used += size(name)
        left = [v for v in post.data_vars if v not in chosen]
        if left:
            notes.append(f"Trace and rank plots leave out {', '.join(left)} (over {PLOT_SCALARS} scalars); "
                         f"pass var_names= to choose.")
    used_dims = {d for v in chosen for d in post[v].dims}
    coords = {d: c for d, c in coords.items() if d in used_dims}
    if coords:
        notes.append("Plots show the first " + ", ".join(f"{PLOT_PER_DIM} of {cut[d]} along {d}" for d in coords) + ".")
    return chosen, coords


def _figure(heading: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><figcaption><b>{html.escape(heading)}.</b> {html.escape(caption)}</figcaption>'
            f'<img alt="{html.escape(heading)}" src="data:image/png;base64,{data}"></figure>')


def _png(fig, dpi: int = 90) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _table(rows, cls: str) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f'<table class="kv {cls}">{body}</table>'


def _versions() -> list[tuple[str, str]]:
    from importlib import metadata

    out = [("python", platform.python_version()), ("platform", platform.platform(terse=True))]
    for name in PACKAGES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return out


def _short(value, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _number(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "nan" if not np.isfinite(value) else f"{value:.4g}"
    return html.escape(str(value))


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d232b;max-width:1100px;margin:0 auto;
padding:0 1.2em 3em}
header{border-bottom:2px solid #3f6fb5;margin-bottom:1em}h1{font-size:1.6em;margin:.6em 0 .1em}
nav{margin:.4em 0 .8em}nav a{color:#3f6fb5;text-decoration:none}h2{border-bottom:1px solid #d5dbe3;margin-top:1.6em}
table{border-collapse:collapse;margin:.4em 0 1em;font-size:13px}th,td{border:1px solid #d5dbe3;padding:.25em .55em;
text-align:left;vertical-align:top}table.summary td{text-align:right;font-variant-numeric:tabular-nums}
table.kv th{background:#f3f5f8;font-weight:600}tr.bad td,td.bad{background:#fde8e6}tr.ok td:nth-child(4){color:#1d7a3a}
tr.bad td:nth-child(4){color:#b3261e;font-weight:600}p.bad{color:#b3261e;font-weight:600}p.ok{color:#1d7a3a}
figure{margin:1em 0 1.6em}figure img{max-width:100%;border:1px solid #e3e7ec}figcaption{margin-bottom:.4em}
code{font-size:12px}small{color:#5b6572}footer{margin-top:2em;color:#5b6572;font-size:12px}
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<header><h1>{title}</h1><p><small>bayeskit report, written {created}</small></p><nav>{nav}</nav></header>
{body}
<footer>Written by <code>bayeskit report</code>. Figures are PNG images inside this file; it needs no network.</footer>
</body>
</html>
"""
