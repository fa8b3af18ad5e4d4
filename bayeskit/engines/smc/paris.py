"""PaRIS: online smoothing of additive functionals (Olsson & Westerborn 2017).

Target: E[h_init(x_0) + Σ_t h_t(x_t, x_{t+1}) | y_{0:T−1}]. Every particle i at time t+1 carries
a statistic τ_{t+1}^i. Draw K indices J_1..J_K from the backward kernel

    P(J = j) ∝ W_t^j q_t(ξ_t^j, ξ_{t+1}^i),   then   τ_{t+1}^i = (1/K) Σ_k (τ_t^{J_k} + h_t(ξ_t^{J_k}, ξ_{t+1}^i)),

and estimate the smoothed functional by Σ_i W_T^i τ_T^i. Memory O(N), independent of T;
the estimator is self-normalised, so biased, with bias O(1/N).

Backward draws:
* ``"exact"``: the full N × N matrix of backward weights per step, O(N²);
* ``"rejection"``: propose j ~ W_t and accept with probability q_t(ξ_t^j, ξ_{t+1}^i)/q̄ for a bound
  q̄ ≥ q_t (the model's ``transition_log_bound``): O(N) expected work (Douc et al. 2011). The pairs
  still pending after ``max_rounds`` rounds are drawn exactly, a batch of rows at a time (the
  hybrid of Dau & Chopin 2022), so the law is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.flatten_util
import jax.numpy as jnp

from ...core.checks import check_choice
from ...core.errors import ConfigError
from ...core.module import Module
from .resampling import _invert


def _draw_rows(key, logits, K):
    """K draws per row of `logits` (R, N) by inverse CDF: K·R uniforms instead of K·R·N Gumbels."""
    probs = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))
    cdf = jnp.cumsum(probs, axis=-1)
    u = jax.random.uniform(key, (logits.shape[0], K), dtype=cdf.dtype) * cdf[:, -1:]
    idx = jax.vmap(lambda c, v: jnp.searchsorted(c, v, side="right"))(cdf, u)
    return jnp.minimum(idx, logits.shape[-1] - 1).astype(jnp.int32).T  # (K, R)


def backward_exact(model, key, x, logW, x_new, t, K):
    """(K, N) indices J_k^i ~ P(J = j) ∝ W_t^j q_t(x^j, x_new^i)."""
    logits = logW[None, :] + model.transition_log_prob(x[None, :, :], x_new[:, None, :], t)
    return _draw_rows(key, logits, K)


def backward_rejection(model, key, x, logW, x_new, t, K, max_rounds=32, batch=32):
    """The same law by accept-reject against the bound log q̄ = model.transition_log_bound(t).

    After `max_rounds` rounds the draws still pending are made exactly, `batch` at a time (one
    row of N backward weights each), so the cost stays O(N) per particle and the law exact.
    """
    bound = model.transition_log_bound(t)
    n = x_new.shape[0]
    W = jnp.exp(logW)

    def body(state):
        J, done, k, rounds = state
        k, k_prop, k_acc = jax.random.split(k, 3)
        prop = _invert(W, jax.random.uniform(k_prop, (K, n), dtype=W.dtype))
        log_q = model.transition_log_prob(x[prop], x_new[None, :, :], t)
        accept = jnp.log(jax.random.uniform(k_acc, (K, n), dtype=W.dtype)) < log_q - bound
        take = accept & ~done
        return jnp.where(take, prop, J), done | accept, k, rounds + 1

    def pending(state):
        return ~jnp.all(state[1]) & (state[3] < max_rounds)

    key_loop, key_exact = jax.random.split(key)
    init = (jnp.zeros((K, n), jnp.int32), jnp.zeros((K, n), bool), key_loop, 0)
    J, done, _, _ = jax.lax.while_loop(pending, body, init)

    def exact_body(state):
        J, done, k = state
        k, k_draw = jax.random.split(k)
        slots = jnp.nonzero(~done.ravel(), size=batch, fill_value=0)[0]
        valid = ~done.ravel()[slots]
        rows = slots % n
        logits = logW[None, :] + model.transition_log_prob(x[None, :, :], x_new[rows][:, None, :], t)
        draws = _draw_rows(k_draw, logits, 1)[0]
        flat_J = J.ravel().at[slots].set(jnp.where(valid, draws, J.ravel()[slots]))
        flat_done = done.ravel().at[slots].set(done.ravel()[slots] | valid)
        return flat_J.reshape(K, n), flat_done.reshape(K, n), k

    J, _, _ = jax.lax.while_loop(lambda s: ~jnp.all(s[1]), exact_body, (J, done, key_exact))
    return J


class PaRISExtension(Module, pytree=False):
    """The PaRIS recursion as a particle-filter extension (see `filter.run`)."""

    functional: Callable  # h(x_t, x_{t+1}, t) -> (..., m) or (...)
    K: int = 2
    backward: str = "exact"
    initial: Callable | None = None  # h_init(x_0) -> (..., m)
    max_rounds: int = 32
    keep_indices: bool = False  # emit the backward indices (particle Gibbs traces its next path through them)

    def __check_init__(self):
        check_choice("backward", self.backward, ("exact", "rejection"))

    def check(self, model):
        if self.backward == "rejection" and model.transition_log_bound(0) is None:
            raise ConfigError(f"`backward='rejection'` needs a bound on the transition density: "
                              f"{type(model).__name__}.transition_log_bound returns None")

    def increment(self, model, x, x_new, t, y_next, observed, proposal=None):
        """h_t(x, x_new) as (..., m)."""
        value = self.functional(x, x_new, t)
        return value[..., None] if value.ndim == x.ndim - 1 else value

    def start(self, model, x0, y0, observed, proposal=None):
        """τ_0 = h_init(x_0) as (N, m), zeros without an initial functional."""
        shape = jax.eval_shape(lambda a: self.increment(model, a, a, 0, y0, observed, proposal), x0[:1]).shape
        if self.initial is None:
            return jnp.zeros((x0.shape[0], shape[-1]), x0.dtype)
        value = self.initial(x0)
        return value[:, None] if value.ndim == 1 else value

    def init(self, model, x0, logW0, y0, observed, proposal=None):
        return self.start(model, x0, y0, observed, proposal)

    def draw_backward(self, model, key, x, logW, x_new, t):
        """(K, N) backward indices by the configured scheme."""
        if self.backward == "exact":
            return backward_exact(model, key, x, logW, x_new, t, self.K)
        return backward_rejection(model, key, x, logW, x_new, t, self.K, self.max_rounds)

    def step(self, model, tau, key, x, logW, x_new, t, y_next, observed, proposal=None):
        J = self.draw_backward(model, key, x, logW, x_new, t)
        h = self.increment(model, x[J], jnp.broadcast_to(x_new[None], x[J].shape), t, y_next, observed,
                           proposal)  # (K, N, m)
        return jnp.mean(tau[J] + h, axis=0), (J if self.keep_indices else None)

    def final(self, model, tau, x, logW):
        return jnp.sum(jnp.exp(logW)[:, None] * tau, axis=0)


def _log_pair(m, a, b, t, y_next, observed):
    """log q_t(a, b) + log g_{t+1}(b, y_{t+1}) for single states a, b: the Fisher-identity term."""
    log_g = m.observation_log_prob(b[None], y_next, t + 1)[0]
    return m.transition_log_prob(a[None], b[None], t)[0] + jnp.where(observed, log_g, 0.0)


def _log_initial(m, a, y0, observed):
    """log μ(a) + log g_0(a, y_0) for a single state a."""
    log_g = m.observation_log_prob(a[None], y0, 0)[0]
    return m.initial_log_prob(a[None])[0] + jnp.where(observed, log_g, 0.0)


class ScoreExtension(PaRISExtension):
    """PaRIS for scores, additive functionals whose value is a gradient (``functional`` is unused).

    With ``wrt_model``, the score of the model by Fisher's identity (Cappé, Moulines & Rydén 2005, §10.2):

        ∇θ log p(y) = E[∇θ log μ(x_0) + ∇θ log g_0(x_0, y_0) + Σ_t ∇θ(log q_t(x_t, x_{t+1})
                      + log g_{t+1}(x_{t+1}, y_{t+1})) | y],

    raveled over ``jax.tree_util.tree_leaves(model)``. With ``wrt_proposal`` (a `ParametricProposal`
    passed to the filter), then E[∇φ log r_φ(x_{0:T−1} | y) | y], raveled over the proposal's
    leaves, and last E[log r_φ(x_{0:T−1} | y) | y] itself (the score-climbing objective).
    """

    functional: Callable | None = None
    wrt_model: bool = True
    wrt_proposal: bool = False

    @staticmethod
    def _grad(obj, f):
        """(*args) -> (∇ of f(obj, *args) in obj's leaves, raveled; the value f(obj, *args))."""
        leaves, treedef = jax.tree_util.tree_flatten(obj)

        def scalar(lv, *args):
            return f(jax.tree_util.tree_unflatten(treedef, lv), *args)

        def flat(*args):
            value, grads = jax.value_and_grad(scalar)(leaves, *args)
            return jnp.concatenate([jnp.ravel(g) for g in grads] + [jnp.zeros(0)]), value

        return flat

    def _pieces(self, model, proposal, model_term, proposal_term, *args):
        pieces = []
        if self.wrt_model:
            pieces.append(self._grad(model, model_term)(*args)[0])
        if self.wrt_proposal:
            grad, value = self._grad(proposal, proposal_term)(*args)
            pieces += [grad, value[None]]
        return jnp.concatenate(pieces)

    def increment(self, model, x, x_new, t, y_next, observed, proposal=None):
        def model_pair(m, a, b):
            return _log_pair(m, a, b, t, y_next, observed)

        def proposal_pair(r, a, b):
            return r.log_prob(a[None], b[None], y_next, t)[0]

        one = lambda a, b: self._pieces(model, proposal, model_pair, proposal_pair, a, b)  # noqa: E731
        g = jax.vmap(one)(x.reshape(-1, x.shape[-1]), x_new.reshape(-1, x.shape[-1]))
        return g.reshape(*x.shape[:-1], -1)

    def start(self, model, x0, y0, observed, proposal=None):
        def model_one(m, a):
            return _log_initial(m, a, y0, observed)

        def proposal_one(r, a):  # without an initial proposal, x_0 ~ μ does not depend on φ
            return r.initial_log_prob(a[None], y0)[0] if r.initial_log_prob is not None else jnp.zeros(())

        return jax.vmap(lambda a: self._pieces(model, proposal, model_one, proposal_one, a))(x0)


class InformationExtension(ScoreExtension):
    """The score and the observed information J = −∇²θ log p(y) by Louis' identity (1982),

        −∇² log p(y) = −E[∇² log p(x, y) | y] − Cov[∇ log p(x, y) | y],

    both terms from PaRIS: E[∇² log p(x, y) | y] is additive; for the covariance each particle also
    carries Υ^i ≈ E[S S^T | x_t = ξ^i] of the additive score S = Σ_s h_s, which obeys the same backward
    decomposition (h_t depends on (x_t, x_{t+1}) only):

        Υ_{t+1}^i = (1/K) Σ_k (Υ_t^J + τ_t^J h^T + h τ_t^{J T} + h h^T),   h = h_t(ξ_t^J, ξ_{t+1}^i).

    The final value is [score (m), J raveled (m²)] in the model's leaves.
    """

    def _hessian(self, model, f):
        leaves, treedef = jax.tree_util.tree_flatten(model)
        flat, unravel = jax.flatten_util.ravel_pytree(leaves)

        def scalar(v, *args):
            return f(jax.tree_util.tree_unflatten(treedef, unravel(v)), *args)

        def both(*args):
            g = jax.grad(scalar)(flat, *args)
            return g, jax.hessian(scalar)(flat, *args).ravel()

        return both

    def increment(self, model, x, x_new, t, y_next, observed, proposal=None):
        def pair(m, a, b):
            return _log_pair(m, a, b, t, y_next, observed)

        g, h = jax.vmap(self._hessian(model, pair))(x.reshape(-1, x.shape[-1]), x_new.reshape(-1, x.shape[-1]))
        return jnp.concatenate([g, h], -1).reshape(*x.shape[:-1], -1)

    def start(self, model, x0, y0, observed, proposal=None):
        def one(m, a):
            return _log_initial(m, a, y0, observed)

        g, h = jax.vmap(self._hessian(model, one))(x0)
        return jnp.concatenate([g, h], -1), g[:, :, None] * g[:, None, :]

    def init(self, model, x0, logW0, y0, observed, proposal=None):
        return self.start(model, x0, y0, observed, proposal)

    def step(self, model, carry, key, x, logW, x_new, t, y_next, observed, proposal=None):
        tau, upsilon = carry
        m = upsilon.shape[-1]
        J = self.draw_backward(model, key, x, logW, x_new, t)
        h = self.increment(model, x[J], jnp.broadcast_to(x_new[None], x[J].shape), t, y_next, observed)
        s, g = tau[J][..., :m], h[..., :m]  # (K, N, m): the score so far and this step's term
        outer = s[..., :, None] * g[..., None, :]
        upsilon_new = jnp.mean(upsilon[J] + outer + jnp.swapaxes(outer, -1, -2) + g[..., :, None] * g[..., None, :], 0)
        return (jnp.mean(tau[J] + h, axis=0), upsilon_new), (J if self.keep_indices else None)

    def final(self, model, carry, x, logW):
        tau, upsilon = carry
        W = jnp.exp(logW)
        m = upsilon.shape[-1]
        score = jnp.sum(W[:, None] * tau[:, :m], 0)
        hessian = jnp.sum(W[:, None] * tau[:, m:], 0).reshape(m, m)
        second = jnp.sum(W[:, None, None] * upsilon, 0)
        info = -hessian - (second - jnp.outer(score, score))
        return jnp.concatenate([score, (0.5 * (info + info.T)).ravel()])
