"""Variational families built from the model (NumPyro's automatic guides, over the model's
unconstrained latent space), or any user-written NumPyro guide."""

from __future__ import annotations

import dataclasses

from ...core.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class MeanField:
    """Independent normals per unconstrained coordinate (``AutoNormal``)."""

    init_scale: float = 0.1

    def build(self, model_fn):
        from numpyro.infer.autoguide import AutoNormal

        return AutoNormal(model_fn, init_scale=self.init_scale)


@dataclasses.dataclass(frozen=True)
class FullRank:
    """One multivariate normal over all unconstrained coordinates (``AutoMultivariateNormal``)."""

    init_scale: float = 0.1

    def build(self, model_fn):
        from numpyro.infer.autoguide import AutoMultivariateNormal

        return AutoMultivariateNormal(model_fn, init_scale=self.init_scale)


@dataclasses.dataclass(frozen=True)
class LowRank:
    """Normal with covariance W Wᵀ + D, W of rank ``rank`` (``AutoLowRankMultivariateNormal``)."""

    rank: int = 2
    init_scale: float = 0.1

    def __post_init__(self):
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ConfigError(f"LowRank `rank` must be an int >= 1, got {self.rank!r}")

    def build(self, model_fn):
        from numpyro.infer.autoguide import AutoLowRankMultivariateNormal

        return AutoLowRankMultivariateNormal(model_fn, rank=self.rank, init_scale=self.init_scale)


@dataclasses.dataclass(frozen=True)
class Flow:
    """A normalising flow: ``num_flows`` inverse autoregressive layers on a standard normal
    (``AutoIAFNormal``, Kingma et al. 2016)."""

    num_flows: int = 3
    hidden_dims: tuple[int, ...] = (32, 32)

    def __post_init__(self):
        if isinstance(self.num_flows, bool) or not isinstance(self.num_flows, int) or self.num_flows < 1:
            raise ConfigError(f"Flow `num_flows` must be an int >= 1, got {self.num_flows!r}")

    def build(self, model_fn):
        from numpyro.infer.autoguide import AutoIAFNormal

        return AutoIAFNormal(model_fn, num_flows=self.num_flows, hidden_dims=list(self.hidden_dims))


@dataclasses.dataclass(frozen=True)
class Hierarchical:
    """A hierarchical (marginal) family q(z) = ∫ q(z | ψ) q(ψ) dψ: a NumPyro ``guide`` whose
    auxiliary sites ψ are marked ``infer={"is_auxiliary": True}``, and optionally a ``reverse``
    program τ(ψ | z), called as ``reverse(z, **data)`` with z the dict of latent values, sampling
    the same auxiliary sites. For `iwhvi` / `diwhvi` (Sobolev & Vetrov 2019); without ``reverse``
    they use τ = q(ψ)."""

    guide: object
    reverse: object = None

    def __post_init__(self):
        if not callable(self.guide) or (self.reverse is not None and not callable(self.reverse)):
            raise ConfigError("Hierarchical needs a NumPyro `guide` function and optionally a `reverse` function")

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
