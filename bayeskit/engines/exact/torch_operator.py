"""GPyTorch's matrix-free solvers on a bayeskit kernel: a `LinearOperator` whose products come from JAX.

linear_operator (GPyTorch's linear algebra) solves A x = b by preconditioned CG, estimates log|A|
by stochastic Lanczos quadrature and builds LOVE's low-rank A⁻¹ ≈ R Rᵀ, touching A only through

* ``_matmul(V)`` = K V and ``_diagonal()``,
* ``_bilinear_derivative(U, V)`` = ∂/∂θ Σ U ⊙ (K V), which is all its backward pass needs,
* ``_get_indices`` for the few rows its pivoted-Cholesky preconditioner reads.

`KernelOperator` answers each from the JAX kernel (`blocked.py`), so the kernel formula is the
one the dense path differentiates, and K is never held whole unless a cache is chosen (a kernel
pass costs far more than a stored product: at N = 20,000 a ReLU NNGP takes ~11 s to evaluate,
a float32 product with 11 columns ~0.5 s). Importing this module imports torch and linear_operator.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import torch
from jax.flatten_util import ravel_pytree
from linear_operator.operators import AddedDiagLinearOperator, DiagLinearOperator, LinearOperator

from ...models.processes import blocked


def to_jax(t: torch.Tensor) -> jax.Array:
    """A torch tensor as a JAX array, zero-copy through DLPack when both sit on the same device."""
    t = t.detach().contiguous()
    try:
        return jax.dlpack.from_dlpack(t)
    except Exception:  # noqa: BLE001 - any DLPack refusal (device, dtype, layout): copy instead
        return jnp.asarray(t.cpu().numpy())


def to_torch(a, like: torch.Tensor) -> torch.Tensor:
    """A JAX array as a torch tensor on `like`'s device and dtype (zero-copy when they agree)."""
    try:
        out = torch.from_dlpack(a)
    except Exception:  # noqa: BLE001
        out = torch.tensor(np.asarray(a))
    return out.to(device=like.device, dtype=like.dtype)


def torch_device():
    """The torch device matching JAX's default backend, so products never cross the bus."""
    return torch.device("cuda") if jax.default_backend() == "gpu" and torch.cuda.is_available() else torch.device("cpu")


class KernelSource:
    """K(X, X) for a kernel structure: blocked products, gradients and an optional stored copy.

    ``cache_dtype`` (None, float32 or float64) keeps K once per hyperparameter value, so the
    dozens of CG products of one solve cost one kernel evaluation.

    Everything here runs in float64 (under ``jax.enable_x64``, whatever JAX's global setting and
    the data's dtype); only the stored K may be float32, to halve its memory. Products sum that
    float32 K in float64, a block of rows at a time. Why: on a CPU a float64 kernel pass costs
    what a float32 one does (the transcendental maps dominate), while float32 arithmetic is not
    enough once the noise ε is small against K. A 1-D ReLU NNGP at N = 2,000 and ε = 1e-3
    (float64 Cholesky as reference): summing N float32 terms K_ij v_j moved log p(y) by 3.5
    nats; a float32 kernel's derivative put ∂/∂σ_w² 20-50% off; a float64 kernel stored in
    float32 and summed in float64 is within 0.1 nats and 1e-4 of ∂/∂σ_w².
    """

    def __init__(self, kernel, X: jax.Array, cache_dtype=None):
        with jax.enable_x64(True):
            flat, self.unravel = ravel_pytree(kernel)
            self.flat, self.X = jnp.asarray(flat, jnp.float64), jnp.asarray(X, jnp.float64)
        self.n = X.shape[0]
        self.rows = blocked.block_rows(self.n)
        self.cache_dtype = cache_dtype
        self._cache_theta, self._cache = None, None
        # compiled once per index shape: the preconditioner reads one row at a time
        unravel = self.unravel
        self._diagonal = jax.jit(lambda theta, X: unravel(theta).diagonal(X))
        self._entries = jax.jit(lambda theta, Xr, Xc, r_inv, c_inv: unravel(theta)(Xr, Xc)[r_inv, c_inv])

    def kernel(self, theta: np.ndarray):
        """The kernel at flat float64 hyperparameters `theta` (call inside ``jax.enable_x64``)."""
        return self.unravel(jnp.asarray(theta, dtype=jnp.float64))

    def _stored(self, theta: np.ndarray):
        if self._cache_theta is None or not np.array_equal(self._cache_theta, theta):
            self._cache = None  # free the old matrix before building the new one
            self._cache = blocked.kernel_rows(self.kernel(theta), self.X, rows=self.rows,
                                              dtype=jnp.dtype(self.cache_dtype))
            self._cache_theta = theta.copy()
        return self._cache

    def matmul(self, theta: np.ndarray, V: torch.Tensor) -> torch.Tensor:
        """K V for a float64 (n, k) tensor."""
        with jax.enable_x64(True):
            Vj = to_jax(V)
            if self.cache_dtype is None:
                out = blocked.kernel_matmul(self.kernel(theta), self.X, self.X, Vj, rows=self.rows)
            else:
                out = _stored_matmul(self._stored(theta), Vj, min(PRODUCT_ROWS, self.n))
            return to_torch(out, V)

    def bilinear_grad(self, theta: np.ndarray, U: torch.Tensor, V: torch.Tensor) -> np.ndarray:
        """∂/∂theta Σ U ⊙ (K V) for float64 (n, k) tensors, flat."""
        with jax.enable_x64(True):
            grads = blocked.kernel_bilinear_grad(self.kernel(theta), self.X, to_jax(U), to_jax(V), rows=self.rows)
            return np.concatenate([np.ravel(np.asarray(g)) for g in grads])

    def diagonal(self, theta: jax.Array) -> jax.Array:
        with jax.enable_x64(True):
            return self._diagonal(theta, self.X)

    def entries(self, rows: np.ndarray, cols: np.ndarray):
        """theta ↦ K[rows[i], cols[i]] for broadcastable index arrays, via the unique rows and columns."""
        r, r_inv = np.unique(rows, return_inverse=True)
        c, c_inv = np.unique(cols, return_inverse=True)
        r_inv, c_inv = r_inv.reshape(rows.shape), c_inv.reshape(cols.shape)
        entries = functools.partial(self._entries, Xr=self.X[r], Xc=self.X[c], r_inv=r_inv, c_inv=c_inv)

        def call(theta):
            with jax.enable_x64(True):
                return entries(theta)

        return call

    def release(self):
        self._cache_theta, self._cache = None, None


PRODUCT_ROWS = 128  # rows of stored K converted to float64 at a time: they stay in cache for the product


def _stored_matmul_impl(K, V, rows):
    """K[:n] V in V's dtype, `rows` rows of K at a time; the last block is clamped to end at row n
    (it overlaps the one before and rewrites the same values)."""
    n = V.shape[0]

    def block(i, out):
        start = jnp.minimum(i * rows, n - rows)
        Kb = jax.lax.dynamic_slice_in_dim(K, start, rows).astype(V.dtype)
        return jax.lax.dynamic_update_slice_in_dim(out, Kb @ V, start, 0)

    return jax.lax.fori_loop(0, -(-n // rows), block, jnp.zeros(V.shape, V.dtype))


_stored_matmul = jax.jit(_stored_matmul_impl, static_argnums=2)


class JaxCall(torch.autograd.Function):
    """``fn(theta)`` for a JAX function of the flat float64 hyperparameter vector, differentiable
    in torch (backward = JAX's vector-Jacobian product), in float64 whatever JAX's global setting."""

    @staticmethod
    def forward(ctx, theta, fn):
        with jax.enable_x64(True):
            out, ctx.vjp = jax.vjp(fn, to_jax(theta.double()))
            return to_torch(out, theta)

    @staticmethod
    def backward(ctx, grad):
        with jax.enable_x64(True):
            (g,) = ctx.vjp(to_jax(grad.double()))
            return to_torch(g, grad), None


class KernelOperator(LinearOperator):
    """K(X, X) as a linear_operator; ``theta`` (a torch vector of the kernel's hyperparameters,
    possibly requiring grad) is its only tensor, so linear_operator's autograd reaches it."""

    def __init__(self, theta: torch.Tensor, *, source: KernelSource):
        super().__init__(theta, source=source)
        self.theta, self.source = theta, source

    def _values(self) -> np.ndarray:
        return self.theta.detach().cpu().numpy()

    def _size(self):
        return torch.Size((self.source.n, self.source.n))

    def _transpose_nonbatch(self):
        return self  # symmetric

    def _matmul(self, rhs):
        vector = rhs.ndim == 1
        V = rhs[:, None] if vector else rhs
        out = self.source.matmul(self._values(), V.contiguous())
        return out[:, 0] if vector else out

    # the preconditioner's log-determinant is differentiated through these two: keep them on the graph
    def _diagonal(self):
        return JaxCall.apply(self.theta, self.source.diagonal)

    def _get_indices(self, row_index, col_index, *batch_indices):
        rows, cols = np.broadcast_arrays(row_index.cpu().numpy(), col_index.cpu().numpy())
        return JaxCall.apply(self.theta, self.source.entries(rows, cols))

    def _bilinear_derivative(self, left_vecs, right_vecs):
        if not self.theta.requires_grad:
            return (None,)
        U = left_vecs[:, None] if left_vecs.ndim == 1 else left_vecs
        V = right_vecs[:, None] if right_vecs.ndim == 1 else right_vecs
        grad = self.source.bilinear_grad(self._values(), U.contiguous(), V.contiguous())
        return (torch.from_numpy(grad).to(device=self.theta.device, dtype=self.theta.dtype),)


def covariance(source: KernelSource, theta: torch.Tensor, noise: torch.Tensor) -> LinearOperator:
    """A = K + noise·I as a linear_operator."""
    return AddedDiagLinearOperator(KernelOperator(theta, source=source), DiagLinearOperator(noise.expand(source.n)))
