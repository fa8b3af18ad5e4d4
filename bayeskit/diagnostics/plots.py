"""Plots: trace and rank plots written as PNG files; ECDF-difference plots of calibration checks."""

from __future__ import annotations

import os

from . import arviz_bridge


def save_trace_plot(posterior, path, var_names=None) -> str:
    """Trace plot (density and trace per variable) as a PNG at `path`."""
    arviz_bridge.plot_trace(posterior, os.fspath(path), var_names=var_names)
    return os.fspath(path)


def save_rank_plot(posterior, path, var_names=None) -> str:
    """Rank plot (rank histograms per chain; flat when chains agree) as a PNG at `path`."""
    arviz_bridge.plot_rank(posterior, os.fspath(path), var_names=var_names)
    return os.fspath(path)


def ecdf_difference_figure(tests, *, title: str = "", path=None):
    """One panel per ``(label, UniformityTest)``: the ECDF minus the uniform CDF, F̂(z) − z, inside
    its simultaneous band (grey); a curve that leaves the band is drawn red. Built on a bare
    `matplotlib.figure.Figure` (no pyplot state, no backend switch); saved to `path` if given."""
    import math

    import numpy as np
    from matplotlib.figure import Figure

    cols = min(4, len(tests))
    rows = math.ceil(len(tests) / cols)
    fig = Figure(figsize=(3.2 * cols, 2.4 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, squeeze=False)).ravel()
    for ax, (label, test) in zip(axes, tests, strict=False):
        z = np.concatenate([[0.0], test.z, [1.0]])
        pad = np.zeros(1)
        lower = np.concatenate([pad, test.lower - test.z, pad])
        upper = np.concatenate([pad, test.upper - test.z, pad])
        diff = np.concatenate([pad, test.ecdf - test.z, pad])
        ax.fill_between(z, lower, upper, step="mid", color="0.85", label=f"{1 - test.alpha:.0%} band")
        ax.axhline(0, color="0.5", lw=0.6)
        ax.step(z, diff, where="mid", color="C3" if test.outside else "C0", lw=1.4)
        ax.set_title(f"{label}   p = {test.p_value:.2g}", fontsize=9)
    for ax in axes[len(tests):]:
        ax.set_visible(False)
    for ax in axes[(rows - 1) * cols:]:
        ax.set_xlabel("fractional rank / PIT")
    axes[0].set_ylabel("ECDF − uniform")
    if title:
        fig.suptitle(title, fontsize=10)
    if path is not None:
        fig.savefig(os.fspath(path), dpi=110)
    return fig
