"""The ``bayeskit`` command: ``bayeskit demo``, ``bayeskit report fit.nc -o report.html`` and ``bayeskit --version``."""

from __future__ import annotations

import argparse
import os
import sys

from ._version import __version__

DEMO_TARGET_ACCEPT = 0.95


def demo(out: str, seed: int, chains: int, draws: int, progress: bool) -> int:
    """Eight schools end to end: fit, summary, trace/rank PNGs, HTML report, netCDF, round trip."""
    import bayeskit as bk
    from bayeskit.datasets import eight_schools
    from bayeskit.diagnostics import save_rank_plot, save_trace_plot

    os.makedirs(out, exist_ok=True)
    # Even non-centred, eight schools keeps a little of its funnel: at Stan's default target acceptance
    # (0.8) a few of 4,000 transitions diverge. A higher target takes smaller steps there, as Stan's
    # and NumPyro's eight-schools examples do, so the demo's draws are clean.
    print(f"bayeskit {__version__}: eight schools (non-centred), NUTS, {chains} chains x {draws} draws, "
          f"target acceptance {DEMO_TARGET_ACCEPT}")
    post = bk.fit(
        eight_schools.model,
        data=eight_schools.DATA,
        engine=bk.NUTS(chains=chains, warmup=draws, draws=draws, target_accept=DEMO_TARGET_ACCEPT, progress=progress),
        seed=seed,
        coords=eight_schools.COORDS,
        dims=eight_schools.DIMS,
    )
    import pandas as pd

    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print(post.summary())
    paths = {
        "trace plot": save_trace_plot(post, os.path.join(out, "trace.png"), var_names=["mu", "tau", "theta"]),
        "rank plot": save_rank_plot(post, os.path.join(out, "rank.png"), var_names=["mu", "tau"]),
    }
    paths["report (HTML)"] = post.report(os.path.join(out, "report.html"), title="Eight schools (non-centred), NUTS")
    nc = os.path.join(out, "posterior.nc")
    post.save(nc)
    paths["posterior (netCDF)"] = nc
    back = bk.load(nc)
    assert all((back.draws[k] == v).all() for k, v in post.draws.items()), "netCDF round trip changed the draws"
    ppc = post.predict()
    print(f"posterior predictive: y has {ppc['y'].shape[0]} draws of {ppc['y'].shape[1]} schools")
    for what, path in paths.items():
        print(f"wrote {what}: {os.path.abspath(path)}")
    return 0


def report(path: str, out: str | None, title: str | None, var_names: list[str] | None) -> int:
    """A saved posterior (`Posterior.save`'s netCDF) as one self-contained HTML page."""
    import bayeskit as bk
    from bayeskit.core.errors import BayeskitError

    out = out or os.path.splitext(path)[0] + ".html"
    try:
        written = bk.load(path).report(out, title=title, var_names=var_names)
    except BayeskitError as err:  # a bad path or file: its message, not a traceback
        print(f"bayeskit report: {err}", file=sys.stderr)
        return 2
    print(f"wrote {os.path.abspath(written)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bayeskit", description="Bayesian inference: model -> fit -> Posterior.")
    parser.add_argument("--version", action="version", version=f"bayeskit {__version__}")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("demo", help="fit eight schools with NUTS and write a summary, plots and a netCDF file")
    p.add_argument("--out", default="bayeskit-demo", help="output folder (default: ./bayeskit-demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=1000, help="warmup and kept draws per chain")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    r = sub.add_parser("report", help="write a saved posterior (netCDF) as one self-contained HTML page")
    r.add_argument("path", help="a posterior file written by Posterior.save / bayeskit demo")
    r.add_argument("-o", "--out", default=None, help="the HTML file (default: the input's name with .html)")
    r.add_argument("--title", default=None, help="the page's title (default: posterior class and engine)")
    r.add_argument("--var-names", nargs="+", default=None, help="variables to summarise and plot (default: all "
                   "that fit)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args.out, args.seed, args.chains, args.draws, not args.no_progress)
    if args.command == "report":
        return report(args.path, args.out, args.title, args.var_names)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
