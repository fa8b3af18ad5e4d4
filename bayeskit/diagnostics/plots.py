"""Trace and rank plots written as PNG files."""

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
