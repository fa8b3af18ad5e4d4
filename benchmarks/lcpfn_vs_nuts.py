"""Learning-curve extrapolation (LC-PFN, Adriaensen et al. 2023): a PFN against NUTS on the same
parametric prior, side by side in one process.

Curves come from LC-PFN's prior (`bayeskit.models.learning_curves`: pow3 + ilog2 + janoschek,
truncated to improving curves in [0, 1], log σ ~ N(−4, 1)) at epochs 1 … 100. For each held-out
curve and cutoff n, both methods see epochs 1 … n and predict epochs n+1 … 100:
* PFN: `bk.fit(learning_curve_model, data, engine=bk.PFN(network=...))`, one forward pass;
* NUTS: `bk.fit(learning_curve_model, data, engine=bk.NUTS(...))` (1 chain, 500 warm-up, 500
  draws, started from prior draws; compiled once, the first fit excluded), predictive the mixture
  over draws of N(f_s(t), σ_s²) (the paper's MCMC baseline, on the model the PFN was trained on).
Reported per cutoff: held-out log-likelihood per point (higher is better) and time per curve,
and the time ratio.

    python benchmarks/lcpfn_vs_nuts.py [--network lc.pfn] [--curves 20] [--cutoffs 10 20 40 80]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import bayeskit as bk  # noqa: E402
from bayeskit.models.learning_curves import (  # noqa: E402
    EPOCHS,
    learning_curve_model,
    predictive_log_lik,
    sample_curves,
)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--network", default=None, help="a saved LC-PFN (default: the shipped bk.pfn.pretrained('lc-tiny'))")
    p.add_argument("--curves", type=int, default=20)
    p.add_argument("--cutoffs", type=int, nargs="+", default=[10, 20, 40, 80])
    p.add_argument("--draws", type=int, default=500, help="NUTS warm-up and draws per chain")
    p.add_argument("--chains", type=int, default=4)
    args = p.parse_args(argv)
    trained = bk.pfn.load(args.network) if args.network else bk.pfn.pretrained("lc-tiny")
    y_all = np.asarray(sample_curves(jax.random.key(2027), args.curves)[0])
    t_all = np.arange(1.0, EPOCHS + 1)
    pfn = bk.PFN(network=trained)
    nuts = bk.NUTS(chains=args.chains, warmup=args.draws, draws=args.draws, init="sample", progress=False)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; JAX {jax.__version__}; "
          f"{trained!r}\n")
    print("| cutoff | PFN log-lik / point | NUTS log-lik / point | PFN − NUTS | PFN ms / curve | NUTS ms / curve "
          "| speed-up |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.cutoffs:
        model_data = lambda i, n=n: {"X": t_all[:n], "y": y_all[i, :n]}  # noqa: E731
        bk.fit(learning_curve_model, model_data(0), engine=nuts, seed=0)  # compile once for this n
        rows = []
        for i in range(args.curves):
            t0 = time.perf_counter()
            lp_pfn = bk.fit(learning_curve_model, model_data(i), engine=pfn).predict({"X": t_all[n:]}).log_prob(
                y_all[i, n:])
            t_pfn = time.perf_counter() - t0
            t0 = time.perf_counter()
            draws = bk.fit(learning_curve_model, model_data(i), engine=nuts, seed=i).sample(args.chains * args.draws)
            lp_nuts = np.asarray(predictive_log_lik(draws, t_all[n:], y_all[i, n:]))
            t_nuts = time.perf_counter() - t0
            rows.append((t_pfn, t_nuts, lp_pfn.mean(), lp_nuts.mean()))
        t_pfn, t_nuts, ll_pfn, ll_nuts = (np.asarray(c) for c in zip(*rows, strict=True))
        se = lambda a: a.std(ddof=1) / np.sqrt(a.size)  # noqa: E731
        diff = ll_pfn - ll_nuts
        print(f"| {n} | {ll_pfn.mean():.3f} ± {se(ll_pfn):.3f} | {ll_nuts.mean():.3f} ± {se(ll_nuts):.3f} "
              f"| {diff.mean():+.3f} ± {se(diff):.3f} | {1e3 * np.median(t_pfn):.1f} | {1e3 * np.median(t_nuts):.0f} "
              f"| {np.median(t_nuts) / np.median(t_pfn):.0f}× |", flush=True)


if __name__ == "__main__":
    main()
