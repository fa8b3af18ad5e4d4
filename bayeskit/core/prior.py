"""`bk.prior_predictive`: what a model says before it sees data, θ ~ p(θ) and ỹ ~ p(y | θ).

The first step of the workflow (prior predictive checks): draws of the latent sites (ArviZ's
``prior`` group) and of the observed ones (``prior_predictive``), next to the observations a fit
will condition on (``observed_data``), so ``az.plot_ppc(idata, group="prior")`` compares them.
``idata.extend(...)`` joins them to a posterior's InferenceData, as ``az.from_numpyro(prior=...)``
would.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np

from .posterior import check_n
from .seeds import as_key


class PriorPredictive:
    """Draws of a model's prior: ``prior`` (latent and deterministic sites, ``(n, ...)``) and
    ``predictive`` (the observed sites, simulated). ``observed_data`` holds the observations given
    in `data`, by site name, and ``constant_data`` the other array arguments."""

    def __init__(self, prior: Mapping, predictive: Mapping, observed_data: Mapping, constant_data: Mapping):
        self.prior = {k: np.asarray(v) for k, v in prior.items()}
        self.predictive = {k: np.asarray(v) for k, v in predictive.items()}
        self.observed_data = {k: np.asarray(v) for k, v in observed_data.items()}
        self.constant_data = {k: np.asarray(v) for k, v in constant_data.items()}

    def __repr__(self) -> str:
        n = next(iter({**self.prior, **self.predictive}.values())).shape[0]
        return f"PriorPredictive({n} draws; prior {list(self.prior)}; predictive {list(self.predictive)})"

    def to_xarray(self) -> dict:
        """ArviZ's groups as xarray Datasets: ``prior`` and ``prior_predictive`` as one chain of
        draws (``chain``, ``draw``, ``<name>_dim_i``), ``observed_data`` and ``constant_data``."""
        import xarray as xr

        def dataset(arrays, lead):  # draws (n, ...) become one chain: (1, n, ...)
            arrays = {k: v[None] if lead else v for k, v in arrays.items()}
            return xr.Dataset({k: xr.Variable(lead + tuple(f"{k}_dim_{i}" for i in range(v.ndim - len(lead))), v)
                               for k, v in arrays.items()})

        groups = {"prior": dataset(self.prior, ("chain", "draw")),
                  "prior_predictive": dataset(self.predictive, ("chain", "draw"))}
        if self.observed_data:
            groups["observed_data"] = dataset(self.observed_data, ())
        if self.constant_data:
            groups["constant_data"] = dataset(self.constant_data, ())
        return groups

    def to_arviz(self):
        """An ``arviz.InferenceData`` with the groups of `to_xarray`."""
        from . import registry

        return registry.service("inference_data")(self.to_xarray())


def run_forward(model, spec, observed_keys, n: int, seed) -> dict[str, np.ndarray]:
    """`n` draws of every site of `model` (a `NumPyroModel`) run forward at the data in `spec`, the
    arguments in ``observed_keys`` set to None so the model simulates them; in the model's order."""
    from numpyro.infer import Predictive

    kwargs = spec.kwargs()
    for key in observed_keys:
        if key is not None:
            kwargs[key] = None
    out = Predictive(model.fn, num_samples=n)(as_key(seed), **kwargs)
    return spec.in_model_order({k: np.asarray(v) for k, v in out.items()})


def prior_predictive(model, data: Mapping | None = None, n: int = 1000, seed=0) -> PriorPredictive:
    """`n` draws of θ ~ p(θ) and ỹ ~ p(y | θ) from a NumPyro model at the inputs in `data`.

    Observations in `data` are not conditioned on: they are kept as ``observed_data`` for the
    comparison (their shapes set the simulated ones), and the model simulates its observed sites.
    They may be left out: a site named like a model argument missing from `data` (``y`` of
    ``def model(x, y=None)``) is taken as that argument's observation.
    """
    from .errors import ModelError
    from .model import as_model

    n = check_n(n)
    m = as_model(model)
    if not hasattr(m, "inspect"):
        raise ModelError(f"`prior_predictive` runs a NumPyro model forward; got {type(m).__name__}")
    with warnings.catch_warnings():  # a left-out observation is how a prior predictive is usually asked for
        warnings.filterwarnings("ignore", message=".*was not given, so site.*")
        spec = m.inspect(data)
    observed = {s.name: s.data_key for s in spec.observed}
    # a site named like a model argument left out of `data` is that argument's observation (`obs=y`)
    given = set(data or {})
    observed.update({s.name: None for s in spec.latent if s.name in m.arguments and s.name not in given})
    out = run_forward(m, spec, observed.values(), n, seed)
    return PriorPredictive(
        {k: v for k, v in out.items() if k not in observed},
        {k: v for k, v in out.items() if k in observed},
        {s: spec.arrays[key] for s, key in observed.items() if key in spec.arrays},
        {k: v for k, v in spec.arrays.items() if k not in set(observed.values())},
    )
