"""Infinitely wide and deep classifiers on the paper's 2-D task (Radhakrishnan, Belkin & Uhler 2023).

Task: class 0 ~ Dirichlet(1, 2) with prior 0.4, class 1 ~ Dirichlet(2, 1); points mapped onto the circle.
The Bayes-optimal rule compares the two densities. For n training points (n in --sizes) and 2,000 test
points, over --repeats independent data sets, test accuracy (mean ± standard error) of:
* Bayes-optimal, majority vote, 1-nearest neighbour, and the Hilbert-kernel vote sign Σ y_i ‖x − x_i‖^(−1)
  (the singular kernel with α = d − 1 = 1, consistent in 2-D);
* kernel interpolation with the NNGP and NTK of networks of depth 10 … 10⁴ (--depths) and three normalised
  dual activations: ReLU (limit: majority vote), erf (singular, α = 0.888: not the Hilbert exponent) and
  the designed ρ-polynomial with α = 1 (`design_activation(hilbert_alpha(2))`), plus each one's
  infinite-depth limit (`WideDeep(depth=math.inf)`: majority vote, or the Koenigs-kernel vote);
all fitted through `bk.fit(KernelClassifier(...), engine=bk.Exact())`.

Speed beside the paper's method (its released code iterates ř on the Gram matrix in float64, torch,
no log space): time to build the depth-1,000 NNGP and NTK Grams (n = 1,000 × 1,000) both ways; the direct
iteration overflows for the NTK whenever ř′(1)^depth exceeds float64 (erf: depth ≳ 3,500).

    python benchmarks/wide_deep.py [--sizes 100 1000 3000] [--depths 10 100 1000 10000] [--repeats 5]
      [--figure docs/figures/wide_deep.png] [--json benchmarks/results/wide_deep.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from scipy.stats import dirichlet  # noqa: E402

import bayeskit as bk  # noqa: E402
from bayeskit.models.classifiers import (  # noqa: E402
    Erf,
    KernelClassifier,
    ReLU,
    WideDeep,
    design_activation,
    hilbert_alpha,
)

N_TEST = 2000
ALPHA_1, ALPHA_2, PRIOR_1 = (1.0, 2.0), (2.0, 1.0), 0.4


def dirichlet_task(n, rng):
    """(X on the simplex, labels): n·0.4 points of class 0, the rest of class 1 (the paper's fixed split)."""
    first = int(PRIOR_1 * n)
    X = np.concatenate([rng.dirichlet(ALPHA_1, first), rng.dirichlet(ALPHA_2, n - first)])
    y = np.concatenate([np.zeros(first, int), np.ones(n - first, int)])
    return X, y


def baselines(X, y, X_test, y_test):
    bayes = np.where(dirichlet.pdf(X_test.T, ALPHA_1) * PRIOR_1 > dirichlet.pdf(X_test.T, ALPHA_2) * (1 - PRIOR_1),
                     0, 1)
    Xs, Ts = (A / np.linalg.norm(A, axis=1, keepdims=True) for A in (X, X_test))
    delta = np.clip(1.0 - Ts @ Xs.T, 1e-300, 2.0)
    nearest = y[np.argmin(delta, axis=1)]
    votes = np.power(2.0 * delta, -0.5 * hilbert_alpha(2)) @ np.eye(2)[y]  # ‖x − z‖^(−1)
    return {"bayes": np.mean(bayes == y_test), "majority": np.mean(np.bincount(y).argmax() == y_test),
            "1-NN": np.mean(nearest == y_test), "Hilbert kernel": np.mean(votes.argmax(1) == y_test)}


ACTIVATIONS = {"ReLU": ReLU(), "erf": Erf(), "designed α=1": design_activation(hilbert_alpha(2))}


def run(sizes, depths, repeats, seed):
    results = []
    for n in sizes:
        for r in range(repeats):
            rng = np.random.default_rng([seed, n, r])
            X, y = dirichlet_task(n, rng)
            X_test, y_test = dirichlet_task(N_TEST, rng)
            for name, acc in baselines(X, y, X_test, y_test).items():
                results.append({"n": n, "repeat": r, "method": name, "depth": None, "kind": None, "accuracy": acc})
            for act_name, act in ACTIVATIONS.items():
                for kind in ("nngp", "ntk"):
                    for depth in (*depths, math.inf):
                        start = time.perf_counter()
                        post = bk.fit(KernelClassifier(WideDeep(act, depth=depth, kind=kind)),
                                      data={"X": X, "y": y}, engine=bk.Exact(progress=False), seed=0)
                        acc = post.predict(X_test).accuracy(y_test)
                        results.append({"n": n, "repeat": r, "method": act_name, "depth": depth, "kind": kind,
                                        "accuracy": acc, "seconds": time.perf_counter() - start})
            print(f"n={n} repeat {r + 1}/{repeats} done", flush=True)
    return results


def summarise(results):
    """{(method, kind, depth, n): (mean, standard error)}."""
    groups = {}
    for row in results:
        groups.setdefault((row["method"], row["kind"], row["depth"], row["n"]), []).append(row["accuracy"])
    return {k: (float(np.mean(v)), float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan"))
            for k, v in groups.items()}


def markdown(summary, sizes, depths):
    lines = ["| method | kind | " + " | ".join(f"n = {n}" for n in sizes) + " |",
             "|---|---|" + "---|" * len(sizes)]
    rows = sorted({(m, k, d) for m, k, d, _ in summary},
                  key=lambda t: (t[1] is not None, t[0], t[1] or "", math.inf if t[2] is None else t[2]))
    for method, kind, depth in rows:
        label = method if depth is None else f"{method}, depth {'∞' if depth == math.inf else depth}"
        cells = [f"{summary[(method, kind, depth, n)][0]:.3f} ± {summary[(method, kind, depth, n)][1]:.3f}"
                 for n in sizes]
        lines.append(f"| {label} | {kind or '—'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(summary, sizes, depths, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.8), sharey=True, squeeze=False)
    grid = [*depths, depths[-1] * 4]  # the limit drawn one step to the right of the deepest network
    colours = {"ReLU": "tab:red", "erf": "tab:orange", "designed α=1": "tab:blue"}
    for ax, n in zip(axes[0], sizes, strict=True):
        for name, style in (("bayes", "k-"), ("Hilbert kernel", "k--"), ("1-NN", "k:"), ("majority", "k-.")):
            ax.axhline(summary[(name, None, None, n)][0], color="k", ls=style[1:], lw=1, label=name)
        for act, colour in colours.items():
            for kind, ls in (("nngp", "-"), ("ntk", "--")):
                means = [summary[(act, kind, d, n)] for d in (*depths, math.inf)]
                ax.errorbar(grid, [m for m, _ in means], yerr=[s for _, s in means], color=colour, ls=ls,
                            marker="o", ms=3, capsize=2, label=f"{act} {kind.upper()}")
        ax.set_xscale("log")
        ax.set_xticks(grid, [*(f"{d:g}" for d in depths), "∞"])
        ax.set_title(f"n = {n}")
        ax.set_xlabel("depth")
    axes[0][0].set_ylabel("test accuracy")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=120)


def speed(depth=1000, n=1000, seed=0):
    """Seconds to build train and test Grams both ways, and the share of finite entries of the direct NTK."""
    import torch

    rng = np.random.default_rng(seed)
    X, _ = dirichlet_task(n, rng)
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    out = {}
    for kind in ("nngp", "ntk"):
        kernel = WideDeep(Erf(), depth=depth, kind=kind)
        kernel(X[:10]).block_until_ready()  # the table, once per process (timed separately below)
        start = time.perf_counter()
        np.asarray(kernel(X))
        ours = time.perf_counter() - start
        rho = torch.from_numpy(np.clip(X @ X.T, -1, 1))
        start = time.perf_counter()
        k = rho.clone()
        a = math.asin(2 / 3)
        for _ in range(depth):  # the released code's loop: ř and ř′ on the matrix, float64
            nxt = torch.arcsin(2 * rho / 3) / a
            if kind == "ntk":
                k = nxt + k * (2 / 3) / torch.sqrt(1 - 4 * rho**2 / 9) / a
            rho = torch.clip(nxt, -1, 1)
        direct = time.perf_counter() - start
        values = k if kind == "ntk" else rho
        out[kind] = {"bayeskit_s": ours, "direct_s": direct, "ratio": direct / ours,
                     "direct_finite": float(torch.isfinite(values).float().mean())}
    start = time.perf_counter()
    from bayeskit.models.classifiers.wide_deep import _table

    _table(Erf(), depth + 1, "ntk", 8192)
    out["table_build_s"] = time.perf_counter() - start
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 3000])
    parser.add_argument("--depths", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", default="docs/figures/wide_deep.png")
    parser.add_argument("--json", default="benchmarks/results/wide_deep.json")
    args = parser.parse_args()
    started = time.perf_counter()
    results = run(args.sizes, args.depths, args.repeats, args.seed)
    summary = summarise(results)
    table = markdown(summary, args.sizes, args.depths)
    timing = speed()
    print(table)
    print(json.dumps(timing, indent=1))
    figure(summary, args.sizes, args.depths, args.figure)
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"machine": platform.platform(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
                   "args": vars(args), "results": results, "speed": timing,
                   "wall_s": time.perf_counter() - started}, f, indent=1, default=str)
    print(f"wall {time.perf_counter() - started:.0f} s; figure {args.figure}; results {args.json}")


if __name__ == "__main__":
    main()
