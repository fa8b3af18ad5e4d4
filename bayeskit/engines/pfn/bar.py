"""The bar ("Riemann") distribution: a PFN's output head (Müller et al. 2022, §4.1).

The real line is cut at fixed borders b_0 < … < b_K, chosen before training as equal-mass quantiles
of the prior's targets (`borders_from_samples`); the network gives logits over the K buckets, and
within bucket k the density is flat:

    p(y) = P_k / w_k,   P = softmax(logits),   w_k = b_{k+1} − b_k.

With ``full_support=True`` the two outer buckets become half-normal tails anchored at their inner
edge (b_1 going left, b_{K−1} going right), with the scale s chosen so that half of the tail's mass
falls inside the original bucket: s = w / Φ⁻¹(3/4). The density, the cdf, the quantile function and
sampling are written from the same pieces, so they agree in the tails too (sampling by the inverse
cdf). All methods broadcast: ``logits`` (..., K) against ``y`` or ``q`` of shape (...).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ...core.checks import check_int
from ...core.errors import ConfigError

_HALF_NORMAL_MEDIAN = 0.6744897501960817  # Φ⁻¹(3/4): the median of a half-normal with scale 1
_SQRT2 = math.sqrt(2.0)


def borders_from_samples(samples, num_buckets: int) -> torch.Tensor:
    """K + 1 borders at the equal-mass quantiles of prior targets (the outer ones at the extremes)."""
    check_int("num_buckets", num_buckets, 2)
    ys = torch.tensor(np.asarray(samples, dtype=np.float64)).reshape(-1)
    ys = ys[torch.isfinite(ys)]
    if ys.numel() < num_buckets + 1:
        raise ConfigError(f"`samples` must hold more than num_buckets = {num_buckets} finite values, got {ys.numel()}")
    borders = torch.quantile(ys, torch.linspace(0, 1, num_buckets + 1, dtype=torch.float64))
    if not torch.all(borders[1:] > borders[:-1]):
        raise ConfigError("the prior's targets have repeated values (a discrete or clipped target): equal-mass "
                          "borders would coincide; use fewer buckets or pass `borders=` explicitly")
    return borders


class BarDistribution(torch.nn.Module):
    """The bar distribution over fixed ``borders`` (a 1-D increasing tensor of K + 1 values)."""

    def __init__(self, borders, full_support: bool = True):
        super().__init__()
        borders = torch.as_tensor(borders).detach().clone()
        if borders.ndim != 1 or borders.numel() < 3 or not torch.all(borders[1:] > borders[:-1]):
            raise ConfigError("`borders` must be a 1-D strictly increasing tensor of at least 3 values (2 buckets)")
        self.full_support = bool(full_support)
        self.register_buffer("borders", borders)

    # -- the pieces -------------------------------------------------------------------------------
    @property
    def num_buckets(self) -> int:
        return self.borders.numel() - 1

    @property
    def widths(self) -> torch.Tensor:
        return self.borders[1:] - self.borders[:-1]

    def tail_scales(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Half-normal scales of the left and right tails (half of each tail's mass in its bucket)."""
        w = self.widths
        return w[0] / _HALF_NORMAL_MEDIAN, w[-1] / _HALF_NORMAL_MEDIAN

    def _check_logits(self, logits):
        if logits.shape[-1] != self.num_buckets:
            raise ConfigError(f"`logits` must have {self.num_buckets} entries in their last axis (one per bucket), "
                              f"got shape {tuple(logits.shape)}")

    def _bucket(self, y):
        """Index of y's bucket, the outer buckets extended to ±∞."""
        inner = self.borders[1:-1].contiguous()
        return torch.searchsorted(inner, y.contiguous(), right=True)

    # -- density, cdf, quantiles ------------------------------------------------------------------
    def log_prob(self, logits: torch.Tensor, y) -> torch.Tensor:
        """log p(y) under the distribution each row of ``logits`` defines."""
        self._check_logits(logits)
        y = torch.as_tensor(y, dtype=logits.dtype, device=logits.device)
        logits, y = _broadcast(logits, y)
        log_mass = torch.log_softmax(logits, -1)
        k = self._bucket(y)
        out = log_mass.gather(-1, k.unsqueeze(-1)).squeeze(-1) - torch.log(self.widths.to(y.dtype))[k]
        b = self.borders.to(y.dtype)
        if self.full_support:
            s_left, s_right = self.tail_scales()
            left, right = k == 0, k == self.num_buckets - 1
            out = torch.where(left, log_mass[..., 0] + _half_normal_logpdf(b[1] - y, s_left), out)
            out = torch.where(right, log_mass[..., -1] + _half_normal_logpdf(y - b[-2], s_right), out)
        else:
            out = torch.where((y < b[0]) | (y > b[-1]), torch.full_like(out, -math.inf), out)
        return out

    def forward(self, logits, y):
        """The training loss: −log p(y) (a tensor of the batch shape)."""
        return -self.log_prob(logits, y)

    def cdf(self, logits: torch.Tensor, y) -> torch.Tensor:
        self._check_logits(logits)
        y = torch.as_tensor(y, dtype=logits.dtype, device=logits.device)
        logits, y = _broadcast(logits, y)
        mass = torch.softmax(logits, -1)
        below = torch.cumsum(mass, -1) - mass  # mass of the buckets left of each bucket
        k = self._bucket(y)
        b = self.borders.to(y.dtype)
        within = ((y - b[k]) / self.widths.to(y.dtype)[k]).clamp(0, 1)
        out = below.gather(-1, k.unsqueeze(-1)).squeeze(-1) + mass.gather(-1, k.unsqueeze(-1)).squeeze(-1) * within
        if self.full_support:
            s_left, s_right = self.tail_scales()
            left_mass = mass[..., 0] * (1 - _half_normal_cdf(b[1] - y, s_left))
            right_mass = below[..., -1] + mass[..., -1] * _half_normal_cdf(y - b[-2], s_right)
            out = torch.where(k == 0, left_mass, torch.where(k == self.num_buckets - 1, right_mass, out))
        return out.clamp(0, 1)

    def icdf(self, logits: torch.Tensor, q) -> torch.Tensor:
        """The quantile function: the y with cdf(y) = q (exact in the tails)."""
        self._check_logits(logits)
        q = torch.as_tensor(q, dtype=logits.dtype, device=logits.device)
        if torch.any((q < 0) | (q > 1)):
            raise ConfigError("quantile levels `q` must lie in [0, 1]")
        logits, q = _broadcast(logits, q)
        return self._icdf_last(logits, q.unsqueeze(-1)).squeeze(-1)

    def sample(self, logits: torch.Tensor, sample_shape=(), generator: torch.Generator | None = None):
        """Draws by the inverse cdf: (*sample_shape, *batch)."""
        self._check_logits(logits)
        sample_shape = tuple(sample_shape)
        batch = logits.shape[:-1]
        u = torch.rand((*sample_shape, *batch), dtype=logits.dtype, device=logits.device, generator=generator)
        # the draws of one point share its cdf: computed once per point, not once per draw (the draws go
        # last, where searchsorted takes many values per sorted row)
        s = len(sample_shape)
        lead = tuple(range(s, s + len(batch))) + tuple(range(s))
        q = u.permute(*lead).reshape(*batch, -1)
        out = self._icdf_last(logits, q).reshape(*batch, *sample_shape)
        back = tuple(range(len(batch), len(batch) + s)) + tuple(range(len(batch)))
        return out.permute(*back)

    def _icdf_last(self, logits: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Quantiles at levels q (*batch, S) of the distributions logits (*batch, K): (*batch, S)."""
        mass = torch.softmax(logits, -1)
        upper = torch.cumsum(mass, -1)
        k = torch.searchsorted(upper.contiguous(), q.contiguous(), right=False)
        k = k.clamp(max=self.num_buckets - 1)
        m_k = mass.gather(-1, k)
        below = upper.gather(-1, k) - m_k
        b = self.borders.to(q.dtype)
        frac = ((q - below) / m_k.clamp_min(torch.finfo(q.dtype).tiny)).clamp(0, 1)
        out = b[k] + frac * self.widths.to(q.dtype)[k]
        if self.full_support:
            s_left, s_right = self.tail_scales()
            # left tail: cdf = P₀ (1 − F(b₁ − y)), so y = b₁ − F⁻¹(1 − q/P₀); right: y = b_{K−1} + F⁻¹(frac)
            left = b[1] - _half_normal_icdf(1 - frac, s_left)
            right = b[-2] + _half_normal_icdf(frac, s_right)
            out = torch.where(k == 0, left, torch.where(k == self.num_buckets - 1, right, out))
        return out

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        self._check_logits(logits)
        mass = torch.softmax(logits, -1)
        b = self.borders.to(logits.dtype)
        centres = (b[1:] + b[:-1]) / 2
        if self.full_support:
            s_left, s_right = self.tail_scales()
            mean_hn = math.sqrt(2 / math.pi)
            centres = torch.cat([(b[1] - s_left * mean_hn).reshape(1), centres[1:-1],
                                 (b[-2] + s_right * mean_hn).reshape(1)])
        return (mass * centres).sum(-1)

    def variance(self, logits: torch.Tensor) -> torch.Tensor:
        """E[y²] − E[y]²: a flat bucket [a, b] has E[y²] = (a² + ab + b²)/3; a tail b ± T with
        T half-normal of scale s has E[y²] = b² ± 2bs√(2/π) + s²."""
        self._check_logits(logits)
        mass = torch.softmax(logits, -1)
        b = self.borders.to(logits.dtype)
        second = (b[1:] ** 2 + b[1:] * b[:-1] + b[:-1] ** 2) / 3
        if self.full_support:
            s_left, s_right = self.tail_scales()
            mean_hn = math.sqrt(2 / math.pi)
            second = torch.cat([(b[1] ** 2 - 2 * b[1] * s_left * mean_hn + s_left**2).reshape(1), second[1:-1],
                                (b[-2] ** 2 + 2 * b[-2] * s_right * mean_hn + s_right**2).reshape(1)])
        return ((mass * second).sum(-1) - self.mean(logits) ** 2).clamp_min(0)

    def quantile(self, logits, q):
        """Alias of `icdf`."""
        return self.icdf(logits, q)


def _broadcast(logits, y):
    shape = torch.broadcast_shapes(logits.shape[:-1], y.shape)
    return logits.expand(*shape, logits.shape[-1]), y.expand(shape)


def _half_normal_logpdf(t, scale):
    # t ≥ 0 inside the tail; t < 0 cannot occur (the bucket index says which side y is on)
    return math.log(2.0) - 0.5 * math.log(2 * math.pi) - torch.log(scale) - 0.5 * (t / scale) ** 2


def _half_normal_cdf(t, scale):
    return torch.erf(t.clamp_min(0) / (scale * _SQRT2))


def _half_normal_icdf(u, scale):
    return scale * _SQRT2 * torch.erfinv(u.clamp(0, 1 - torch.finfo(u.dtype).eps))
