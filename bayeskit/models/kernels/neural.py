"""Kernels of infinitely wide fully connected networks: NNGP (Lee et al. 2018) and NTK (Jacot et al. 2018).

Network: ``hidden_layers`` blocks of Dense -> φ, then a Dense readout, in NTK parameterisation
(h = σ_w/√n · W φ + σ_b · b with standard normal W, b). With Σ the NNGP and Θ the NTK:

    Σ¹(x, x') = σ_w² x·x'/d + σ_b²,          Θ¹ = Σ¹
    Σ^{l+1}   = σ_w² E[φ(u)φ(v)] + σ_b²,     Σ̇^{l+1} = σ_w² E[φ'(u)φ'(v)]
    Θ^{l+1}   = Σ^{l+1} + Σ̇^{l+1} Θ^l,        (u, v) ~ N(0, Σ^l restricted to {x, x'})

The NNGP is the same in the standard parameterisation (W ~ N(0, σ_w²/fan_in)); its NTK grows
with the hidden width (see `fully_connected`). The kernels returned are Σ^{L+1}, Θ^{L+1}.
The recursion is written against an array namespace so the GPyTorch backend can reuse it.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp

from ...core.checks import check_choice, check_int, check_non_negative_values, check_positive_values
from ...core.errors import ConfigError
from ...core.module import field
from .activations import CLOSED_FORMS, gauss_hermite
from .base import Kernel


def expectation_map(activation, order: int = 64):
    """The (E[φφ], E[φ'φ']) map of an activation name or callable."""
    if isinstance(activation, str):
        if activation not in CLOSED_FORMS:
            raise ConfigError(f"`activation` must be one of {sorted(CLOSED_FORMS)} or a callable, got {activation!r}")
        return CLOSED_FORMS[activation]
    return gauss_hermite(activation, order)


def fully_connected(x1, x2, *, weight_var, bias_var, hidden_layers, maps, xp, diagonal=False,
                    parameterization="ntk", width=None):
    """(NNGP, NTK) of a deep fully connected network: (n1, n2) matrices, or (n,) diagonals.

    With ``diagonal=True`` only ``x1`` is used and the diagonal k(x_i, x_i) is returned.
    ``parameterization="standard"`` (W ~ N(0, σ_w²/fan_in)) changes only the NTK, which then
    grows with the hidden ``width`` (as neural-tangents 0.6.5 defines it):
    Θ¹ = x·x' + 1,  Θ^{l+1} = width·E[φφ] + Σ̇^{l+1} Θ^l + 1 (the 1 from each layer's bias).
    """
    standard = parameterization == "standard"
    d = x1.shape[-1]
    if diagonal:
        dot = xp.sum(x1 * x1, -1)
        pairs = lambda k: (k, k, k)  # noqa: E731
    else:
        dot = x1 @ x2.mT
        k22 = weight_var * xp.sum(x2 * x2, -1) / d + bias_var
    k11 = weight_var * xp.sum(x1 * x1, -1) / d + bias_var
    nngp = weight_var * dot / d + bias_var
    ntk = dot + 1.0 if standard else nngp
    for _ in range(hidden_layers):
        if diagonal:
            e, de = maps(*pairs(nngp), xp)
        else:
            e, de = maps(k11[:, None], k22[None, :], nngp, xp)
            k11 = weight_var * maps(k11, k11, k11, xp)[0] + bias_var
            k22 = weight_var * maps(k22, k22, k22, xp)[0] + bias_var
        nngp = weight_var * e + bias_var
        ntk = (width * e + 1.0 if standard else nngp) + weight_var * de * ntk
    return nngp, ntk


class _FullyConnected(Kernel):
    """Settings shared by `NNGP` and `NTK`; ``_which`` picks the kernel of the pair."""

    weight_var: float = 2.0
    bias_var: float = 0.0
    hidden_layers: int = field(static=True, default=2)
    activation: str | Callable = field(static=True, default="relu")
    quadrature_order: int = field(static=True, default=64)
    parameterization: str = field(static=True, default="ntk")
    width: int | None = field(static=True, default=None)
    _which = 0

    def __check_init__(self):
        name = type(self).__name__
        check_positive_values(name, weight_var=self.weight_var)
        check_non_negative_values(name, bias_var=self.bias_var)
        check_int("hidden_layers", self.hidden_layers, 0)
        check_int("quadrature_order", self.quadrature_order, 2)
        expectation_map(self.activation, self.quadrature_order)  # validates the activation
        check_choice("parameterization", self.parameterization, ("ntk", "standard"))
        if self._which == 1 and self.parameterization == "standard":
            check_int("width", self.width, why="the standard-parameterisation NTK grows with the hidden width")

    def _kernels(self, x1, x2, diagonal=False):
        return fully_connected(
            x1, x2, weight_var=self.weight_var, bias_var=self.bias_var, hidden_layers=self.hidden_layers,
            maps=expectation_map(self.activation, self.quadrature_order), xp=jnp, diagonal=diagonal,
            parameterization=self.parameterization, width=self.width,
        )

    def matrix(self, x1, x2):
        return self._kernels(x1, x2)[self._which]

    def diagonal(self, x):
        return self._kernels(x, None, diagonal=True)[self._which]


class NNGP(_FullyConnected):
    """NNGP kernel Σ^{L+1} of a fully connected network with ``hidden_layers`` = L hidden layers.

    ``activation``: "relu", "erf" (closed forms) or any elementwise JAX function (Gauss–Hermite
    quadrature of order ``quadrature_order``). ``weight_var`` = σ_w², ``bias_var`` = σ_b².
    The NNGP is the same in both parameterisations (``parameterization``, ``width`` unused).
    """

    _which = 0


class NTK(_FullyConnected):
    """Neural tangent kernel Θ^{L+1}; same settings as `NNGP`.

    ``parameterization="ntk"`` (default) gives the width-independent limit; ``"standard"``
    needs the hidden ``width`` n, since that NTK is affine in n (neural-tangents' convention).
    """

    _which = 1
