"""bayeskit NUTS vs NumPyro NUTS vs nutpie (PyMC) on the six posteriordb reference models.

Every fit runs in a fresh Python process, as a user's script would: per model, library and round

* a *cold* process: the first fit with empty compilation caches (new cache directories);
* a *warm* process: the first fit again (same seed) with the caches the cold process left,
  then a second fit (seed + 1, same shapes) in the same process.

Timing starts at the fit call: library imports are excluded (and reported separately). For nutpie
the first fit is ``nutpie.compile_pymc_model(model)`` (numba backend) plus ``nutpie.sample``; the
second fit samples again with the same compiled object. bayeskit reuses its compiled program in
memory for the second fit; NumPyro gets a fresh ``MCMC`` object per fit, as a user would write it.

Per model and library: first-fit cold / warm and second-fit wall time, min bulk ESS (ArviZ, the
functions of ``nuts_vs_numpyro.py``), ESS/s, mean acceptance, leapfrog steps per draw, divergences;
and the ESS/s ratios bayeskit / nutpie and bayeskit / NumPyro with geometric means. The PyMC ports
of the models are in ``pymc_models.py``; ``--check`` verifies that their unconstrained log densities
equal the NumPyro ports'.

Needs the benchmark environment (PyMC and nutpie beside bayeskit; see benchmarks/README.md)::

    .venv-bench/bin/python benchmarks/nuts_vs_nutpie.py --check        # PyMC vs NumPyro log densities
    .venv-bench/bin/python benchmarks/nuts_vs_nutpie.py                # all six models, 4 x (1000 + 1000), 2 rounds
    .venv-bench/bin/python benchmarks/nuts_vs_nutpie.py --models kidiq-kidscore_momiq --warmup 200 --draws 200
    .venv-bench/bin/python benchmarks/nuts_vs_nutpie.py --json bench.json --markdown bench.md
"""

from __future__ import annotations

# Only the standard library at module level: a worker process times its library's import first.
import argparse
import importlib
import importlib.metadata
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

LIBS = ("bayeskit", "numpyro", "nutpie")
LABELS = {"bayeskit": "bayeskit", "numpyro": "NumPyro", "nutpie": "nutpie"}
WHICH = ("first_cold", "first_warm", "second")
HERE = Path(__file__).resolve().parent
NUMPYRO_EXTRA_FIELDS = ("accept_prob", "num_steps", "diverging")
# Imported before the timing, after the import statements: what each library's first fit imports on first use.
LAZY_IMPORTS = {
    "bayeskit": ("arviz",),  # its convergence checks; plus the engine plugins (worker())
    "numpyro": (),
    "nutpie": ("numba", "pytensor.link.numba.dispatch", "pyarrow", "arro3.core", "setuptools"),
}


# --------------------------------------------------------------------------- worker: one fresh process


def fit_bayeskit(problem, args, seed, state):
    import numpy as np
    from measure import PeakRSS

    import bayeskit as bk

    extra = {} if args.metric == "diag" else {"metric": "low_rank"}
    engine = bk.NUTS(chains=args.chains, warmup=args.warmup, draws=args.draws, progress=False, **extra)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            post = bk.fit(problem.model, data=problem.data, engine=engine, seed=seed)
            wall = time.perf_counter() - t0
    stats = post.sample_stats
    return {
        "wall_s": wall,
        "peak_extra_rss_mib": mem.extra_mib,
        "sites": list(post.latent_sites),
        "samples": {k: np.asarray(post.draws[k]) for k in post.latent_sites},
        "accept": np.asarray(stats["acceptance_rate"]),
        "steps": np.asarray(stats["n_steps"]),
        "diverging": np.asarray(stats["diverging"]),
        "warnings": [str(w.message) for w in caught],
    }


def fit_numpyro(problem, args, seed, state):
    import numpy as np
    from measure import timed_numpyro_nuts

    wall, peak, samples, extra, caught = timed_numpyro_nuts(problem, args, seed, NUMPYRO_EXTRA_FIELDS)
    return {
        "wall_s": wall,
        "peak_extra_rss_mib": peak,
        "sites": None,  # the latent sites, from a traced run after the timing
        "samples": {k: np.asarray(v) for k, v in samples.items()},
        "accept": np.asarray(extra["accept_prob"]),
        "steps": np.asarray(extra["num_steps"]),
        "diverging": np.asarray(extra["diverging"]),
        "warnings": caught,
    }


def fit_nutpie(problem, args, seed, state):
    import nutpie
    import pymc_models  # benchmarks/pymc_models.py
    from measure import PeakRSS

    if "model" not in state:  # the user's `with pm.Model(): ...` block: timed apart, not in the fit
        t0 = time.perf_counter()
        state["model"] = pymc_models.build(problem.name, problem.data)
        state["build_s"] = time.perf_counter() - t0
    model = state["model"]
    kwargs = {} if args.nutpie_cores is None else {"cores": args.nutpie_cores}
    if args.metric == "low_rank":
        kwargs["low_rank_modified_mass_matrix"] = True
    compile_s = 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            if "compiled" not in state:
                state["compiled"] = nutpie.compile_pymc_model(model)
                compile_s = time.perf_counter() - t0
            trace = nutpie.sample(
                state["compiled"],
                chains=args.chains,
                tune=args.warmup,
                draws=args.draws,
                seed=seed,
                progress_bar=False,
                **kwargs,
            )
            wall = time.perf_counter() - t0
    sites = [rv.name for rv in model.free_RVs]
    stats = trace.sample_stats
    return {
        "wall_s": wall,
        "compile_s": compile_s,
        "build_s": state["build_s"],
        "peak_extra_rss_mib": mem.extra_mib,
        "sites": sites,
        "samples": {k: trace.posterior[k].values for k in sites},
        "accept": stats["mean_tree_accept"].values,
        "steps": stats["n_steps"].values,
        "diverging": stats["diverging"].values,
        "sample_stats_names": sorted(stats.data_vars),
        "warnings": [str(w.message) for w in caught],
    }


FITTERS = {"bayeskit": fit_bayeskit, "numpyro": fit_numpyro, "nutpie": fit_nutpie}


def worker(args) -> int:
    """Fit one model with one library for each seed in ``args.seeds``, in this process; write JSON to ``args.out``."""
    os.environ.setdefault("JAX_ENABLE_X64", "1")  # before anything imports JAX
    lib, name = args.worker, args.models[0]
    t0 = time.perf_counter()
    if lib == "bayeskit":  # the statements of a user's script
        import bayeskit as bk

        bk.fit, bk.NUTS  # noqa: B018  (bayeskit's public names load their modules on first use)
    elif lib == "numpyro":
        import jax  # noqa: F401
        import numpyro  # noqa: F401
        from numpyro.infer import MCMC, NUTS  # noqa: F401
    else:
        import nutpie  # noqa: F401
        import pymc  # noqa: F401
    import_s = time.perf_counter() - t0
    # The modules the library's first fit would otherwise import on first use: imports, kept out of the fit
    # time as the import statements are (what is still imported during a fit is recorded below).
    t0 = time.perf_counter()
    for module in LAZY_IMPORTS[lib]:
        importlib.import_module(module)
    if lib == "bayeskit":
        try:  # the engine plugins bk.fit loads on its first registry lookup
            from bayeskit.core.registry import load_plugins
        except ImportError:  # moved: the first fit imports them
            load_plugins = None
        if load_plugins is not None:
            load_plugins()
        # numba is in this venv for nutpie; with it, ArviZ numba-jits its diagnostics on first use (~0.3 s in
        # bk.fit's convergence checks). The project's environment has no numba: keep ArviZ on NumPy, as there.
        import arviz

        arviz.Numba.disable_numba()
    preload_s = time.perf_counter() - t0

    from bayeskit.datasets import posteriordb

    problem = posteriordb.load(name)
    state: dict = {}
    fits = []
    for seed in args.seeds:
        before = set(sys.modules)
        fit = FITTERS[lib](problem, args, seed, state)
        fit["seed"] = seed
        new = sorted(set(sys.modules) - before)
        fit["modules_imported_during_fit"] = len(new)
        fit["packages_imported_during_fit"] = sorted(
            {".".join(m.split(".")[: 3 if m.startswith("bayeskit.") else 1]) for m in new}
        )
        fits.append(fit)
        print(f"    {name} {lib} seed {seed}: {fit['wall_s']:.2f} s", file=sys.stderr, flush=True)

    # Statistics after all timing, with the functions of nuts_vs_numpyro.py (ArviZ).
    import numpy as np
    from nuts_vs_numpyro import latent_sites, max_rhat, min_ess_bulk

    out = []
    for fit in fits:
        sites = fit["sites"] or list(latent_sites(problem.model, problem.data))
        ess = min_ess_bulk(fit["samples"], sites)
        rec = {
            "seed": fit["seed"],
            "wall_s": fit["wall_s"],
            "min_ess_bulk": ess,
            "ess_per_s": ess / fit["wall_s"],
            "max_rhat": max_rhat(fit["samples"], sites),
            "accept_rate": float(np.mean(fit["accept"])),
            "steps_per_draw": float(np.mean(fit["steps"])),
            "divergences": int(np.sum(fit["diverging"])),
            "peak_extra_rss_mib": fit["peak_extra_rss_mib"],
            "latent_sites": list(sites),
            "warnings": fit["warnings"],
        }
        for k in (
            "compile_s",
            "build_s",
            "sample_stats_names",
            "modules_imported_during_fit",
            "packages_imported_during_fit",
        ):
            if k in fit:
                rec[k] = fit[k]
        out.append(rec)
    payload = {
        "lib": lib,
        "model": name,
        "pid": os.getpid(),
        "import_s": import_s + preload_s,
        "import_statements_s": import_s,
        "preload_s": preload_s,
        "fits": out,
    }
    if lib in ("bayeskit", "numpyro"):
        import jax

        payload["jax_config"] = {
            k: getattr(jax.config, k, None)
            for k in (
                "jax_enable_x64",
                "jax_compilation_cache_dir",
                "jax_persistent_cache_min_compile_time_secs",
            )
        }
    with open(args.out, "w") as f:
        json.dump(payload, f, indent=2, default=str)
    return 0


# --------------------------------------------------------------------------- driver: processes, caches, rounds


def worker_env(lib: str, cache: Path) -> dict:
    """The environment of a worker process whose compilation caches all live under `cache`."""
    env = dict(os.environ)
    env["JAX_ENABLE_X64"] = "1"
    # PyTensor's compiledir (C modules) and its numba cache (<base_compiledir>/numba).
    env["PYTENSOR_FLAGS"] = ",".join(filter(None, [env.get("PYTENSOR_FLAGS"), f"base_compiledir={cache / 'pytensor'}"]))
    # numba's own on-disk cache (functions with cache=True outside PyTensor's locator; else __pycache__).
    env["NUMBA_CACHE_DIR"] = str(cache / "numba")
    # bayeskit's persistent compilation cache; off for the others (they import bayeskit for the data).
    env["BAYESKIT_CACHE_DIR"] = str(cache / "bayeskit") if lib == "bayeskit" else "off"
    # ... and bayeskit's XLA:CPU setting (core/xla_flags.py) only for bayeskit: NumPyro runs with XLA's
    # defaults, as a NumPyro user has them
    env.pop("XLA_FLAGS", None)
    if lib != "bayeskit":
        env["BAYESKIT_XLA_FLAGS"] = "off"
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env.pop("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", None)
    if lib == "numpyro":  # NumPyro has no cache of its own: JAX's persistent cache, every program cached
        env["JAX_COMPILATION_CACHE_DIR"] = str(cache / "jax")
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    return env


def dir_size(path: Path) -> dict:
    files = [p for p in path.rglob("*") if p.is_file()] if path.exists() else []
    return {"files": len(files), "mib": sum(p.stat().st_size for p in files) / 2**20}


def run_worker(lib, name, seeds, cache: Path, args, label) -> dict:
    out = cache.parent / f"{lib}-{label}.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        lib,
        "--models",
        name,
        "--seeds",
        *map(str, seeds),
        "--out",
        str(out),
        "--chains",
        str(args.chains),
        "--warmup",
        str(args.warmup),
        "--draws",
        str(args.draws),
        "--numpyro-chain-method",
        args.numpyro_chain_method,
        "--metric",
        args.metric,
    ]
    if args.nutpie_cores is not None:
        cmd += ["--nutpie-cores", str(args.nutpie_cores)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=worker_env(lib, cache), capture_output=True, text=True)
    process_s = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = proc.stderr[-4000:]
        print(f"  {name} {lib} {label}: worker failed (exit {proc.returncode}):\n{tail}", file=sys.stderr, flush=True)
        return {"error": f"exit {proc.returncode}", "stderr_tail": tail, "process_s": process_s}
    with open(out) as f:
        res = json.load(f)
    res["process_s"] = process_s
    res["cache_after"] = {d.name: dir_size(d) for d in sorted(cache.iterdir())} if cache.exists() else {}
    return res


def run_all(args, cache_root: Path) -> dict:
    results: dict = {name: {lib: [] for lib in args.libs} for name in args.models}
    for r in range(1, args.rounds + 1):
        for i, name in enumerate(args.models):
            k = (i + r - 1) % len(args.libs)
            order = args.libs[k:] + args.libs[:k]  # rotates from model to model and from round to round
            seed = args.seed + 2 * (r - 1)
            for lib in order:
                cache = cache_root / f"round{r}" / name / lib / "cache"
                cache.mkdir(parents=True)
                cold = run_worker(lib, name, [seed], cache, args, "cold")
                warm = run_worker(lib, name, [seed, seed + 1], cache, args, "warm")
                rec = {"round": r, "position": order.index(lib) + 1, "seeds": [seed, seed + 1]}
                rec.update(cold=cold, warm=warm)
                results[name][lib].append(rec)
                if "error" not in cold and "error" not in warm:
                    fc, fw, s = cold["fits"][0], warm["fits"][0], warm["fits"][1]
                    print(
                        f"  round {r} {name} {lib}: first cold {fc['wall_s']:.2f} s, warm {fw['wall_s']:.2f} s, "
                        f"second {s['wall_s']:.2f} s; min ESS_bulk {fc['min_ess_bulk']:.0f} / "
                        f"{fw['min_ess_bulk']:.0f} / {s['min_ess_bulk']:.0f}; import {cold['import_s']:.2f} s; "
                        f"divergences {fc['divergences']} / {fw['divergences']} / {s['divergences']}",
                        file=sys.stderr,
                        flush=True,
                    )
    return results


# --------------------------------------------------------------------------- summary


def fits_of(rounds: list, which: str) -> list[dict]:
    """The fit records of one kind (first_cold, first_warm, second) over the rounds that succeeded."""
    out = []
    for rec in rounds:
        src, j = {"first_cold": ("cold", 0), "first_warm": ("warm", 0), "second": ("warm", 1)}[which]
        if "error" not in rec[src]:
            out.append(rec[src]["fits"][j])
    return out


def med(xs) -> float:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return statistics.median(xs) if xs else math.nan


def summarize(results: dict, args) -> dict:
    """Medians over rounds per model and library, and the ESS/s ratios bayeskit / other."""
    from nuts_vs_numpyro import geomean

    summary: dict = {}
    for name, per_lib in results.items():
        s = {}
        for lib, rounds in per_lib.items():
            row = {"rounds_ok": sum("error" not in r["cold"] and "error" not in r["warm"] for r in rounds)}
            all_fits = []
            for w in WHICH:
                fits = fits_of(rounds, w)
                all_fits += fits
                row[w] = {
                    "wall_s": med(f["wall_s"] for f in fits),
                    "min_ess_bulk": med(f["min_ess_bulk"] for f in fits),
                    "ess_per_s": med(f["ess_per_s"] for f in fits),
                    "divergences": sum(f["divergences"] for f in fits),
                    "compile_s": med(f.get("compile_s") for f in fits) if lib == "nutpie" else None,
                }
            row["accept_rate"] = statistics.fmean(f["accept_rate"] for f in all_fits) if all_fits else math.nan
            row["steps_per_draw"] = statistics.fmean(f["steps_per_draw"] for f in all_fits) if all_fits else math.nan
            row["max_rhat"] = max((f["max_rhat"] for f in all_fits), default=math.nan)
            procs = [r[k] for r in rounds for k in ("cold", "warm") if "error" not in r[k]]
            row["import_s"] = med(p["import_s"] for p in procs)
            row["cache_mib_after_cold"] = med(
                sum(v["mib"] for v in r["cold"].get("cache_after", {}).values())
                for r in rounds
                if "error" not in r["cold"]
            )
            s[lib] = row
        ratios = {}
        for other in ("nutpie", "numpyro"):
            if "bayeskit" in s and other in s:
                ratios[other] = {w: _ratio(s["bayeskit"][w]["ess_per_s"], s[other][w]["ess_per_s"]) for w in WHICH}
        summary[name] = {"libs": s, "ratio_bayeskit_over": ratios}
    geo = {}
    for other in ("nutpie", "numpyro"):
        if "bayeskit" in args.libs and other in args.libs:
            geo[other] = {w: geomean(r["ratio_bayeskit_over"][other][w] for r in summary.values()) for w in WHICH}
    return {"models": summary, "geomean_ratio_bayeskit_over": geo}


def _ratio(a, b) -> float:
    return a / b if b > 0 and math.isfinite(a) and math.isfinite(b) else math.nan


HEADER = (
    "model",
    "lib",
    "first cold s",
    "first warm s",
    "second s",
    "min ESS_bulk",
    "ESS/s cold",
    "ESS/s warm",
    "ESS/s second",
    "accept",
    "steps/draw",
    "divergences",
)
DETAIL_HEADER = ("model", "lib", "import s", "cache MiB after cold", "nutpie compile s cold / warm", "max R-hat")


def _f(x, fmt=".2f") -> str:
    return "n/a" if x is None or not math.isfinite(x) else format(x, fmt)


def table_rows(summary) -> list[tuple[str, ...]]:
    rows = []
    for name, res in summary["models"].items():
        for lib, r in res["libs"].items():
            c, w, s = (r[k] for k in WHICH)
            rows.append(
                (
                    name,
                    LABELS[lib],
                    _f(c["wall_s"]),
                    _f(w["wall_s"]),
                    _f(s["wall_s"]),
                    f"{_f(c['min_ess_bulk'], '.0f')} / {_f(w['min_ess_bulk'], '.0f')} / {_f(s['min_ess_bulk'], '.0f')}",
                    _f(c["ess_per_s"], ".1f"),
                    _f(w["ess_per_s"], ".1f"),
                    _f(s["ess_per_s"], ".1f"),
                    _f(r["accept_rate"], ".3f"),
                    _f(r["steps_per_draw"], ".1f"),
                    f"{c['divergences']} / {w['divergences']} / {s['divergences']}",
                )
            )
    return rows


def detail_rows(summary) -> list[tuple[str, ...]]:
    rows = []
    for name, res in summary["models"].items():
        for lib, r in res["libs"].items():
            comp = (
                f"{_f(r['first_cold']['compile_s'])} / {_f(r['first_warm']['compile_s'])}" if lib == "nutpie" else "-"
            )
            rows.append(
                (
                    name,
                    LABELS[lib],
                    _f(r["import_s"]),
                    _f(r["cache_mib_after_cold"], ".1f"),
                    comp,
                    _f(r["max_rhat"], ".3f"),
                )
            )
    return rows


def ratio_rows(summary, other) -> list[tuple[str, ...]]:
    rows = [
        (name, *(_f(res["ratio_bayeskit_over"][other][w]) for w in WHICH)) for name, res in summary["models"].items()
    ]
    geo = summary["geomean_ratio_bayeskit_over"][other]
    rows.append(("geometric mean", *(_f(geo[w]) for w in WHICH)))
    return rows


RATIO_HEADER = ("model", "first fit, cold", "first fit, warm", "second fit")


def versions() -> dict:
    out = {}
    for pkg in ("pymc", "pytensor", "nutpie", "numba", "llvmlite", "numpy", "scipy"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def command_line() -> str:
    exe = os.path.relpath(sys.executable)
    exe = exe if not exe.startswith("..") else "python"  # the venv's python when it lies in the work tree
    return " ".join([exe, os.path.relpath(sys.argv[0]), *sys.argv[1:]])


def notes(args) -> list[str]:
    s = args.seed
    return [
        f"{args.chains} chains x ({args.warmup} warmup + {args.draws} draws) for every library; {args.rounds} "
        f"round(s). Round r: first fit seed {s} + 2(r - 1), second fit that + 1. 64-bit floats everywhere "
        "(JAX_ENABLE_X64=1; PyTensor floatX float64).",
        "Every fit runs in a fresh process. Cold: the first fit with empty cache directories. Warm: a new "
        "process with the caches the cold one left, the first fit again (same seed), then the second fit in "
        "that process. Times run from the fit call; imports are not in them. import s (median over the cold and "
        "warm processes) = the import statements (nutpie `import nutpie, pymc`; NumPyro `import jax, numpyro`, "
        "`from numpyro.infer import MCMC, NUTS`; bayeskit `import bayeskit as bk`, `bk.fit`, `bk.NUTS`) plus the "
        "modules the first fit would import on first use, imported before the timing (bayeskit: the engine "
        "plugins `bk.fit` loads on its first registry lookup and ArviZ; nutpie: numba, PyTensor's numba "
        "dispatch, pyarrow, arro3, setuptools); both parts are in the JSON.",
        "XLA:CPU: bayeskit processes run with the small-while-loop threshold `import bayeskit` sets "
        "(`bayeskit/core/xla_flags.py`); NumPyro (which imports bayeskit only for the data) runs with "
        "`BAYESKIT_XLA_FLAGS=off`, XLA's defaults, as a NumPyro user has them.",
        "numba, installed for nutpie, makes ArviZ numba-jit its diagnostics on first use (about 0.3 s inside "
        "`bk.fit`'s convergence checks); the bayeskit processes call `arviz.Numba.disable_numba()`, as ArviZ "
        "runs in the project's own environment (no numba). ESS and R-hat for the tables are computed after "
        "the timing.",
        "Caches, per model, library and round, in a new directory: PyTensor `PYTENSOR_FLAGS=base_compiledir=DIR` "
        "(its C modules and its numba cache), `NUMBA_CACHE_DIR`; bayeskit `BAYESKIT_CACHE_DIR` (its persistent "
        "JAX compilation cache; `off` for the other libraries); NumPyro has no cache of its own, so its processes "
        "get JAX's persistent cache, `JAX_COMPILATION_CACHE_DIR=DIR` with "
        "`JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0` (JAX's default only caches programs that took over "
        "1 s to compile). A cold fit also pays for writing its cache.",
        "bayeskit: `bk.fit(model, data=..., engine=bk.NUTS(..., progress=False), seed=...)`; the second fit reuses "
        "the compiled program held in memory; its time includes the convergence checks `fit` runs (ArviZ).",
        f"NumPyro: a fresh `MCMC(NUTS(model), chain_method={args.numpyro_chain_method!r}, progress_bar=False)` "
        f"per fit, `run(..., extra_fields={NUMPYRO_EXTRA_FIELDS})`; time includes fetching samples and "
        "extra fields to the host.",
        "nutpie: first fit = `nutpie.compile_pymc_model(model)` (numba backend, the default) + "
        "`nutpie.sample(compiled, chains, tune, draws, seed, progress_bar=False)`; second fit = `nutpie.sample` "
        "with the same compiled object. Building the `pm.Model` (benchmarks/pymc_models.py) is timed apart "
        "(`build_s` in the JSON) and not included. "
        + (
            f"`cores={args.nutpie_cores}`."
            if args.nutpie_cores is not None
            else "nutpie's default `cores` = min(chains, os.cpu_count()): its chains run in parallel threads; "
            "so do bayeskit's (one compiled loop per chain, on `cores` threads, default every core); NumPyro "
            "(vectorized) runs the chains as one batched program."
        ),
        "Sampler settings are each library's defaults"
        + (" except the metric: bayeskit `metric='low_rank'`, nutpie `low_rank_modified_mass_matrix=True`"
           if args.metric == "low_rank" else "")
        + ": target acceptance 0.8, max tree depth 10. bayeskit: diagonal metric from draw and gradient "
        "variances (nutpie's estimate) on its own warmup schedule (docs/nuts.md), initial points uniform in "
        "[-2, 2] (unconstrained). NumPyro: diagonal mass matrix from Stan-style windowed warmup, the same "
        "initial points. nutpie: diagonal mass matrix from draw and gradient variances "
        "(`use_grad_based_mass_matrix=True`), its own warmup schedule, initial points PyMC's support point "
        "jittered by U(-1, 1) (unconstrained).",
        "The PyMC models have the NumPyro ports' unconstrained log density (Jacobians and constants included), "
        "checked by `--check` at random unconstrained points.",
        "min ESS_bulk (first cold / first warm / second): smallest ArviZ bulk ESS over all scalar latent "
        "parameters (constrained space, deterministic sites excluded), same function for every library. "
        "ESS/s = min ESS_bulk / wall time of that fit. Times, ESS and ESS/s: medians over rounds.",
        "accept: mean acceptance statistic over all post-warmup draws of all fits (bayeskit `acceptance_rate`, "
        "NumPyro `accept_prob`, nutpie `mean_tree_accept`); steps/draw: mean leapfrog steps per draw (bayeskit "
        "`n_steps`, NumPyro `num_steps`, nutpie `n_steps`); divergences: post-warmup, summed over rounds.",
        "Order of libraries rotates from model to model and from round to round. "
        "Ratios: bayeskit ESS/s / other ESS/s (> 1: bayeskit faster), from the medians; geometric mean over models.",
    ]


INSTALL = [
    "python3.11 -m venv .venv-bench",
    '.venv-bench/bin/pip install -e ".[dev]" -r benchmarks/requirements-nutpie.txt',
]


def markdown(summary, info, args) -> str:
    v = info["versions"]
    out = [
        "### Results",
        "",
        f"Machine: {info['cpu']}, {info['cpu_count']} cores (`os.cpu_count()`), {info['platform']}; "
        f"JAX {info['jax']} ({info['jax_backend']}, {info['jax_devices']} device(s)), NumPyro {info['numpyro']}, "
        f"BlackJAX {info['blackjax']}, bayeskit {info['bayeskit']}, PyMC {v['pymc']}, PyTensor {v['pytensor']}, "
        f"nutpie {v['nutpie']}, numba {v['numba']}, ArviZ {info['arviz']}, NumPy {v['numpy']}, "
        f"Python {info['python']}. Date: {info['date']}.",
        "",
        "Environment (the benchmark venv, beside the project's):",
        "",
        "```bash",
        *INSTALL,
        "```",
        "",
        f"Command: `{command_line()}`",
        "",
        md_table(HEADER, table_rows(summary)),
        "",
    ]
    for other in ("nutpie", "numpyro"):
        if other in summary["geomean_ratio_bayeskit_over"]:
            out += [
                f"ESS/s ratio bayeskit / {LABELS[other]}:",
                "",
                md_table(RATIO_HEADER, ratio_rows(summary, other), text_columns=1),
                "",
            ]
    out += [
        "Fresh-process details (medians):",
        "",
        md_table(DETAIL_HEADER, detail_rows(summary)),
        "",
        "Notes:",
        "",
        *[f"- {n}" for n in notes(args)],
        "",
    ]
    return "\n".join(out)


def md_table(header, rows, text_columns: int = 2) -> str:
    from nuts_vs_numpyro import md_table as _md

    return _md(header, rows, text_columns)


# --------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=None, metavar="NAME", help="posteriordb names (default: all six)")
    p.add_argument("--libs", nargs="+", default=list(LIBS), choices=LIBS)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seed", type=int, default=1, help="first-fit seed of round 1; see the notes")
    p.add_argument("--numpyro-chain-method", choices=("vectorized", "sequential"), default="vectorized")
    p.add_argument("--nutpie-cores", type=int, default=None, help="nutpie's `cores` (default: its own)")
    p.add_argument("--metric", choices=("diag", "low_rank"), default="diag",
                   help="low_rank: bayeskit metric='low_rank' and nutpie low_rank_modified_mass_matrix=True "
                        "(NumPyro has no such metric: run with --libs bayeskit nutpie)")
    p.add_argument(
        "--cache-root", metavar="DIR", help="where the run's new cache directory goes (default: the system's temp dir)"
    )
    p.add_argument("--keep-caches", action="store_true", help="keep the cache directories (default: removed)")
    p.add_argument("--check", action="store_true", help="only compare PyMC and NumPyro log densities, then exit")
    p.add_argument("--json", metavar="PATH", help="write all numbers as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write a markdown report (for docs/benchmarks.md)")
    # internal: one worker process
    p.add_argument("--worker", choices=LIBS, help=argparse.SUPPRESS)
    p.add_argument("--seeds", type=int, nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)

    import nuts_vs_numpyro as nvn  # JAX with 64-bit floats, bayeskit, NumPyro, ArviZ

    from bayeskit.datasets import posteriordb

    args.models = args.models or list(posteriordb.NAMES)
    unknown = sorted(set(args.models) - set(posteriordb.NAMES))
    if unknown:
        raise SystemExit(f"unknown models {unknown}; choose from {', '.join(posteriordb.NAMES)}")
    args.libs = [lib for lib in LIBS if lib in args.libs]

    if args.check:
        import pymc_models

        res = pymc_models.check(args.models)
        print("ok: PyMC and NumPyro unconstrained log densities agree")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"check": res}, f, indent=2)
        return 0

    info = nvn.machine_info()
    info["versions"] = versions()
    v = info["versions"]
    print(
        f"{info['cpu']}, {info['cpu_count']} cores; JAX {info['jax']} ({info['jax_backend']}), NumPyro "
        f"{info['numpyro']}, BlackJAX {info['blackjax']}, bayeskit {info['bayeskit']}, PyMC {v['pymc']}, "
        f"PyTensor {v['pytensor']}, nutpie {v['nutpie']}, numba {v['numba']}",
        flush=True,
    )
    print(
        f"{args.chains} chains x ({args.warmup} warmup + {args.draws} draws), {args.rounds} round(s); "
        f"libraries {', '.join(args.libs)}; each fit in a fresh process (cold, then warm cache)",
        flush=True,
    )
    if args.cache_root:
        Path(args.cache_root).mkdir(parents=True, exist_ok=True)
    cache_root = Path(tempfile.mkdtemp(prefix="nuts-vs-nutpie-", dir=args.cache_root))  # new, so empty
    print(f"cache directories under {cache_root}", file=sys.stderr, flush=True)
    try:
        results = run_all(args, cache_root)
    finally:
        if not args.keep_caches:
            shutil.rmtree(cache_root, ignore_errors=True)
    summary = summarize(results, args)

    print()
    print(nvn.text_table(HEADER, table_rows(summary)))
    for other in ("nutpie", "numpyro"):
        if other in summary["geomean_ratio_bayeskit_over"]:
            print()
            print(f"ESS/s ratio bayeskit / {LABELS[other]}")
            print(nvn.text_table(RATIO_HEADER, ratio_rows(summary, other), text_columns=1))
    print()
    print("Fresh-process details (medians)")
    print(nvn.text_table(DETAIL_HEADER, detail_rows(summary)))
    print()
    for n in notes(args):
        print(f"* {n}")

    if args.json:
        payload = {
            "machine": info,
            "config": vars(args),
            "command": command_line(),
            "install": INSTALL,
            "notes": notes(args),
            "summary": summary,
            "results": results,
        }
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2, default=str)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(summary, info, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
