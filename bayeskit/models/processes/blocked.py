"""Kernel-matrix products computed a block of rows at a time: K is never held whole.

For N = 50,000 the kernel matrix has 2.5e9 entries (20 GB in float64), so matrix-free solvers
only ever ask for products K·V and for the hyperparameter gradient of the bilinear form
Σ_k u_kᵀ K v_k. Both run here in JAX over row blocks of B rows (B·N entries at a time; the last
block is padded with copies of the last input, whose rows are dropped or weighted by zero), fused
with the kernel formula, so memory is O(B·N) and the kernel is the same JAX code the dense path uses.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

BLOCK_ENTRIES = 2**24  # entries of one block of kernel rows (128 MiB in float64)


def block_rows(n_cols: int) -> int:
    """Rows per block for a kernel with ``n_cols`` columns."""
    return max(1, min(BLOCK_ENTRIES // max(n_cols, 1), n_cols))


def _blocks(x, rows, mode="edge"):
    """(n_blocks, rows, ...) view of `x`, padded with copies of its last row (``mode="edge"``, for
    inputs) or with zeros (``"constant"``, for weights).

    Inputs are never padded with zeros: the origin is no input of the data, and a kernel may have
    a non-finite derivative there (ReLU NNGP without bias: √(ab) at a = 0), which a zero weight
    cannot cancel (0·NaN = NaN)."""
    n = x.shape[0]
    pad = (-n) % rows
    x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1), mode=mode)
    return x.reshape(-1, rows, *x.shape[1:])


@functools.partial(jax.jit, static_argnames=("rows",))
def kernel_matmul(kernel, X1, X2, V, *, rows):
    """K(X1, X2) @ V, computed over blocks of `rows` rows of X1."""
    out = jax.lax.map(lambda xb: kernel(xb, X2) @ V, _blocks(X1, rows))
    return out.reshape(-1, V.shape[1])[: X1.shape[0]]


@functools.partial(jax.jit, static_argnames=("rows",))
def kernel_bilinear_grad(kernel, X, U, V, *, rows):
    """∂/∂leaves of Σ U ⊙ (K(X, X) V), as the list of the kernel's leaves' gradients (a list, not a
    kernel: gradients may be negative), one block's graph at a time."""
    leaves, treedef = jax.tree_util.tree_flatten(kernel)

    def block_grad(xb, ub):
        return jax.grad(lambda lv: jnp.sum(ub * (jax.tree_util.tree_unflatten(treedef, lv)(xb, X) @ V)))(leaves)

    def step(acc, block):
        return [a + g for a, g in zip(acc, block_grad(*block), strict=True)], None

    blocks = (_blocks(X, rows), _blocks(U, rows, "constant"))
    total, _ = jax.lax.scan(step, [jnp.zeros_like(v) for v in leaves], blocks)
    return total


@functools.partial(jax.jit, static_argnames=("rows", "dtype"))
def kernel_rows(kernel, X, *, rows, dtype):
    """The whole K(X, X) in `dtype`, shape (n_padded, n): built block by block, padded rows last."""
    return jax.lax.map(lambda xb: kernel(xb, X).astype(dtype), _blocks(X, rows)).reshape(-1, X.shape[0])


@functools.partial(jax.jit, static_argnames=("rows",))
def cross_moments(kernel, X, X_new, alpha, R, *, rows):
    """For test blocks: (K*ₓα, ‖K*ₓR‖² per row), the predictive mean and the variance reduction
    when A⁻¹ ≈ R Rᵀ (LOVE)."""

    def block(xb):
        W = kernel(xb, X) @ jnp.concatenate([alpha[:, None], R], axis=1)
        return W[:, 0], jnp.sum(W[:, 1:] ** 2, axis=1)

    mean, reduction = jax.lax.map(block, _blocks(X_new, rows))
    m = X_new.shape[0]
    return mean.reshape(-1)[:m], reduction.reshape(-1)[:m]
