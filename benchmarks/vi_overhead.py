"""Time per gradient step of `bk.VI` against a hand-written optax ELBO loop and NumPyro's SVI, on the
same model and guide, in one process.

Workloads:
* ``logistic``: Bayesian logistic regression (N = 500, D = 10), mean-field normal guide (bayeskit
  "mean_field" and NumPyro `AutoNormal` are the same family; the hand-written loop uses loc and
  softplus scale, as `AutoNormal` does).
* ``vae``: a VAE on sklearn's bundled ``load_digits`` (8 × 8, binarised), latent 8, one hidden layer
  of 64 in the encoder and decoder, at batch sizes 64…1024 (the analogue of the PLDI paper's
  Table 1): the model owns the decoder's parameters and the guide the encoder's.

Per-step time is (t(S₂) − t(S₁)) / (S₂ − S₁) for S₁ = 500 and S₂ = 2,500 steps (10× both for the
logistic regression, whose steps take microseconds; compilation, initialisation and posterior
draws cancel), each t the best of 5 after a warm-up run. The two peers
get their best case: NumPyro's ``SVI.update`` and the hand-written optax step each run inside one
compiled loop (``SVI.run`` recompiles on every call; a Python loop over a jitted step pays ~100 µs
of dispatch per step). bayeskit runs its own compiled chunks of steps, through ``bk.fit``.

bayeskit records the objective at every step (the trace, the NaN check), as ``SVI.run`` and any
loop that logs its loss do; a loop that drops the loss lets XLA skip computing it (for the VAE the
Bernoulli log-likelihood's softplus over every pixel: ~20% of a step). So each peer runs twice:
recording its loss per step (``lax.scan``; the like-for-like ratio) and dropping it (``fori_loop``).
Ratios < 1 mean bayeskit is faster.

    python benchmarks/vi_overhead.py [--workloads logistic vae] [--batches 64 256 1024]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
import optax  # noqa: E402

import bayeskit as bk  # noqa: E402

S1, S2 = 500, 2500


def per_step(run, s1=S1, s2=S2):
    """(t(s2) - t(s1)) / (s2 - s1), each t the best of 5 after one warm-up run."""
    run(s1)
    run(s2)

    def best(steps):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            run(steps)
            times.append(time.perf_counter() - t0)
        return min(times)

    return (best(s2) - best(s1)) / (s2 - s1)


# -- logistic regression -------------------------------------------------------------------------
def logistic_model(X, y=None):
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
    numpyro.sample("y", dist.Bernoulli(logits=X @ w), obs=y)


def logistic_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 10))
    y = (rng.uniform(size=500) < 1 / (1 + np.exp(-X @ rng.normal(size=10)))).astype(float)
    return {"X": X, "y": y}


def handwritten_logistic(data, lr=0.01):
    X, y = jnp.asarray(data["X"]), jnp.asarray(data["y"])
    D = X.shape[1]

    def elbo(params, key):
        loc, scale = params["loc"], jax.nn.softplus(params["raw_scale"])
        eps = jax.random.normal(key, (D,))
        w = loc + scale * eps
        log_p = jnp.sum(dist.Normal(0, 1).log_prob(w)) + jnp.sum(dist.Bernoulli(logits=X @ w).log_prob(y))
        log_q = jnp.sum(dist.Normal(loc, scale).log_prob(w))
        return log_p - log_q

    return elbo, {"loc": jnp.zeros(D), "raw_scale": jnp.full(D, -2.0)}, lr


# -- VAE on digits ---------------------------------------------------------------------------------
HIDDEN, LATENT = 64, 8


def _mlp(prefix, sizes, key=None):
    params = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        W = numpyro.param(f"{prefix}_W{i}", lambda k, a=a, b=b: jax.random.normal(k, (a, b)) / np.sqrt(a))
        c = numpyro.param(f"{prefix}_b{i}", jnp.zeros(b))
        params.append((W, c))
    return params


def _apply(params, h):
    for i, (W, c) in enumerate(params):
        h = h @ W + c
        if i < len(params) - 1:
            h = jnp.tanh(h)
    return h


def vae_model(x):
    decoder = _mlp("dec", (LATENT, HIDDEN, 64))
    with numpyro.plate("batch", x.shape[0]):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([LATENT]).to_event(1))
        numpyro.sample("x", dist.Bernoulli(logits=_apply(decoder, z)).to_event(1), obs=x)


def vae_guide(x):
    encoder = _mlp("enc", (64, HIDDEN, 2 * LATENT))
    with numpyro.plate("batch", x.shape[0]):
        out = _apply(encoder, x)
        numpyro.sample("z", dist.Normal(out[:, :LATENT], jax.nn.softplus(out[:, LATENT:]) + 1e-3).to_event(1))


def digits(batch):
    from sklearn.datasets import load_digits

    images = (load_digits().data > 8).astype(float)
    reps = int(np.ceil(batch / images.shape[0]))
    return {"x": np.tile(images, (reps, 1))[:batch]}


def handwritten_vae(data, lr=0.01):
    x = jnp.asarray(data["x"])
    key = jax.random.key(0)
    ks = jax.random.split(key, 4)

    def layer(k, a, b):
        return {"W": jax.random.normal(k, (a, b)) / np.sqrt(a), "b": jnp.zeros(b)}

    params = {"enc": [layer(ks[0], 64, HIDDEN), layer(ks[1], HIDDEN, 2 * LATENT)],
              "dec": [layer(ks[2], LATENT, HIDDEN), layer(ks[3], HIDDEN, 64)]}

    def apply(ps, h):
        for i, p in enumerate(ps):
            h = h @ p["W"] + p["b"]
            if i < len(ps) - 1:
                h = jnp.tanh(h)
        return h

    def elbo(params, key):
        out = apply(params["enc"], x)
        loc, scale = out[:, :LATENT], jax.nn.softplus(out[:, LATENT:]) + 1e-3
        z = loc + scale * jax.random.normal(key, loc.shape)
        logits = apply(params["dec"], z)
        log_p = jnp.sum(dist.Normal(0, 1).log_prob(z)) + jnp.sum(dist.Bernoulli(logits=logits).log_prob(x))
        return log_p - jnp.sum(dist.Normal(loc, scale).log_prob(z))

    return elbo, params, lr


# -- the three runners --------------------------------------------------------------------------------
def _compiled_loop(update, state, record: bool):
    """run(steps): `steps` calls of ``update(t, state) -> (state, loss)`` in one compiled loop
    (compiled once per step count), the losses stacked (``record``) or dropped."""
    @functools.partial(jax.jit, static_argnums=1)
    def loop(state, steps):
        if record:
            return jax.lax.scan(lambda s, t: update(t, s), state, jnp.arange(steps))
        return jax.lax.fori_loop(0, steps, lambda t, s: update(t, s)[0], state)

    def run(steps):
        jax.block_until_ready(loop(state, steps))

    return run


def run_handwritten(elbo, params, lr, record):
    opt = optax.adam(lr)
    key = jax.random.key(1)

    def update(t, state):
        params, opt_state = state
        loss, grads = jax.value_and_grad(lambda p: -elbo(p, jax.random.fold_in(key, t)))(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return _compiled_loop(update, (params, opt.init(params)), record)


def run_numpyro(model, guide, data, lr, record):
    from numpyro.infer import SVI, Trace_ELBO

    svi = SVI(model, guide, optax.adam(lr), Trace_ELBO())
    state = svi.init(jax.random.key(1), **data)
    return _compiled_loop(lambda t, s: svi.update(s, **data), state, record)


def run_bayeskit(model, guide, data, lr):
    def run(steps):
        bk.fit(model, data, seed=1, engine=bk.VI(guide=guide, steps=steps, learning_rate=lr, draws=1, progress=False))

    return run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", nargs="+", choices=("logistic", "vae"), default=["logistic", "vae"])
    p.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024])
    args = p.parse_args(argv)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; JAX {jax.__version__}, "
          f"NumPyro {numpyro.__version__}; float64; per-step times in µs\n")
    print("Peers recording their loss each step, as bayeskit does (dropping it, in brackets):\n")
    print("| workload | hand-written optax | NumPyro SVI | bayeskit VI | bayeskit / hand-written "
          "| bayeskit / NumPyro |")
    print("|---|---:|---:|---:|---:|---:|")
    jobs = []
    if "logistic" in args.workloads:
        from numpyro.infer.autoguide import AutoNormal

        data = logistic_data()
        guide = AutoNormal(logistic_model)
        jobs.append(("logistic regression, mean field", lambda r, d=data: run_handwritten(*handwritten_logistic(d), r),
                     lambda r, d=data, g=guide: run_numpyro(logistic_model, g, d, 0.01, r),
                     run_bayeskit(logistic_model, "mean_field", data, 0.01)))
    if "vae" in args.workloads:
        for batch in args.batches:
            data = digits(batch)
            jobs.append((f"VAE on digits, batch {batch}", lambda r, d=data: run_handwritten(*handwritten_vae(d), r),
                         lambda r, d=data: run_numpyro(vae_model, vae_guide, d, 0.01, r),
                         run_bayeskit(vae_model, vae_guide, data, 0.01)))
    for name, hand, numpyro_run, ours in jobs:
        steps = (10 * S1, 10 * S2) if name.startswith("logistic") else (S1, S2)
        t_bk = per_step(ours, *steps) * 1e6
        t_hand, t_hand_drop = (per_step(hand(r), *steps) * 1e6 for r in (True, False))
        t_np, t_np_drop = (per_step(numpyro_run(r), *steps) * 1e6 for r in (True, False))
        print(f"| {name} | {t_hand:.1f} ({t_hand_drop:.1f}) | {t_np:.1f} ({t_np_drop:.1f}) | {t_bk:.1f} "
              f"| **{t_bk / t_hand:.2f}** ({t_bk / t_hand_drop:.2f}) "
              f"| **{t_bk / t_np:.2f}** ({t_bk / t_np_drop:.2f}) |", flush=True)


if __name__ == "__main__":
    main()
