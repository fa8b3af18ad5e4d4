"""The 1-D GP benchmark of the neural-process literature: CNP, NP, ANP, BNP, MPNP and MPANP trained
identically (`bk.pfn.NP_CPU`: the papers' depths at width 64, 5,000 steps of 32 RBF tasks, Adam 5e-4
with cosine decay, one torch thread each), tested on RBF, Matérn-5/2, periodic and t-noise tasks
(`bayeskit.datasets.gp_tasks`) beside the exact GP with each task's true hyperparameters (the oracle).

Reported per model and test kernel, over T test tasks (default 1,000; n ~ U{3 … 47} context points and
U{3 … 50 − n} targets per task): the context and target log-likelihood per point, each point's
predictive the mixture over 50 network samples (log-mean-exp per point, then averaged over the
task's points, then over tasks), ± one standard error over tasks. Also: training time per model, and
the prediction time of one task by MPNP, the exact GP (true hyperparameters) and NUTS on a GP with
hyperpriors (uniform priors as the task prior, 1 chain × (500 + 500), f integrated out).

    python benchmarks/np_gp.py train mpnp [--steps 5000] [--variant no-pseudo]   # one model -> results/np_gp/
    python benchmarks/np_gp.py train mpnp --preset paper                          # the papers' size, on a GPU
    python benchmarks/np_gp.py evaluate [--tasks 1000] [--markdown table.md]      # the table, from saved models

Variants ablate MPNP's loss terms (`NPTraining.amortised_weight`, default 1; `pseudo_weight`, default 0):
"no-amortised", "with-pseudo", "with-pseudo-no-amortised" (MPANP: "with-pseudo").
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import bayeskit as bk  # noqa: E402
from bayeskit.datasets.gp_tasks import KERNELS, MAX_POINTS, NOISE_SD, gp_tasks  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "np_gp"
MODELS = ("cnp", "np", "anp", "bnp", "mpnp", "mpanp")
VARIANTS = {"": {}, "no-amortised": {"amortised_weight": 0.0}, "with-pseudo": {"pseudo_weight": 1.0},
            "with-pseudo-no-amortised": {"pseudo_weight": 1.0, "amortised_weight": 0.0}}
SAMPLES = 50


def name_of(model: str, variant: str = "") -> str:
    return model + (f"-{variant}" if variant else "")


def train(model: str, variant: str, steps: int | None, seed: int, preset: str = "cpu") -> None:
    base = bk.pfn.NP_CPU if preset == "cpu" else bk.pfn.NP_PAPER
    settings = dataclasses.replace(base, model=model, device="cpu" if preset == "cpu" else "auto", **VARIANTS[variant])
    if steps:
        settings = dataclasses.replace(settings, steps=steps)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = name_of(model, variant)
    start = time.perf_counter()
    trained = bk.pfn.train(gp_tasks("rbf"), settings, seed=seed, progress=False,
                           checkpoint=str(RESULTS / f"{name}.ckpt"), resume=os.path.exists(RESULTS / f"{name}.ckpt"),
                           checkpoint_every=500)
    seconds = time.perf_counter() - start
    trained.save(RESULTS / f"{name}.np")
    (RESULTS / f"{name}.seconds").write_text(f"{seconds:.1f}\n")
    print(f"{name}: {seconds:.0f} s, final loss {trained.history[-100:].mean():.3f}", flush=True)


# -- test tasks and the oracle -------------------------------------------------------------------------
def test_tasks(kernel: str, tasks: int, seed: int = 42):
    """x (T, 50, 1), y (T, 50), the tasks' processes, and per task (n context, n points)."""
    x, y, params = gp_tasks(kernel).sample_with_parameters(jax.random.PRNGKey(seed), tasks, MAX_POINTS)
    rng = np.random.default_rng(seed)
    n = rng.integers(3, 48, tasks)
    used = n + np.array([rng.integers(3, MAX_POINTS - k + 1) for k in n])
    return np.asarray(x), np.asarray(y), params["process"], n, used


def oracle(x, y, processes, n, used):
    """Per task (context ll, target ll) of the exact GP with the task's true kernel and noise."""
    from scipy.stats import norm

    grams = np.asarray(jax.jit(jax.vmap(lambda p, xs: p.kernel(xs)))(processes, x))  # (T, 50, 50), one call
    out = []
    for t in range(x.shape[0]):
        ys = y[t, : used[t]]
        K = grams[t, : used[t], : used[t]]
        c = n[t]
        A = K[:c, :c] + NOISE_SD**2 * np.eye(c)
        L = np.linalg.cholesky(A)
        solve = lambda b, L=L: np.linalg.solve(L.T, np.linalg.solve(L, b))  # noqa: E731
        mean = K[:, :c] @ solve(ys[:c])
        var = np.diag(K) - np.einsum("ij,ji->i", K[:, :c], solve(K[:c, :]))
        lp = norm.logpdf(ys, mean, np.sqrt(np.maximum(var, 0) + NOISE_SD**2))
        out.append((lp[:c].mean(), lp[c:].mean()))
    return np.array(out)


def network_scores(trained, x, y, n, used, samples: int = SAMPLES, seed: int = 0):
    """Per task (context ll, target ll). Tasks with the same context size run as one batch, each
    predicted at all its 50 points: a prediction does not depend on the other queries (tested), so
    the points a task does not use are simply not scored."""
    from scipy.special import logsumexp
    from scipy.stats import norm

    out = np.zeros((x.shape[0], 2))
    for c in np.unique(n):
        idx = np.flatnonzero(n == c)
        mu, sigma = trained.mixture(x[idx, :c], y[idx, :c], x[idx], samples=samples, seed=seed + int(c))
        lp = logsumexp(norm.logpdf(y[idx], mu, sigma), axis=0) - np.log(mu.shape[0])  # (tasks, 50)
        for row, t in enumerate(idx):
            out[t] = lp[row, :c].mean(), lp[row, c:used[t]].mean()
    return out


def prediction_times(trained, repeats: int = 20):
    """Seconds per task (30 context points, 100 test inputs): MPNP forward, exact GP, NUTS + its mixture."""
    from bayeskit.models.processes import numpyro_model

    x, y, processes, _, _ = test_tasks("rbf", 1, seed=7)
    xc, yc = x[0, :30], y[0, :30]
    xq = np.linspace(-2, 2, 100)[:, None]
    start = time.perf_counter()
    for r in range(repeats):
        trained.predict(xc, yc, xq, samples=SAMPLES, seed=r)
    t_np = (time.perf_counter() - start) / repeats
    process = jax.tree_util.tree_map(lambda a: a[0], processes)
    start = time.perf_counter()
    for _ in range(repeats):
        K = np.asarray(process.kernel(np.concatenate([xc, xq])))
        A = K[:30, :30] + NOISE_SD**2 * np.eye(30)
        mean = K[30:, :30] @ np.linalg.solve(A, yc)
        var = np.diag(K)[30:] - np.einsum("ij,ji->i", K[30:, :30], np.linalg.solve(A, K[:30, 30:]))
        _ = (mean, var)
    t_gp = (time.perf_counter() - start) / repeats
    prior = gp_tasks("rbf")
    model = numpyro_model(prior.process, prior.priors)
    engine = bk.NUTS(chains=1, warmup=500, draws=500, progress=False)
    bk.fit(model, {"X": xc, "y": yc}, engine=engine, seed=0)  # compile once, as a user's second fit
    start = time.perf_counter()
    post = bk.fit(model, {"X": xc, "y": yc}, engine=engine, seed=1)
    draws = post.sample(500, seed=0)
    ell, var_k = np.asarray(draws["kernel.lengthscale"]), np.asarray(draws["kernel.variance"])
    d2 = (xc[:, 0][:, None] - xc[:, 0][None]) ** 2
    A = var_k[:, None, None] * np.exp(-0.5 * d2 / ell[:, None, None] ** 2) + NOISE_SD**2 * np.eye(30)
    Ks = var_k[:, None, None] * np.exp(-0.5 * (xc[:, 0][:, None] - xq[:, 0][None]) ** 2 / ell[:, None, None] ** 2)
    _ = np.einsum("snm,sn->sm", Ks, np.linalg.solve(A, np.broadcast_to(yc, (500, 30))[..., None])[..., 0])
    t_nuts = time.perf_counter() - start
    return t_np, t_gp, t_nuts


def evaluate(tasks: int, markdown: str | None) -> None:
    names = [name_of(m) for m in MODELS] + [name_of("mpnp", v) for v in VARIANTS if v] + ["mpanp-with-pseudo"]
    trained = {k: bk.pfn.load(RESULTS / f"{k}.np") for k in names if (RESULTS / f"{k}.np").exists()}
    rows = []
    for kernel in KERNELS:
        x, y, processes, n, used = test_tasks(kernel, tasks)
        scores = {"oracle (exact GP)": oracle(x, y, processes, n, used)}
        for k, net in trained.items():
            scores[k] = network_scores(net, x, y, n, used)
        for k, s in scores.items():
            se = s.std(0, ddof=1) / np.sqrt(len(s))
            rows.append((kernel, k, s[:, 0].mean(), se[0], s[:, 1].mean(), se[1]))
            print(f"{kernel:9s} {k:18s} ctx {s[:, 0].mean():7.3f} ± {se[0]:.3f}   tar {s[:, 1].mean():7.3f} ± "
                  f"{se[1]:.3f}", flush=True)
    seconds = {k: float((RESULTS / f"{k}.seconds").read_text()) for k in trained
               if (RESULTS / f"{k}.seconds").exists()}
    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {tasks} test tasks "
             f"per kernel; {SAMPLES} samples per predictive; ± one standard error over tasks.", "",
             "| test tasks | model | context ll | target ll |", "|---|---|---|---|"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]:.3f} ± {r[3]:.3f} | {r[4]:.3f} ± {r[5]:.3f} |" for r in rows]
    lines += ["", "| model | training time (s, one thread) |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in seconds.items()]
    if "mpnp" in trained:
        t_np, t_gp, t_nuts = prediction_times(trained["mpnp"])
        lines += ["", "| one task (30 context, 100 test inputs) | seconds | NUTS / this |", "|---|---|---|",
                  f"| MPNP forward ({SAMPLES} pseudo-context sets) | {t_np:.4f} | {t_nuts / t_np:.0f} |",
                  f"| exact GP, true hyperparameters | {t_gp:.5f} | {t_nuts / t_gp:.0f} |",
                  f"| NUTS on a GP with hyperpriors (500 + 500) + mixture | {t_nuts:.2f} | 1 |"]
    text = "\n".join(lines)
    print(text)
    if markdown:
        Path(markdown).write_text(text + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("model", choices=MODELS)
    t.add_argument("--variant", default="", choices=list(VARIANTS))
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--preset", default="cpu", choices=("cpu", "paper"),
                   help="cpu: bk.pfn.NP_CPU on one thread; paper: bk.pfn.NP_PAPER (width 128, 100k steps of 100 "
                        "tasks) on a GPU when there is one")
    e = sub.add_parser("evaluate")
    e.add_argument("--tasks", type=int, default=1000)
    e.add_argument("--markdown", default=None)
    args = parser.parse_args()
    if args.command == "train":
        train(args.model, args.variant, args.steps, args.seed, args.preset)
    else:
        evaluate(args.tasks, args.markdown)


if __name__ == "__main__":
    main()
