"""Deep kernel machines beside Gaussian processes, on the same random train/test splits in one process.

Regression (targets and inputs standardised on the training split): the full `DeepKernelMachine`
(`bk.Optimize`, Adam) against the GP with the NNGP kernel of the same depth and the GP with an RBF
kernel, both by `bk.Exact` with type-II maximum likelihood; on sklearn's diabetes data and a synthetic
set whose targets depend on a 2-D projection of 10-D inputs (learnable structure).
Classification: the categorical `SparseDeepKernelMachine` against a sparse variational GP classifier
(`ProcessClassifier` with an RBF kernel, `bk.SparseVariational`), same inducing points and minibatches;
on sklearn's digits (10 classes) and breast cancer (2 classes).

Reported per dataset and method, over the splits: the test log-likelihood per point and RMSE (regression,
standardised units) or accuracy (classification), mean ± standard error over splits, and the median fit
time (the first split's includes compilation; later splits reuse the compiled programs).

    python benchmarks/dkm.py                  # 10 splits (about 40 min on 2 busy CPU cores)
    python benchmarks/dkm.py --quick          # 3 splits, half-length fits (about 8 min)
    python benchmarks/dkm.py --splits 20 --nu 100

Results go to benchmarks/results/dkm.json; a markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import bayeskit as bk  # noqa: E402
from bayeskit.models.kernels import NNGP, RBF  # noqa: E402
from bayeskit.models.processes import Fixed, ProcessClassifier, ScaleMixtureProcess  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "dkm.json"
LAYERS = 2  # hidden Gram layers of the DKM; the NNGP of the same network has LAYERS + 1 hidden layers


# -- data ----------------------------------------------------------------------------------------------
def synthetic(seed: int = 0, n: int = 600):
    """y = sin(2 z₁) + ½ z₂² + noise, z = Wᵀx for a fixed orthonormal W (10 × 2), x ~ N(0, I₁₀)."""
    rng = np.random.default_rng(seed)
    W = np.linalg.qr(rng.normal(size=(10, 2)))[0]
    X = rng.normal(size=(n, 10))
    z = X @ W
    return X, np.sin(2 * z[:, 0]) + 0.5 * z[:, 1] ** 2 + 0.1 * rng.normal(size=n)


def load(name: str):
    from sklearn import datasets

    if name == "diabetes":
        return datasets.load_diabetes(return_X_y=True)
    if name == "synthetic":
        return synthetic()
    if name == "digits":
        return datasets.load_digits(return_X_y=True)
    return datasets.load_breast_cancer(return_X_y=True)


def split(X, y, n_train: int, n_test: int, seed: int, regression: bool):
    """A random split, inputs (and regression targets) standardised with the training split's moments."""
    idx = np.random.default_rng(seed).permutation(len(y))
    tr, te = idx[:n_train], idx[n_train:n_train + n_test]
    mu, sd = X[tr].mean(0), X[tr].std(0)
    sd = np.where(sd > 0, sd, 1.0)  # constant pixels (digits)
    Xtr, Xte = (X[tr] - mu) / sd, (X[te] - mu) / sd
    if not regression:
        return Xtr, y[tr].astype(int), Xte, y[te].astype(int)
    m, s = y[tr].mean(), y[tr].std()
    return Xtr, (y[tr] - m) / s, Xte, (y[te] - m) / s


# -- methods -------------------------------------------------------------------------------------------
def regression_methods(args):
    steps = 100 if args.quick else 200
    return {
        "DKM": lambda X, y: bk.fit(bk.DeepKernelMachine(layers=LAYERS, nu=args.nu, bias_var=0.1), {"X": X, "y": y},
                                   engine=bk.Optimize(steps=steps, learning_rate=0.05, progress=False)),
        "NNGP-GP": lambda X, y: bk.fit(ScaleMixtureProcess(NNGP(weight_var=2.0, bias_var=0.1,
                                                                hidden_layers=LAYERS + 1), noise=0.1,
                                                           scale_prior=Fixed(1.0)), {"X": X, "y": y},
                                       engine=bk.Exact(steps=steps, progress=False)),
        "RBF-GP": lambda X, y: bk.fit(ScaleMixtureProcess(RBF(lengthscale=float(np.sqrt(X.shape[1]))), noise=0.1,
                                                          scale_prior=Fixed(1.0)), {"X": X, "y": y},
                                      engine=bk.Exact(steps=steps, progress=False)),
    }


def classification_methods(args, num_classes: int):
    steps = 150 if args.quick else 300
    M, batch = 50, 100
    return {
        "sparse DKM": lambda X, y: bk.fit(
            bk.SparseDeepKernelMachine(layers=LAYERS, nu=args.nu_sparse, bias_var=0.1, likelihood="categorical",
                                       num_classes=num_classes, num_inducing=M),
            {"X": X, "y": y}, engine=bk.Optimize(steps=steps, learning_rate=0.05, batch_size=batch, progress=False)),
        "SVGP (RBF)": lambda X, y: bk.fit(
            ProcessClassifier(RBF(lengthscale=float(np.sqrt(X.shape[1]))), num_classes=num_classes,
                              scale_prior=Fixed(1.0), num_inducing=M),
            {"X": X, "y": y}, engine=bk.SparseVariational(steps=steps, learning_rate=0.05, batch_size=batch,
                                                          progress=False)),
        # the NNGP of the DKM's network (its ν → ∞ limit) as a sparse variational GP classifier
        "SVGP (NNGP)": lambda X, y: bk.fit(
            ProcessClassifier(NNGP(weight_var=2.0, bias_var=0.1, hidden_layers=LAYERS + 1), num_classes=num_classes,
                              scale_prior=Fixed(1.0), num_inducing=M),
            {"X": X, "y": y}, engine=bk.SparseVariational(steps=steps, learning_rate=0.05, batch_size=batch,
                                                          progress=False)),
    }


TASKS = {  # name: (regression, n_train, n_test)
    "diabetes": (True, 200, 242),
    "synthetic": (True, 200, 300),
    "digits": (False, 300, 500),
    "breast cancer": (False, 300, 269),
}


def evaluate(post, Xte, yte, regression: bool) -> dict:
    pred = post.predict({"X": Xte}) if regression else post.predict({"X": Xte}, n=1000)
    out = {"log_lik": float(np.mean(pred.log_prob(yte)))}
    if regression:
        out["rmse"] = float(np.sqrt(np.mean((pred.mean - yte) ** 2)))
    else:
        out["accuracy"] = pred.accuracy(yte)
    return out


def run(args) -> dict:
    results = {}
    for task, (regression, n_train, n_test) in TASKS.items():
        if args.tasks and task not in args.tasks:
            continue
        X, y = load(task)
        methods = regression_methods(args) if regression else classification_methods(args, int(y.max()) + 1)
        if args.methods:
            methods = {k: v for k, v in methods.items() if k in args.methods}
        rows = {name: [] for name in methods}
        for s in range(args.splits):
            Xtr, ytr, Xte, yte = split(X, y, n_train, n_test, seed=s, regression=regression)
            for name, fit in methods.items():
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # convergence notes; the table reports the outcome
                    post = fit(Xtr, ytr)
                record = {"fit_s": time.perf_counter() - start, **evaluate(post, Xte, yte, regression)}
                rows[name].append(record)
                print(f"{task:14s} split {s:2d}  {name:11s} " + "  ".join(f"{k} {v:.3f}" for k, v in record.items()),
                      flush=True)
        results[task] = rows
    return results


def mean_se(records, key) -> str:
    """mean ± standard error over splits."""
    v = np.array([r[key] for r in records])
    return f"{v.mean():.3f} ± {v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0:.3f}"


def table(results: dict) -> str:
    lines = ["| dataset | method | test log-lik / point | RMSE or accuracy | fit time (s, median) |",
             "|---|---|---|---|---|"]
    for task, rows in results.items():
        for name, records in rows.items():
            metric = "rmse" if "rmse" in records[0] else "accuracy"
            fit_time = np.median([r["fit_s"] for r in records])
            lines.append(f"| {task} | {name} | {mean_se(records, 'log_lik')} | {metric} {mean_se(records, metric)} | "
                         f"{fit_time:.1f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits", type=int, default=None, help="random train/test splits (default 10; 3 quick)")
    parser.add_argument("--quick", action="store_true", help="3 splits and half-length fits")
    parser.add_argument("--nu", type=float, default=100.0, help="ν of the full DKM's layers (default 100)")
    parser.add_argument("--nu-sparse", type=float, default=10.0, help="ν of the sparse DKM's layers (default 10)")
    parser.add_argument("--tasks", nargs="*", choices=list(TASKS), help="a subset of the datasets")
    parser.add_argument("--methods", nargs="*", help="a subset of the methods, by name (e.g. 'SVGP (NNGP)')")
    parser.add_argument("--out", default=None, help=f"results file (default {RESULTS})")
    args = parser.parse_args()
    if args.splits is None:
        args.splits = 3 if args.quick else 10
    start = time.perf_counter()
    results = run(args)
    out = RESULTS if args.out is None else type(RESULTS)(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"splits": args.splits, "quick": args.quick, "nu": args.nu, "nu_sparse": args.nu_sparse,
            "machine": f"{platform.processor() or platform.machine()}, {jax.device_count()} {jax.default_backend()} "
                       f"device(s)", "total_s": time.perf_counter() - start}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print(f"\n{args.splits} splits, total {meta['total_s']:.0f} s; results in {out}\n")
    print(table(results))


if __name__ == "__main__":
    main()
