"""The PFN transformer (Müller et al. 2022): datasets in, predictive distributions out.

Context points become tokens enc_x(x) + enc_y(y), query points enc_x(x); no positional encoding,
so the output cannot depend on the order of the context. Each post-LN layer lets the context
attend to the context and each query attend to the context only, so a query's prediction does
not depend on the other queries: one attention of all tokens over the context tokens (keys and
values cut to the first n rows), with no (n+m)² mask built. A Linear-GELU-Linear decoder maps
each query token to logits over the bar distribution's buckets.
"""

from __future__ import annotations

import torch
from torch import nn

from ...core.checks import check_int, check_real
from ...core.errors import ConfigError, DataError


class _Layer(nn.Module):
    """One post-LN transformer layer over [context; queries]: every token attends to the context
    tokens only (keys and values from the first n rows), then a GELU feed-forward; each step is
    residual + LayerNorm. Context-to-context plus query-to-context attention is exactly this one
    attention with K, V cut to the context: no mask, one pass of each linear map."""

    def __init__(self, d_model: int, heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.feed_forward = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout),
                                          nn.Linear(d_ff, d_model))
        self.norm_attention = nn.LayerNorm(d_model)
        self.norm_feed_forward = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.attention_dropout = dropout

    def forward(self, tokens, n_context: int):
        B, L, d = tokens.shape
        q, k, v = self.qkv(tokens).view(B, L, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attended = nn.functional.scaled_dot_product_attention(
            q, k[:, :, :n_context], v[:, :, :n_context], dropout_p=self.attention_dropout if self.training else 0.0)
        attended = self.out(attended.transpose(1, 2).reshape(B, L, d))
        tokens = self.norm_attention(tokens + self.dropout(attended))
        return self.norm_feed_forward(tokens + self.dropout(self.feed_forward(tokens)))


class PFNTransformer(nn.Module):
    """``forward(x_context (B, n, d), y_context (B, n), x_query (B, m, d)) -> logits (B, m, K)``."""

    def __init__(self, x_dim: int, num_buckets: int, d_model: int = 256, layers: int = 6, heads: int = 4,
                 d_ff: int | None = None, dropout: float = 0.0):
        super().__init__()
        for name, value, low in (("x_dim", x_dim, 1), ("num_buckets", num_buckets, 2), ("d_model", d_model, 1),
                                 ("layers", layers, 1), ("heads", heads, 1)):
            check_int(name, value, low)
        if d_model % heads:
            raise ConfigError(f"`d_model` ({d_model}) must be a multiple of `heads` ({heads})")
        check_real("dropout", dropout, 0.0, 1.0, high_open=True)
        d_ff = 2 * d_model if d_ff is None else d_ff
        self.config = {"x_dim": x_dim, "num_buckets": num_buckets, "d_model": d_model, "layers": layers,
                       "heads": heads, "d_ff": d_ff, "dropout": dropout}
        self.enc_x = nn.Linear(x_dim, d_model)
        self.enc_y = nn.Linear(1, d_model)
        self.layers = nn.ModuleList(_Layer(d_model, heads, d_ff, dropout) for _ in range(layers))
        self.decoder = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, num_buckets))

    @property
    def x_dim(self) -> int:
        return self.config["x_dim"]

    def forward(self, x_context, y_context, x_query):
        check_shapes(x_context, y_context, x_query, self.x_dim)
        n = x_context.shape[1]
        tokens = self.enc_x(torch.cat([x_context, x_query], 1))
        tokens = torch.cat([tokens[:, :n] + self.enc_y(y_context.unsqueeze(-1)), tokens[:, n:]], 1)
        for layer in self.layers:
            tokens = layer(tokens, n)
        return self.decoder(tokens[:, n:])


def check_shapes(x_context, y_context, x_query, x_dim: int) -> None:
    """Named errors for inputs a PFN cannot read."""
    if x_context.ndim != 3 or x_query.ndim != 3 or y_context.ndim != 2:
        raise DataError(f"a PFN reads x_context (B, n, d), y_context (B, n) and x_query (B, m, d), got shapes "
                        f"{tuple(x_context.shape)}, {tuple(y_context.shape)} and {tuple(x_query.shape)}")
    if x_context.shape[-1] != x_dim or x_query.shape[-1] != x_dim:
        raise DataError(f"the network was trained on {x_dim}-dimensional inputs; `X` has "
                        f"{x_context.shape[-1] if x_context.shape[-1] != x_dim else x_query.shape[-1]} columns")
    if x_context.shape[:2] != y_context.shape:
        raise DataError(f"x_context {tuple(x_context.shape)} and y_context {tuple(y_context.shape)} disagree "
                        f"in their (batch, points) shape")
    if x_context.shape[1] < 1:
        raise DataError("a PFN needs at least one context point")
