"""Variational families built from the model (NumPyro's automatic guides, over the model's
unconstrained latent space), or any user-written NumPyro guide."""

from __future__ import annotations

from collections.abc import Callable

from ...core.checks import check_int, check_positive, check_type
from ...core.errors import ConfigError
from ...core.module import Module, field


def _tuple(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


class MeanField(Module, pytree=False):
    """Independent normals per unconstrained coordinate (``AutoNormal``)."""

    init_scale: float = 0.1

    def __check_init__(self):
        check_positive("init_scale", self.init_scale)

    def build(self, model_fn):
        from numpyro.infer.autoguide import AutoNormal

        return AutoNormal(model_fn, init_scale=self.init_scale)


class FullRank(Module, pytree=False):
    """One multivariate normal over all unconstrained coordinates (``AutoMultivariateNormal``)."""

    init_scale: float = 0.1

    def __check_init__(self):
        check_positive("init_scale", self.init_scale)

    def build(self, model_fn):
        from numpyro.infer.autoguide import AutoMultivariateNormal

        return AutoMultivariateNormal(model_fn, init_scale=self.init_scale)


class LowRank(Module, pytree=False):
    """Normal with covariance W Wᵀ + D, W of rank ``rank`` (``AutoLowRankMultivariateNormal``)."""

    rank: int = 2
    init_scale: float = 0.1

    def __check_init__(self):
        check_int("rank", self.rank)
        check_positive("init_scale", self.init_scale)

    def build(self, model_fn):
        from numpyro.infer.autoguide import AutoLowRankMultivariateNormal

        return AutoLowRankMultivariateNormal(model_fn, rank=self.rank, init_scale=self.init_scale)


class Flow(Module, pytree=False):
    """A normalising flow: ``num_flows`` inverse autoregressive layers on a standard normal
    (``AutoIAFNormal``, Kingma et al. 2016)."""

    num_flows: int = 3
    hidden_dims: tuple[int, ...] = field(default=(32, 32), converter=_tuple)

    def __check_init__(self):
        check_int("num_flows", self.num_flows)
        if not isinstance(self.hidden_dims, tuple) or not self.hidden_dims:
            raise ConfigError(f"`hidden_dims` must be a non-empty tuple of ints >= 1, got {self.hidden_dims!r}")
        for width in self.hidden_dims:
            check_int("hidden_dims", width, why="the width of each hidden layer")

    def build(self, model_fn):
        from numpyro.infer.autoguide import AutoIAFNormal

        return AutoIAFNormal(model_fn, num_flows=self.num_flows, hidden_dims=list(self.hidden_dims))


class Hierarchical(Module, pytree=False):
    """A hierarchical (marginal) family q(z) = ∫ q(z | ψ) q(ψ) dψ: a NumPyro ``guide`` whose
    auxiliary sites ψ are marked ``infer={"is_auxiliary": True}``, and optionally a ``reverse``
    program τ(ψ | z), called as ``reverse(z, **data)`` with z the dict of latent values, sampling
    the same auxiliary sites. For `iwhvi` / `diwhvi` (Sobolev & Vetrov 2019); without ``reverse``
    they use τ = q(ψ)."""

    guide: object
    reverse: object = None

    def __check_init__(self):
        check_type("guide", self.guide, Callable, "a NumPyro guide function")
        check_type("reverse", self.reverse, Callable, "a function reverse(z, **data)", optional=True)

    def build(self, model_fn):
        return self.guide


FAMILIES = {"mean_field": MeanField, "full_rank": FullRank, "low_rank": LowRank, "flow": Flow}


def as_family(value):
    """A family object, or a user guide function (returned as is)."""
    if isinstance(value, (MeanField, FullRank, LowRank, Flow, Hierarchical)):
        return value
    if isinstance(value, str) and value in FAMILIES:
        return FAMILIES[value]()
    if callable(value):
        return value
    raise ConfigError(f"`guide` must be one of {sorted(FAMILIES)}, a family (bk.vi.LowRank(rank=3), "
                      f"bk.vi.Flow()), or a NumPyro guide function, got {value!r}")
