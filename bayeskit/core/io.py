"""Save and load posteriors as netCDF in ArviZ's group layout (``az.from_netcdf`` reads them too)."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import sys

from .engine import Engine
from .errors import ConfigError, DataError
from .posterior import TRACES_GROUP, DrawsPosterior, Posterior

_ENGINE = "h5netcdf"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"  # the first bytes of every netCDF4 file
CHECKSUM_TAG = b"\nbayeskit-sha256:"  # `save` ends a file with this, the hex SHA-256 of what precedes it, "\n"
CHECKSUM_BYTES = len(CHECKSUM_TAG) + 64 + 1


def save(posterior: Posterior, path, log_likelihood="auto", posterior_predictive="auto") -> None:
    """Write every group of `posterior` to one netCDF file at `path` (overwritten), its pointwise
    log-likelihood and posterior predictive draws too unless either is False."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ConfigError(f"`path` must be a file path, got the directory {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(f"cannot save to {path!r}: the folder {folder!r} does not exist (create it first)")
    datasets = posterior.to_xarray(log_likelihood=log_likelihood, posterior_predictive=posterior_predictive)
    datasets["posterior"].attrs["bayeskit_checksum"] = "sha256 trailer"  # so `load` misses one cut off
    tmp = path + ".tmp"
    try:
        for i, (group, ds) in enumerate(datasets.items()):
            ds.to_netcdf(tmp, mode="w" if i == 0 else "a", group=group, engine=_ENGINE)
        _append_checksum(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, path)  # a failed write never leaves a half-written file at `path`


def _append_checksum(path: str) -> None:
    """End the file with the SHA-256 of its bytes (HDF5 ignores bytes past its end of file, so netCDF
    readers such as ``az.from_netcdf`` read it as before)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    with open(path, "ab") as f:
        f.write(CHECKSUM_TAG + h.hexdigest().encode() + b"\n")


def _verify_checksum(path: str) -> bool:
    """A `DataError` when the bytes before the trailer `save` wrote are not those it wrote (zeroed or
    overwritten bytes that HDF5 may read back as wrong numbers, or loop on); files without the
    trailer (truncated ones, those of older versions or other writers) are left to the reader. True
    when the file had a trailer."""
    size = os.path.getsize(path)
    if size < CHECKSUM_BYTES:
        return False
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(size - CHECKSUM_BYTES)
        trailer = f.read()
        if not trailer.startswith(CHECKSUM_TAG):
            return False
        f.seek(0)
        left = size - CHECKSUM_BYTES
        while left:
            block = f.read(min(left, 1 << 20))
            h.update(block)
            left -= len(block)
    if h.hexdigest().encode() != trailer[len(CHECKSUM_TAG):-1]:
        raise DataError(f"{path!r} is not a readable bayeskit posterior file: it was damaged after it was saved "
                        f"(its bytes no longer match the checksum `Posterior.save` wrote: overwritten or zeroed "
                        f"bytes), so its numbers cannot be trusted; save the posterior again")
    return True


@contextlib.contextmanager
def _quiet_h5netcdf():
    """Silence what h5netcdf prints when a file it failed to open is garbage-collected ("Exception ignored in
    File.close ... no attribute '_writable'"): a raw traceback about the damaged file `load` reports itself."""
    previous = sys.unraisablehook

    def hook(info):
        if not getattr(info.object, "__module__", "").startswith("h5netcdf") and \
                "h5netcdf" not in repr(getattr(info, "object", "")):
            previous(info)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        gc.collect()
        sys.unraisablehook = previous


def load(path, model=None) -> DrawsPosterior:
    """Read a posterior written by `Posterior.save`; pass `model` to use `predict` on it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"`path` {path!r} is not a file")
    checked = _verify_checksum(path)  # before HDF5 parses anything: some damage makes it loop for ever
    with _quiet_h5netcdf():
        try:
            return _read(path, model, checked)
        except (ConfigError, DataError):
            raise
        except Exception as exc:  # h5py's and xarray's errors name neither the file nor what it should be
            cause = f"{type(exc).__name__}: {exc}"
        gc.collect()  # h5netcdf's half-opened files are closed here, where their complaints are silenced
    with open(path, "rb") as f:
        hdf5 = f.read(8) == HDF5_SIGNATURE
    what = ("it is an HDF5 file, but damaged inside (overwritten, zeroed or missing bytes)" if hdf5 else
            "it does not start as an HDF5/netCDF4 file does")
    raise DataError(f"{path!r} is not a readable bayeskit posterior file (netCDF4 in ArviZ's layout, as "
                    f"`Posterior.save` writes): {what}; the reader said {cause}")


def _read(path: str, model, checked: bool) -> DrawsPosterior:
    import xarray as xr

    from .model import as_model

    groups = {}
    with xr.open_dataset(path, group="posterior", engine=_ENGINE) as ds:
        attrs = dict(ds.attrs)
        if "bayeskit_checksum" in attrs and not checked:
            raise DataError(f"{path!r} is not a readable bayeskit posterior file: it was damaged after it was saved "
                            f"(the checksum `Posterior.save` ended it with is gone: its end was overwritten, zeroed "
                            f"or cut off), so its numbers cannot be trusted; save the posterior again")
        groups["posterior"] = {k: v.values for k, v in ds.load().data_vars.items()}
    for group in ("sample_stats", "observed_data", "constant_data", "log_likelihood", "posterior_predictive",
                  TRACES_GROUP):
        try:
            with xr.open_dataset(path, group=group, engine=_ENGINE) as ds:
                groups[group] = {k: v.values for k, v in ds.load().data_vars.items()}
        except OSError:
            groups[group] = {}
    observed_keys = tuple(json.loads(attrs.get("bayeskit_observed_keys", "[]")))
    posterior = DrawsPosterior(
        groups["posterior"],
        sample_stats=groups["sample_stats"],
        observed_data=groups["observed_data"],
        constant_data=groups["constant_data"],
        log_likelihood=groups["log_likelihood"],
        posterior_predictive=groups["posterior_predictive"],
        traces=groups[TRACES_GROUP],
        static_data=json.loads(attrs.get("bayeskit_static_data", "{}")),
        observed_keys=observed_keys,
        # the observations by argument name, where the site is named as its argument (the usual `obs=y`)
        observed_args={k: groups["observed_data"][k] for k in observed_keys if k in groups["observed_data"]},
        latent_sites=tuple(json.loads(attrs["bayeskit_latent_sites"])) if "bayeskit_latent_sites" in attrs else None,
        model=as_model(model) if model is not None else None,
        engine=Engine.from_settings(attrs.get("bayeskit_engine", "{}")),
        markov=bool(int(attrs.get("bayeskit_markov", 1))),
    )
    # as written: an engine unknown here, or settings stored as their repr, are reported as they were
    posterior.saved_engine_settings = json.loads(attrs.get("bayeskit_engine", "{}"))
    if attrs.get("inference_library_version"):
        posterior.saved_version = attrs["inference_library_version"]
    if "bayeskit_dims" in attrs or "bayeskit_coords" in attrs:
        posterior.name_dimensions(json.loads(attrs.get("bayeskit_coords", "{}")),
                                  json.loads(attrs.get("bayeskit_dims", "{}")))
    return posterior
