"""Save and load posteriors as netCDF in ArviZ's group layout (``az.from_netcdf`` reads them too)."""

from __future__ import annotations

import json
import os

from .engine import Engine
from .errors import ConfigError, DataError
from .posterior import DrawsPosterior, Posterior

_ENGINE = "h5netcdf"


def save(posterior: Posterior, path) -> None:
    """Write every group of `posterior` to one netCDF file at `path` (overwritten)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ConfigError(f"`path` must be a file path, got the directory {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(f"cannot save to {path!r}: the folder {folder!r} does not exist (create it first)")
    datasets = posterior.to_xarray()
    tmp = path + ".tmp"
    try:
        for i, (group, ds) in enumerate(datasets.items()):
            ds.to_netcdf(tmp, mode="w" if i == 0 else "a", group=group, engine=_ENGINE)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, path)  # a failed write never leaves a half-written file at `path`


def load(path, model=None) -> DrawsPosterior:
    """Read a posterior written by `Posterior.save`; pass `model` to use `predict` on it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"`path` {path!r} is not a file")
    try:
        return _read(path, model)
    except (ConfigError, DataError):
        raise
    except Exception as exc:  # h5py's and xarray's errors name neither the file nor what it should be
        raise DataError(f"{path!r} is not a readable bayeskit posterior file (netCDF4 in ArviZ's layout, as "
                        f"`Posterior.save` writes): {type(exc).__name__}: {exc}") from exc


def _read(path: str, model) -> DrawsPosterior:
    import xarray as xr

    from .model import as_model

    groups = {}
    with xr.open_dataset(path, group="posterior", engine=_ENGINE) as ds:
        attrs = dict(ds.attrs)
        groups["posterior"] = {k: v.values for k, v in ds.load().data_vars.items()}
    for group in ("sample_stats", "observed_data", "constant_data"):
        try:
            with xr.open_dataset(path, group=group, engine=_ENGINE) as ds:
                groups[group] = {k: v.values for k, v in ds.load().data_vars.items()}
        except OSError:
            groups[group] = {}
    return DrawsPosterior(
        groups["posterior"],
        sample_stats=groups["sample_stats"],
        observed_data=groups["observed_data"],
        constant_data=groups["constant_data"],
        static_data=json.loads(attrs.get("bayeskit_static_data", "{}")),
        observed_keys=tuple(json.loads(attrs.get("bayeskit_observed_keys", "[]"))),
        latent_sites=tuple(json.loads(attrs["bayeskit_latent_sites"])) if "bayeskit_latent_sites" in attrs else None,
        model=as_model(model) if model is not None else None,
        engine=Engine.from_settings(attrs.get("bayeskit_engine", "{}")),
        markov=bool(int(attrs.get("bayeskit_markov", 1))),
    )
