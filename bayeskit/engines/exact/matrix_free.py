"""Large-N scale-mixture processes: GPyTorch's matrix-free solvers for q and log|A|, bayeskit's
formula for everything after.

Every scale prior's marginal likelihood depends on the data only through q = yᵀA⁻¹y and
log|A| (`quadrature.log_marginal`). So the split is

    torch / linear_operator:  (q, log|A|) and their vector-Jacobian product in the kernel
                              hyperparameters and the noise (CG, SLQ, pivoted Cholesky);
    JAX:                      L = log_marginal(prior, n, q, log|A|), ∂L/∂q, ∂L/∂log|A|, ∂L/∂prior,

and the chain rule joins them: ∂L/∂θ = ∂L/∂q·∂q/∂θ + ∂L/∂log|A|·∂log|A|/∂θ, one torch backward
pass with those two weights. Inverse-gamma, quadrature priors and the GP share the code.
"""

from __future__ import annotations

import contextlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ...core.errors import ConfigError, ModelError
from ...core.posterior import check_n
from ...core.seeds import as_key, seed_sequence
from ...models.processes import blocked
from ...models.processes.process import hyperparameter_names
from ...models.processes.quadrature import log_marginal
from .posterior import ProcessPosterior
from .settings import MatrixFree

MAX_JOINT_F = 4096  # `sample` draws f jointly at the training inputs only up to this many points


def _torch_operator():
    try:
        from . import torch_operator
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "the matrix-free solver uses GPyTorch's linear algebra: install the torch extra "
            "(pip install 'bayeskit[torch]') or pass solver='cholesky'"
        ) from err
    return torch_operator


@contextlib.contextmanager
def solver_context(settings: MatrixFree, seed: int, evaluation: bool = False):
    """linear_operator configured by `settings`, probes drawn from a private torch RNG seeded with `seed`."""
    import torch
    from linear_operator import settings as ls

    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.random.fork_rng(devices=[]))
        tolerance = settings.eval_tolerance if evaluation else settings.tolerance
        for ctx in (ls.max_cholesky_size(0), ls.cg_tolerance(tolerance),
                    ls.max_cg_iterations(settings.max_iterations), ls.num_trace_samples(settings.probes),
                    ls.max_lanczos_quadrature_iterations(settings.lanczos_iterations),
                    ls.max_preconditioner_size(settings.preconditioner_rank), ls.min_preconditioning_size(0),
                    ls.max_root_decomposition_size(settings.love_rank)):
            stack.enter_context(ctx)
        torch.manual_seed(seed)
        yield


class MatrixFreeObjective:
    """log p(y | X, hyperparameters) and its gradient in every leaf of a process.

    The solver runs in float64 whatever the data's dtype (only a stored K may be float32, see
    `torch_operator.KernelSource`): A's condition number grows with N (a smooth kernel's top
    eigenvalue ≈ N·k̄ against the noise ε; κ ≈ 5e5 for a 1-D ReLU NNGP at N = 12,000, ε = 0.1),
    and once κ·2⁻²⁴ is not small, float32 CG and Lanczos lose orthogonality: Lanczos
    coefficients turned negative and log|A| NaN. float64 vectors cost O(N) a product, against
    the product's O(N²).
    """

    def __init__(self, process, X, y, settings: MatrixFree, source=None):
        import torch

        ops = _torch_operator()
        self.settings = settings
        self.treedef = jax.tree_util.tree_structure(process)
        names = hyperparameter_names(process)
        self.kernel_idx = [i for i, name in enumerate(names) if name.startswith("kernel.")]
        self.noise_idx, self.jitter_idx = names.index("noise"), names.index("jitter")
        self.n = y.shape[0]
        self.source = source or ops.KernelSource(process.kernel, X, settings.cache_dtype(self.n))
        self.y = torch.tensor(np.array(y), dtype=torch.float64, device=ops.torch_device())
        self._scale_part = jax.jit(jax.value_and_grad(self._log_marginal, argnums=(0, 1, 2)))

    def _log_marginal(self, leaves, q, logdet):
        return log_marginal(jax.tree_util.tree_unflatten(self.treedef, leaves).scale_prior, self.n, q, logdet)

    def operator(self, leaves, requires_grad: bool):
        """(A as a linear_operator, the kernel-hyperparameter tensor, the noise tensor)."""
        import torch

        ops = _torch_operator()
        theta = np.concatenate([np.ravel(np.asarray(leaves[i])) for i in self.kernel_idx])
        theta = torch.tensor(theta, dtype=self.y.dtype, device=self.y.device, requires_grad=requires_grad)
        noise = float(leaves[self.noise_idx]) + float(leaves[self.jitter_idx])
        if noise <= 0:
            raise ModelError("the matrix-free solver needs noise > 0 (CG on a singular kernel matrix diverges)")
        noise = torch.tensor(noise, dtype=self.y.dtype, device=self.y.device, requires_grad=requires_grad)
        return ops.covariance(self.source, theta, noise), theta, noise

    def value_and_grad(self, leaves, seed: int):
        """(log ML, [∂ log ML / ∂leaf for every leaf])."""
        import torch

        leaves = [jnp.asarray(v) for v in leaves]
        with solver_context(self.settings, seed):
            A, theta, noise = self.operator(leaves, requires_grad=True)
            q, logdet = A.inv_quad_logdet(inv_quad_rhs=self.y[:, None], logdet=True)
            value, (g_leaves, g_q, g_logdet) = self._scale_part(leaves, jnp.asarray(float(q.detach())),
                                                                 jnp.asarray(float(logdet.detach())))
            weights = [torch.tensor(float(g), dtype=q.dtype, device=q.device) for g in (g_q, g_logdet)]
            g_theta, g_noise = torch.autograd.grad([q, logdet], [theta, noise], grad_outputs=weights)
        grads = [np.asarray(g) for g in g_leaves]  # the scale prior's part (kernel and noise: 0 here)
        g_theta, offset = g_theta.cpu(), 0
        for i in self.kernel_idx:  # g_theta is the kernel leaves raveled in order
            size = grads[i].size
            grads[i] = grads[i] + g_theta.numpy()[offset:offset + size].reshape(grads[i].shape)
            offset += size
        grads[self.noise_idx] = grads[self.noise_idx] + float(g_noise)
        return float(value), grads


def fit_matrix_free(engine, settings: MatrixFree, process, X, y, key):
    """`bk.Exact.fit` with the matrix-free solver: type-II ML by Adam on log hyperparameters,
    each step's probes seeded from `key`."""
    import optax

    base_seed = int(seed_sequence(key).generate_state(1)[0] >> 1)
    objective = MatrixFreeObjective(process, X, y, settings)
    history = ()
    if engine.optimize:
        treedef, values, free, real = engine.free_leaves(process, y.dtype)
        values = [np.asarray(v) for v in values]
        n = y.shape[0]
        opt = optax.adam(engine.learning_rate)

        def leaves_of(theta):
            vals = list(values)
            for i, t in zip(free, theta, strict=True):
                vals[i] = np.asarray(t) if i in real else np.exp(np.asarray(t))
            return vals

        counter = iter(range(10**9))

        def step(theta, state):
            leaves = leaves_of(theta)
            value, grads = objective.value_and_grad(leaves, base_seed + next(counter))
            # loss = -log ML / n in θ = log(leaf): ∂loss/∂θ = -∂logML/∂leaf · leaf / n (θ = leaf if real)
            g = [jnp.asarray(-grads[i] * (1.0 if i in real else leaves[i]) / n) for i in free]
            updates, state = opt.update(g, state)
            return optax.apply_updates(theta, updates), state, -value / n

        theta = [jnp.asarray(values[i]) if i in real else jnp.log(values[i]) for i in free]

        def posterior(theta, history):
            return MatrixFreeProcessPosterior(jax.tree_util.tree_unflatten(treedef, leaves_of(theta)), X, y,
                                              tuple(history), engine=engine, settings=settings, seed=base_seed,
                                              source=objective.source)

        best, history = engine.optimise(step, theta, opt.init(theta), n, partial=posterior)
        return posterior(best, history)
    return MatrixFreeProcessPosterior(process, X, y, history, engine=engine, settings=settings, seed=base_seed,
                                      source=objective.source)


class MatrixFreeProcessPosterior(ProcessPosterior):
    """`ProcessPosterior` computed with matrix-free solvers: A⁻¹y by CG, log|A| by stochastic
    Lanczos quadrature (so ``log_marginal_likelihood`` is an estimate), predictive variances by
    LOVE (A⁻¹ ≈ R Rᵀ of rank ``love_rank``, slightly over-estimating the variance)."""

    def __init__(self, process, X, y, history=(), *, engine=None, settings: MatrixFree | None = None,
                 seed: int = 0, source=None):
        settings = MatrixFree() if settings is None else settings
        self.settings, self._seed = settings, int(seed)
        self._objective = MatrixFreeObjective(process, X, y, settings, source)
        super().__init__(process, X, y, history, engine=engine)

    def _factorise(self):
        import torch

        leaves = jax.tree_util.tree_leaves(self.process)
        y = self._objective.y
        with solver_context(self.settings, self._seed, evaluation=True), torch.no_grad():
            A, _, _ = self._objective.operator(leaves, requires_grad=False)
            _, logdet = A.inv_quad_logdet(inv_quad_rhs=y[:, None], logdet=True)
            alpha = A.solve(y[:, None])[:, 0]
            R = A.root_inv_decomposition(initial_vectors=y[:, None], method="lanczos").root.to_dense()
        self._objective.source.release()  # predictions need K(X_new, X) only
        ops = _torch_operator()
        dtype = torch.from_numpy(np.zeros((), self.y.dtype)).dtype  # predictions run in the data's dtype
        self._alpha, self._R = ops.to_jax(alpha.to(dtype)), ops.to_jax(R.to(dtype))
        return float(torch.dot(y, alpha)), float(logdet)

    def _root_product(self, Ks):
        return Ks.T @ self._R

    def _conditional(self, X_new, noisy):
        kernel = self.process.kernel
        mean, reduction = blocked.cross_moments(kernel, self.X, X_new, self._alpha, self._R,
                                                rows=blocked.block_rows(self.X.shape[0]))
        v = jnp.maximum(kernel.diag(X_new) - reduction, 0.0)
        return np.asarray(mean), np.asarray(v) + (self.process.noise if noisy else 0.0)

    def sample(self, n: int, seed=0) -> dict[str, np.ndarray]:
        """`n` posterior draws of σ² and, up to 4,096 training points, of f there (jointly, via LOVE);
        for more points draw functions where you need them with `sample_functions`."""
        n = check_n(n)
        if self.X.shape[0] <= MAX_JOINT_F:
            return super().sample(n, seed)
        warnings.warn(f"drawing σ² only: joint draws of f at {self.X.shape[0]} training inputs need an "
                      f"N x N factor; use sample_functions(X_new, n) at the inputs you need", UserWarning,
                      stacklevel=2)
        return {"sigma2": np.asarray(self._sample_s2(as_key(seed), n))}
