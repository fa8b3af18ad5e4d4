"""The PFN transformer's forward pass compiled by XLA, for prediction on the CPU.

A trained network answers in one forward pass; in eager PyTorch that pass at the sizes a PFN is
used at (tens of context points, d = 64) is mostly per-operation overhead, about 2 ms for the
tiny network. The same arithmetic as one XLA program, with the weights copied out of the torch
module once, takes about half of that on 2 CPU cores, where the pass is then bound by its
arithmetic (about 50 MFLOP for 120 tokens). Training stays in PyTorch; this module only reads weights.

Shapes are padded up to a coarse grid (padded context tokens are masked out of every attention,
padded queries are dropped), so a new program is compiled for a new size class, not for every
new dataset size. Results equal the torch forward pass to float32 rounding (tested).
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np


def params_of(network) -> dict:
    """The network's weights as float32 JAX arrays, in a pytree the forward pass reads."""
    state = {k: jnp.asarray(v.detach().cpu().numpy(), dtype=jnp.float32) for k, v in network.state_dict().items()}

    def linear(prefix):
        return state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]

    layers = [{"qkv": linear(f"layers.{i}.qkv"), "out": linear(f"layers.{i}.out"),
               "ff1": linear(f"layers.{i}.feed_forward.0"), "ff2": linear(f"layers.{i}.feed_forward.3"),
               "norm_attention": (state[f"layers.{i}.norm_attention.weight"], state[f"layers.{i}.norm_attention.bias"]),
               "norm_feed_forward": (state[f"layers.{i}.norm_feed_forward.weight"],
                                     state[f"layers.{i}.norm_feed_forward.bias"])}
              for i in range(network.config["layers"])]
    return {"enc_x": linear("enc_x"), "enc_y": linear("enc_y"), "layers": layers,
            "dec1": linear("decoder.0"), "dec2": linear("decoder.2")}


def _dense(p, x):
    return x @ p[0] + p[1]


def _layer_norm(p, x, eps=1e-5):  # torch.nn.LayerNorm's default eps
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps) * p[0] + p[1]


@partial(jax.jit, static_argnames="heads")
def _forward(params, x_context, y_context, x_query, n_valid, *, heads: int):
    """Logits (B, m, K); the first ``n_valid`` of the n context rows are real, the rest padding."""
    B, n, _ = x_context.shape
    tokens = _dense(params["enc_x"], jnp.concatenate([x_context, x_query], 1))
    tokens = tokens.at[:, :n].add(_dense(params["enc_y"], y_context[..., None]))
    L, d = tokens.shape[1], tokens.shape[2]
    head = d // heads
    key_mask = jnp.where(jnp.arange(n) < n_valid, 0.0, -jnp.inf).astype(tokens.dtype)  # padded keys get no weight
    for p in params["layers"]:
        qkv = _dense(p["qkv"], tokens).reshape(B, L, 3, heads, head)
        q, k, v = qkv[:, :, 0], qkv[:, :n, 1], qkv[:, :n, 2]  # (B, L or n, heads, head)
        scores = jnp.einsum("blhe,bnhe->bhln", q, k) / math.sqrt(head) + key_mask
        attended = jnp.einsum("bhln,bnhe->blhe", jax.nn.softmax(scores, -1), v).reshape(B, L, d)
        tokens = _layer_norm(p["norm_attention"], tokens + _dense(p["out"], attended))
        ff = _dense(p["ff2"], jax.nn.gelu(_dense(p["ff1"], tokens), approximate=False))
        tokens = _layer_norm(p["norm_feed_forward"], tokens + ff)
    return _dense(params["dec2"], jax.nn.gelu(_dense(params["dec1"], tokens[:, n:]), approximate=False))


def _padded(size: int) -> int:
    """Sizes round up to a multiple of 8 up to 64, of 32 up to 512, of 128 beyond: few programs,
    little wasted arithmetic (the pass costs in proportion to the tokens)."""
    step = 8 if size <= 64 else 32 if size <= 512 else 128
    return -(-size // step) * step


def logits(params, heads: int, x_context, y_context, x_query) -> np.ndarray:
    """Bucket logits (B, m, K) as float32 NumPy, from inputs already standardised (NumPy float)."""
    B, n, d = x_context.shape
    m = x_query.shape[1]
    n_pad, m_pad = _padded(n), _padded(m)
    xc = np.zeros((B, n_pad, d), np.float32)
    xc[:, :n] = x_context
    yc = np.zeros((B, n_pad), np.float32)
    yc[:, :n] = y_context
    xq = np.zeros((B, m_pad, d), np.float32)
    xq[:, :m] = x_query
    return np.asarray(_forward(params, xc, yc, xq, np.int32(n), heads=heads))[:, :m]
