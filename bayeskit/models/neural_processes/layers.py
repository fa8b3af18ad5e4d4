"""Building blocks of the neural-process family, after the reference implementations of the
bootstrapping-NP group (juho-lee/bnp, yuneg11/Neural-Process-Family): MLPs of ReLU layers, the
multi-head attention block of the Set Transformer (residual + LayerNorm, then a residual ReLU
layer + LayerNorm), a mean-pooling set encoder (optionally self-attentive, optionally giving a
Normal over a latent), a cross-attentive encoder, and the Gaussian decoder with
σ = 0.1 + 0.9 softplus(·).

Shapes: a batch of B tasks has context x (…, B, n, d_x), y (…, B, n, d_y); leading axes (…) are
samples (latent draws, bootstrap sets, pseudo-context sets) and broadcast through every block.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

MIN_SIGMA = 0.1  # the decoder's and the latent's smallest standard deviation (both reference codes)


def mlp(d_in: int, d_hidden: int, d_out: int, depth: int) -> nn.Sequential:
    """``depth`` linear layers with ReLUs between them (depth ≥ 2)."""
    layers: list[nn.Module] = [nn.Linear(d_in, d_hidden), nn.ReLU()]
    for _ in range(depth - 2):
        layers += [nn.Linear(d_hidden, d_hidden), nn.ReLU()]
    layers.append(nn.Linear(d_hidden, d_out))
    return nn.Sequential(*layers)


class MultiHeadAttention(nn.Module):
    """MAB(Q, K) of the Set Transformer: H = LN(Q' + Attention(Q', K', V')), out = LN(H + ReLU(W H)),
    with Q' = W_q Q etc.; ``mask`` (…, n_k) drops keys (False = absent)."""

    def __init__(self, d_q: int, d_k: int, d_v: int, d_out: int, heads: int = 8):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(d_q, d_out), nn.Linear(d_k, d_out), nn.Linear(d_v, d_out)
        self.fc = nn.Linear(d_out, d_out)
        self.norm1, self.norm2 = nn.LayerNorm(d_out), nn.LayerNorm(d_out)

    def _split(self, t):
        return t.view(*t.shape[:-1], self.heads, t.shape[-1] // self.heads).transpose(-2, -3)

    def forward(self, query, key, value):
        q, k, v = self.q(query), self.k(key), self.v(value)
        attended = F.scaled_dot_product_attention(self._split(q), self._split(k), self._split(v),
                                                  scale=1.0 / math.sqrt(q.shape[-1]))
        out = self.norm1(q + attended.transpose(-2, -3).reshape(q.shape))
        return self.norm2(out + F.relu(self.fc(out)))


class SelfAttention(MultiHeadAttention):
    def __init__(self, d_in: int, d_out: int, heads: int = 8):
        super().__init__(d_in, d_in, d_in, d_out, heads)

    def forward(self, x):  # noqa: D102 - MAB(X, X)
        return super().forward(x, x, x)


class PoolingEncoder(nn.Module):
    """r = post(mean_i pre([x_i, y_i])) — a deterministic summary (``d_latent=None``) or a Normal
    over a latent z with σ = 0.1 + 0.9 sigmoid(·)."""

    def __init__(self, d_x: int, d_y: int, d_hidden: int = 128, d_latent: int | None = None,
                 self_attention: bool = False, pre_depth: int = 4, post_depth: int = 2):
        super().__init__()
        self.d_latent = d_latent
        if self_attention:
            self.pre = nn.Sequential(mlp(d_x + d_y, d_hidden, d_hidden, pre_depth - 2), nn.ReLU(),
                                     SelfAttention(d_hidden, d_hidden))
        else:
            self.pre = mlp(d_x + d_y, d_hidden, d_hidden, pre_depth)
        self.post = mlp(d_hidden, d_hidden, d_hidden if d_latent is None else 2 * d_latent, post_depth)

    def forward(self, x, y):
        out = self.post(self.pre(torch.cat([x, y], -1)).mean(-2))
        if self.d_latent is None:
            return out
        mu, raw = out.chunk(2, -1)
        return torch.distributions.Normal(mu, MIN_SIGMA + (1 - MIN_SIGMA) * torch.sigmoid(raw))


class CrossAttentionEncoder(nn.Module):
    """r(x_t) = Attention(q = f(x_t), k = f(x_c), v = g([x_c, y_c])) with a self-attentive g."""

    def __init__(self, d_x: int, d_y: int, d_hidden: int = 128, pre_depth: int = 4):
        super().__init__()
        self.value = nn.Sequential(mlp(d_x + d_y, d_hidden, d_hidden, pre_depth - 2), nn.ReLU(),
                                   SelfAttention(d_hidden, d_hidden))
        self.query_key = mlp(d_x, d_hidden, d_hidden, pre_depth)
        self.attention = MultiHeadAttention(d_hidden, d_hidden, d_hidden, d_hidden)

    def forward(self, xc, yc, xt):
        q, k = self.query_key(xt), self.query_key(xc)
        return self.attention(q, k, self.value(torch.cat([xc, yc], -1)))


class GaussianDecoder(nn.Module):
    """(μ, σ) at x_t from [x_t, r] (r broadcast over the targets, or given per target), σ = 0.1 + 0.9
    softplus; ``context`` (…, d) adds a second summary through its own linear map (BNP's adaptation)."""

    def __init__(self, d_x: int, d_y: int, d_encoding: int, d_hidden: int = 128, depth: int = 3,
                 context: int | None = None):
        super().__init__()
        self.fc = nn.Linear(d_x + d_encoding, d_hidden)
        self.fc_context = nn.Linear(context, d_hidden) if context else None
        self.rest = nn.Sequential(nn.ReLU(), mlp(d_hidden, d_hidden, 2 * d_y, depth - 1)) if depth > 2 else \
            nn.Sequential(nn.ReLU(), nn.Linear(d_hidden, 2 * d_y))

    def forward(self, encoding, xt, context=None, per_target: bool = False):
        """``encoding`` (…, B, d): one summary per task (broadcast over the targets), or with
        ``per_target`` (…, B, m, d); ``xt`` (B, m, d_x) or with the same leading axes."""
        if not per_target:
            encoding = encoding.unsqueeze(-2).expand(*encoding.shape[:-1], xt.shape[-2], encoding.shape[-1])
        lead = torch.broadcast_shapes(encoding.shape[:-1], xt.shape[:-1])
        encoding, xt = encoding.expand(*lead, encoding.shape[-1]), xt.expand(*lead, xt.shape[-1])
        hidden = self.fc(torch.cat([encoding, xt], -1))
        if self.fc_context is not None and context is not None:
            hidden = hidden + self.fc_context(context).unsqueeze(-2)
        mu, raw = self.rest(hidden).chunk(2, -1)
        return mu, MIN_SIGMA + (1 - MIN_SIGMA) * F.softplus(raw)


def gaussian_log_prob(mu, sigma, y):
    return -0.5 * ((y - mu) / sigma) ** 2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)


def logmeanexp(t, dim: int = 0):
    return torch.logsumexp(t, dim) - math.log(t.shape[dim])
