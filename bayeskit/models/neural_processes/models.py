"""The neural-process family as torch modules with one interface:

    predict(xc, yc, xt, samples) -> (μ, σ), each (S, B, m, d_y): a Gaussian per target and per sample
    loss(xc, yc, x, y, samples)  -> a scalar to minimise (per point, averaged over the batch)

where (xc, yc) is the context and (x, y) all points of a task (context first), as NP training
conventionally scores them. The predictive at a target is the equal-weight mixture over the S
samples (S = 1 for the deterministic CNP and CANP).

* `CNP` (Garnelo et al. 2018): mean-pooled encoder, Gaussian decoder.
* `NP` (latent NP) and `ANP` (attentive NP, Kim et al. 2019): a latent z ~ q(z | context) beside the
  deterministic path (cross-attention in the ANP); trained by the importance-weighted estimator of
  log p(y | x, context) with q(z | all points) as proposal, as the BNP code does for S > 1.
* `CANP`: the ANP's deterministic cross-attentive path alone (MPANP's backbone).
* `BNP` (Lee et al. 2020): uncertainty from a residual bootstrap of the context; loss −(ll + ll_base).
* `MPNP` (Lee, Yun, Nam, Fong & Lee, ICLR 2023): a CNP (or, as MPANP, a CANP) that conditions on
  the context together with K pseudo-context sets drawn by an exchangeable generator; see
  `PseudoContextGenerator` and `MPNP.loss`.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import (
    CrossAttentionEncoder,
    GaussianDecoder,
    MultiHeadAttention,
    PoolingEncoder,
    SelfAttention,
    gaussian_log_prob,
    logmeanexp,
    mlp,
)


class NeuralProcess(nn.Module):
    """Base: ``config`` holds the constructor's arguments (what `build` needs to make it again)."""

    kind = "neural process"

    def __init__(self, **config):
        super().__init__()
        self.config = {"kind": type(self).__name__, **config}

    @property
    def x_dim(self) -> int:
        return self.config["x_dim"]

    def predict(self, xc, yc, xt, samples: int = 1):
        raise NotImplementedError

    def loss(self, xc, yc, x, y, samples: int = 1):
        raise NotImplementedError

    def forward(self, xc, yc, xt, samples: int = 1):
        return self.predict(xc, yc, xt, samples)


def point_log_likelihood(mu, sigma, y):
    """log N(y | μ, σ) summed over the output dimension: (…, B, m)."""
    return gaussian_log_prob(mu, sigma, y).sum(-1)


class CNP(NeuralProcess):
    def __init__(self, x_dim: int = 1, y_dim: int = 1, hidden: int = 128, encoder_depth: int = 4,
                 decoder_depth: int = 3):
        super().__init__(x_dim=x_dim, y_dim=y_dim, hidden=hidden, encoder_depth=encoder_depth,
                         decoder_depth=decoder_depth)
        self.encoder = PoolingEncoder(x_dim, y_dim, hidden, pre_depth=encoder_depth)
        self.decoder = GaussianDecoder(x_dim, y_dim, hidden, hidden, decoder_depth)

    def predict(self, xc, yc, xt, samples: int = 1):
        mu, sigma = self.decoder(self.encoder(xc, yc), xt)
        return (mu, sigma) if mu.dim() > xt.dim() else (mu.unsqueeze(0), sigma.unsqueeze(0))

    def loss(self, xc, yc, x, y, samples: int = 1):
        mu, sigma = self.decoder(self.encoder(xc, yc), x)
        return -point_log_likelihood(mu, sigma, y).mean()


class CANP(CNP):
    """The attentive NP's deterministic path: each target attends to the context."""

    def __init__(self, x_dim: int = 1, y_dim: int = 1, hidden: int = 128, encoder_depth: int = 4,
                 decoder_depth: int = 3):
        NeuralProcess.__init__(self, x_dim=x_dim, y_dim=y_dim, hidden=hidden, encoder_depth=encoder_depth,
                               decoder_depth=decoder_depth)
        self.encoder = CrossAttentionEncoder(x_dim, y_dim, hidden, pre_depth=encoder_depth)
        self.decoder = GaussianDecoder(x_dim, y_dim, hidden, hidden, decoder_depth)

    def _encode(self, xc, yc, xt):
        lead = xc.shape[:-2]
        return self.encoder(xc, yc, xt.expand(*lead, *xt.shape[-2:]))

    def predict(self, xc, yc, xt, samples: int = 1):
        mu, sigma = self.decoder(self._encode(xc, yc, xt), xt, per_target=True)
        return (mu, sigma) if mu.dim() > xt.dim() else (mu.unsqueeze(0), sigma.unsqueeze(0))

    def loss(self, xc, yc, x, y, samples: int = 1):
        mu, sigma = self.decoder(self._encode(xc, yc, x), x, per_target=True)
        return -point_log_likelihood(mu, sigma, y).mean()


class NP(NeuralProcess):
    """Latent NP: p(y | x, z, r) with z ~ q(z | context); ``attentive=True`` is the ANP."""

    attentive = False

    def __init__(self, x_dim: int = 1, y_dim: int = 1, hidden: int = 128, encoder_depth: int = 4,
                 decoder_depth: int = 3):
        super().__init__(x_dim=x_dim, y_dim=y_dim, hidden=hidden, encoder_depth=encoder_depth,
                         decoder_depth=decoder_depth)
        if self.attentive:
            self.deterministic = CrossAttentionEncoder(x_dim, y_dim, hidden, pre_depth=encoder_depth)
        else:
            self.deterministic = PoolingEncoder(x_dim, y_dim, hidden, pre_depth=encoder_depth)
        self.latent = PoolingEncoder(x_dim, y_dim, hidden, d_latent=hidden, self_attention=self.attentive,
                                     pre_depth=encoder_depth)
        self.decoder = GaussianDecoder(x_dim, y_dim, 2 * hidden, hidden, decoder_depth)

    def _decode(self, xc, yc, xt, z):
        r = self.deterministic(xc, yc, xt) if self.attentive else self.deterministic(xc, yc)
        S, m = z.shape[0], xt.shape[-2]
        if self.attentive:  # r: (B, m, h), z: (S, B, h)
            encoding = torch.cat([r.expand(S, *r.shape), z.unsqueeze(-2).expand(*z.shape[:-1], m, z.shape[-1])], -1)
            return self.decoder(encoding, xt, per_target=True)
        return self.decoder(torch.cat([r.expand(S, *r.shape), z], -1), xt)  # one summary per task

    def predict(self, xc, yc, xt, samples: int = 1):
        z = self.latent(xc, yc).sample((samples,))
        return self._decode(xc, yc, xt, z)

    def loss(self, xc, yc, x, y, samples: int = 1):
        """−(1/N) log (1/S) Σ_s p(y | x, z_s, C) p(z_s | C) / q(z_s | all), z_s ~ q(z | all)."""
        prior, posterior = self.latent(xc, yc), self.latent(x, y)
        z = posterior.rsample((samples,))
        mu, sigma = self._decode(xc, yc, x, z)
        log_w = point_log_likelihood(mu, sigma, y).sum(-1) + prior.log_prob(z).sum(-1) - posterior.log_prob(z).sum(-1)
        return -(logmeanexp(log_w, 0) / x.shape[-2]).mean()


class ANP(NP):
    attentive = True


class BNP(NeuralProcess):
    """Bootstrapping NP: the context is resampled, a first pass predicts it back, its standardised
    residuals are resampled (and centred) into pseudo-observations whose encoding adapts the decoder."""

    def __init__(self, x_dim: int = 1, y_dim: int = 1, hidden: int = 128, encoder_depth: int = 4,
                 decoder_depth: int = 3):
        super().__init__(x_dim=x_dim, y_dim=y_dim, hidden=hidden, encoder_depth=encoder_depth,
                         decoder_depth=decoder_depth)
        self.encoder = PoolingEncoder(x_dim, y_dim, hidden, pre_depth=encoder_depth)
        self.decoder = GaussianDecoder(x_dim, y_dim, hidden, hidden, decoder_depth, context=hidden)

    @staticmethod
    def _resample(t, index):
        """Rows of ``t`` ((B, n, d), or (S, B, n, d)) picked by ``index`` (S, B, n)."""
        if t.dim() == index.dim():
            t = t.expand(index.shape[0], *t.shape)
        return torch.gather(t, -2, index.unsqueeze(-1).expand(*index.shape, t.shape[-1]))

    def _bootstrap_encoding(self, xc, yc, samples):
        S, (B, n) = samples, xc.shape[:2]
        with torch.no_grad():
            index = torch.randint(n, (S, B, n), device=xc.device)
            r = self.encoder(self._resample(xc, index), self._resample(yc, index))
            mu, sigma = self.decoder(r, xc)
            residual = self._resample((yc - mu) / sigma, torch.randint(n, (S, B, n), device=xc.device))
            residual = residual - residual.mean(-2, keepdim=True)
            y_tilde = mu + sigma * residual
        return self.encoder(xc.expand(S, *xc.shape), y_tilde)

    def predict(self, xc, yc, xt, samples: int = 1):
        adapted = self._bootstrap_encoding(xc, yc, samples)
        base = self.encoder(xc, yc)
        return self.decoder(base.expand(samples, *base.shape), xt, context=adapted)

    def loss(self, xc, yc, x, y, samples: int = 1):
        mu, sigma = self.predict(xc, yc, x, samples)
        ll = logmeanexp(point_log_likelihood(mu, sigma, y), 0).mean()
        mu_base, sigma_base = self.decoder(self.encoder(xc, yc), x)
        return -(ll + point_log_likelihood(mu_base, sigma_base, y).mean())


class PseudoContextGenerator(nn.Module):
    """An exchangeable generator of pseudo-context points given a context.

    Each of M i.i.d. noise vectors e_j ~ N(0, I) is embedded, attends to the embedded context points
    (MAB(E, H)), the M tokens then attend to one another (self-attention), and a per-token MLP maps
    each to a point (x̃_j, ỹ_j). Every block is permutation-equivariant in the tokens, so permuting
    the noise permutes the points, and as the noise is i.i.d. the law of the pseudo-context is
    exchangeable. Points are made in data space, so any NP encodes context ∪ pseudo-context as it
    encodes a context (the attentive MPANP needs pseudo inputs to attend to).
    """

    def __init__(self, x_dim: int, y_dim: int, hidden: int = 128, noise_dim: int = 32, heads: int = 8):
        super().__init__()
        self.x_dim, self.noise_dim = x_dim, noise_dim
        self.context = mlp(x_dim + y_dim, hidden, hidden, 2)
        self.noise = nn.Linear(noise_dim, hidden)
        self.attend = MultiHeadAttention(hidden, hidden, hidden, hidden, heads)
        self.mix = SelfAttention(hidden, hidden, heads)
        self.out = mlp(hidden, hidden, x_dim + y_dim, 2)

    def forward(self, xc, yc, sets: int, points: int, noise=None):
        """(x̃ (K, B, M, d_x), ỹ (K, B, M, d_y)) for K = ``sets`` sets of M = ``points`` points."""
        h = self.context(torch.cat([xc, yc], -1))
        if noise is None:
            noise = torch.randn(sets, xc.shape[0], points, self.noise_dim, device=xc.device, dtype=xc.dtype)
        h = h.expand(noise.shape[0], *h.shape)
        tokens = self.mix(self.attend(self.noise(noise), h, h))
        out = self.out(tokens)
        return out[..., : self.x_dim], out[..., self.x_dim:]


class MPNP(NeuralProcess):
    """Martingale posterior NP: the backbone (a CNP; a CANP when ``attentive``, the MPANP) conditioned
    on the context ∪ K pseudo-context sets of M points from `PseudoContextGenerator`.

    Loss (per point, batch mean), with C the context, Z all points, C̃_k the k-th pseudo set:

        L = −(1/|Z|) log (1/K) Σ_k exp Σ_{Z} log p(y | x, C ∪ C̃_k)              (marginal)
            − w_a (1/|Z|) Σ_Z log p(y | x, C)                                   (amortised: the CNP)
            − w_p (1/K) Σ_k (1/|Z|) Σ_Z log p(y | x, C̃_k)                        (pseudo-only)

    The paper's §3 was not readable here; this three-term form follows two independent
    reimplementations (both with w_a = 1; w_p = 1 or 0.1). The defaults are w_a = 1, w_p = 0: in the
    1-D GP benchmark (benchmarks/np_gp.py) the pseudo-only term cost 0.08 nats per target point.
    ``pseudo_points = 0`` makes the model its backbone exactly.
    """

    def __init__(self, x_dim: int = 1, y_dim: int = 1, hidden: int = 128, encoder_depth: int = 4,
                 decoder_depth: int = 3, pseudo_points: int = 16, noise_dim: int = 32, attentive: bool = False,
                 amortised_weight: float = 1.0, pseudo_weight: float = 0.0):
        super().__init__(x_dim=x_dim, y_dim=y_dim, hidden=hidden, encoder_depth=encoder_depth,
                         decoder_depth=decoder_depth, pseudo_points=pseudo_points, noise_dim=noise_dim,
                         attentive=attentive, amortised_weight=amortised_weight, pseudo_weight=pseudo_weight)
        backbone = CANP if attentive else CNP
        self.backbone = backbone(x_dim, y_dim, hidden, encoder_depth, decoder_depth)
        self.generator = PseudoContextGenerator(x_dim, y_dim, hidden, noise_dim)

    def pseudo_context(self, xc, yc, sets: int):
        return self.generator(xc, yc, sets, self.config["pseudo_points"])

    def _with_pseudo(self, xc, yc, xt, sets):
        if self.config["pseudo_points"] == 0:
            mu, sigma = self.backbone.predict(xc, yc, xt)
            return mu.expand(sets, *mu.shape[1:]), sigma.expand(sets, *sigma.shape[1:]), None
        x_tilde, y_tilde = self.pseudo_context(xc, yc, sets)
        cx = torch.cat([xc.expand(sets, *xc.shape), x_tilde], -2)
        cy = torch.cat([yc.expand(sets, *yc.shape), y_tilde], -2)
        mu, sigma = self.backbone.predict(cx, cy, xt)
        return mu, sigma, (x_tilde, y_tilde)

    def predict(self, xc, yc, xt, samples: int = 1):
        mu, sigma, _ = self._with_pseudo(xc, yc, xt, samples)
        return mu, sigma

    def loss(self, xc, yc, x, y, samples: int = 4):
        mu, sigma, pseudo = self._with_pseudo(xc, yc, x, samples)
        marginal = (logmeanexp(point_log_likelihood(mu, sigma, y).sum(-1), 0) / x.shape[-2]).mean()
        total = marginal
        if self.config["amortised_weight"]:
            mu0, sigma0 = self.backbone.predict(xc, yc, x)
            total = total + self.config["amortised_weight"] * point_log_likelihood(mu0, sigma0, y).mean()
        if self.config["pseudo_weight"] and pseudo is not None:
            mu_p, sigma_p = self.backbone.predict(*pseudo, x)
            total = total + self.config["pseudo_weight"] * point_log_likelihood(mu_p, sigma_p, y).mean()
        return -total


KINDS = {"cnp": CNP, "canp": CANP, "np": NP, "anp": ANP, "bnp": BNP, "mpnp": MPNP}


def build(config: dict) -> NeuralProcess:
    """The network a ``config`` (a network's ``.config``) describes, freshly initialised."""
    config = dict(config)
    cls = {c.__name__: c for c in KINDS.values()}[config.pop("kind")]
    return cls(**config)
