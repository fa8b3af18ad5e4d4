"""bayeskit NUTS vs NumPyro NUTS on the six posteriordb reference models, in one process.

For every model both libraries run the same number of chains, warmup steps and draws, with
the same defaults (diagonal mass matrix, target acceptance 0.8, max tree depth 10, initial
points uniform in [-2, 2] in unconstrained space), and 64-bit floats. Per model and library:

* wall time of a first fit (compilation included) and of a second fit (another seed, same
  shapes). NumPyro gets a fresh ``MCMC`` object per fit, as a user would write it, so it
  compiles again; bayeskit caches its compiled program per model. bayeskit's ``fit`` also runs
  its R-hat / ESS / E-BFMI convergence checks (through ArviZ) inside the timed call: that is
  what a user gets, so it stays in.
* min bulk ESS over every scalar latent parameter (constrained space; deterministic sites
  excluded for both), computed by the same function (ArviZ) for both, and min ESS / second.
* peak additional host RSS during each fit (a thread samples /proc/self/statm every 10 ms).
* divergent transitions.

Run from the repository root::

    python benchmarks/nuts_vs_numpyro.py                       # all six models, 4 x (1000 + 1000)
    python benchmarks/nuts_vs_numpyro.py --models kidiq-kidscore_momiq --warmup 200 --draws 200
    python benchmarks/nuts_vs_numpyro.py --json bench.json --markdown bench.md
"""

from __future__ import annotations

# 64-bit floats for both libraries, before anything touches JAX (earnings-earn_height needs them).
import jax

jax.config.update("jax_enable_x64", True)

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import blackjax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
from numpyro import handlers  # noqa: E402
from numpyro.infer import init_to_uniform  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # ArviZ 0.2x "undergoing a refactor" notice
    import arviz as az

from measure import PeakRSS, timed_numpyro_nuts  # noqa: E402  (benchmarks/measure.py)

import bayeskit as bk  # noqa: E402
import bayeskit.core.cache  # noqa: E402, F401
import bayeskit.core.fit  # noqa: E402, F401
import bayeskit.core.loop  # noqa: E402, F401
import bayeskit.diagnostics.arviz_bridge  # noqa: E402, F401
import bayeskit.diagnostics.convergence  # noqa: E402, F401
import bayeskit.engines.mcmc.adaptation  # noqa: E402, F401
import bayeskit.engines.mcmc.hmc  # noqa: E402, F401
import bayeskit.engines.mcmc.program  # noqa: E402, F401
from bayeskit.datasets import posteriordb  # noqa: E402

LIBS = ("bayeskit", "numpyro")


# --------------------------------------------------------------------------- measurement


def min_ess_bulk(samples: dict, sites) -> float:
    """Smallest bulk ESS over every scalar component of `sites`; arrays are (chain, draw, ...)."""
    out = math.inf
    for name in sites:
        a = np.asarray(samples[name], dtype=np.float64)
        a = a.reshape(a.shape[0], a.shape[1], -1)
        for j in range(a.shape[2]):
            out = min(out, float(az.ess(a[:, :, j], method="bulk")))
    return out


def max_rhat(samples: dict, sites) -> float:
    out = -math.inf
    for name in sites:
        a = np.asarray(samples[name], dtype=np.float64)
        a = a.reshape(a.shape[0], a.shape[1], -1)
        for j in range(a.shape[2]):
            out = max(out, float(az.rhat(a[:, :, j])))
    return out


def latent_sites(model, data) -> tuple[str, ...]:
    """The model's latent (unobserved) sample sites, from one traced run; factors count as observed."""
    seeded = handlers.substitute(handlers.seed(model, 0), substitute_fn=init_to_uniform())
    tr = handlers.trace(seeded).get_trace(**data)
    return tuple(n for n, s in tr.items() if s["type"] == "sample" and not s["is_observed"])


# --------------------------------------------------------------------------- one fit per library


def fit_bayeskit(problem, args, seed):
    engine = bk.NUTS(chains=args.chains, warmup=args.warmup, draws=args.draws, progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            post = bk.fit(problem.model, data=problem.data, engine=engine, seed=seed)
            wall = time.perf_counter() - t0
    samples = {k: post.draws[k] for k in post.latent_sites}
    divergences = int(np.sum(post.sample_stats["diverging"]))
    return wall, mem.extra_mib, samples, tuple(post.latent_sites), divergences, [str(w.message) for w in caught]


def fit_numpyro(problem, args, seed):
    wall, peak, samples, extra, caught = timed_numpyro_nuts(problem, args, seed)
    sites = latent_sites(problem.model, problem.data)
    samples = {k: samples[k] for k in sites}
    return wall, peak, samples, sites, int(np.sum(extra["diverging"])), caught


FITTERS = {"bayeskit": fit_bayeskit, "numpyro": fit_numpyro}


def run_model(name, index, args):
    problem = posteriordb.load(name)
    order = LIBS if index % 2 == 1 else LIBS[::-1]
    results = {}
    for lib in order:
        rec = {"order": order.index(lib) + 1}
        for which, seed in (("first", args.seed), ("second", args.seed + 1)):
            wall, peak, samples, sites, div, caught = FITTERS[lib](problem, args, seed)
            ess = min_ess_bulk(samples, sites)
            rec[which] = {
                "seed": seed,
                "wall_s": wall,
                "min_ess_bulk": ess,
                "ess_per_s": ess / wall,
                "max_rhat": max_rhat(samples, sites),
                "peak_extra_rss_mib": peak,
                "divergences": div,
                "warnings": caught,
            }
            rec["latent_sites"] = list(sites)
            print(
                f"  {name} {lib} {which}: {wall:.2f} s, min ESS_bulk {ess:.0f}, +{peak:.0f} MiB, "
                f"{div} divergences",
                file=sys.stderr,
                flush=True,
            )
        results[lib] = rec
    if set(results["bayeskit"]["latent_sites"]) != set(results["numpyro"]["latent_sites"]):
        print(f"  warning: latent sites differ for {name}: {results}", file=sys.stderr)
    ratio = {
        w: results["bayeskit"][w]["ess_per_s"] / results["numpyro"][w]["ess_per_s"]
        if results["numpyro"][w]["ess_per_s"] > 0
        else math.nan
        for w in ("first", "second")
    }
    return {"libs": results, "ratio_ess_per_s": ratio}


def geomean(xs) -> float:
    xs = [x for x in xs if x > 0 and math.isfinite(x)]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else math.nan


# --------------------------------------------------------------------------- reporting


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_devices": jax.device_count(),
        "numpyro": numpyro.__version__,
        "blackjax": blackjax.__version__,
        "arviz": az.__version__,
        "bayeskit": bk.__version__,
        "x64": bool(jax.config.jax_enable_x64),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="minutes"),
    }


HEADER = ("model", "lib", "first fit s", "second fit s", "min ESS_bulk", "ESS/s first", "ESS/s second",
          "peak MiB", "divergences")


def table_rows(results) -> list[tuple[str, ...]]:
    rows = []
    for name, res in results.items():
        for lib in LIBS:
            r = res["libs"][lib]
            f, s = r["first"], r["second"]
            rows.append((
                name,
                lib,
                f"{f['wall_s']:.2f}",
                f"{s['wall_s']:.2f}",
                f"{f['min_ess_bulk']:.0f} / {s['min_ess_bulk']:.0f}",
                f"{f['ess_per_s']:.1f}",
                f"{s['ess_per_s']:.1f}",
                f"{f['peak_extra_rss_mib']:.0f} / {s['peak_extra_rss_mib']:.0f}",
                f"{f['divergences']} / {s['divergences']}",
            ))
    return rows


def ratio_rows(results) -> list[tuple[str, ...]]:
    rows = [(n, f"{r['ratio_ess_per_s']['first']:.2f}", f"{r['ratio_ess_per_s']['second']:.2f}")
            for n, r in results.items()]
    rows.append((
        "geometric mean",
        f"{geomean(r['ratio_ess_per_s']['first'] for r in results.values()):.2f}",
        f"{geomean(r['ratio_ess_per_s']['second'] for r in results.values()):.2f}",
    ))
    return rows


def text_table(header, rows, text_columns: int = 2) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]

    def fmt(row):
        cells = zip(row, widths, strict=True)
        return "  ".join(str(x).ljust(w) if i < text_columns else str(x).rjust(w) for i, (x, w) in enumerate(cells))

    lines = [fmt(header), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def md_table(header, rows, text_columns: int = 2) -> str:
    align = "|".join("---" if i < text_columns else "---:" for i in range(len(header)))
    lines = ["| " + " | ".join(header) + " |", f"|{align}|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def notes(args) -> list[str]:
    return [
        f"{args.chains} chains x ({args.warmup} warmup + {args.draws} draws) for both libraries; seeds "
        f"{args.seed} (first fit) and {args.seed + 1} (second fit); 64-bit floats (jax_enable_x64) for both.",
        "Both: NUTS, diagonal mass matrix, target acceptance 0.8, max tree depth 10, "
        "init uniform in [-2, 2] (unconstrained).",
        f"NumPyro: a fresh `MCMC(NUTS(model), chain_method={args.numpyro_chain_method!r}, progress_bar=False)` "
        "per fit (it compiles again on the second fit); time includes `run` and fetching samples and "
        "divergences to the host.",
        "bayeskit: `bk.fit(..., engine=bk.NUTS(..., progress=False))`; the second fit reuses the compiled "
        "program. Its wall time includes the R-hat / ESS / E-BFMI convergence checks `fit` runs (via ArviZ).",
        "First fit includes compilation. Libraries, ArviZ and a tiny unrelated jit are loaded and run before "
        "any timing. Order alternates: bayeskit first for odd-numbered models (1st, 3rd, ...), NumPyro first "
        "for even-numbered ones.",
        "min ESS_bulk (first / second fit): smallest ArviZ bulk ESS over all scalar latent parameters "
        "(constrained space, deterministic sites excluded), same function for both. "
        "ESS/s = min ESS_bulk / wall time of that fit.",
        "peak MiB (first / second fit): peak host RSS above the RSS at the start of the fit, sampled every "
        "10 ms from /proc/self/statm (host memory, not device memory; freed memory kept by the allocator "
        "makes later fits look smaller).",
        "ratio = bayeskit ESS/s / NumPyro ESS/s (> 1: bayeskit faster).",
    ]


def markdown(results, info, args) -> str:
    out = [
        "### Results",
        "",
        f"Machine: {info['cpu']}, {info['cpu_count']} cores (`os.cpu_count()`), {info['platform']}; "
        f"JAX {info['jax']} ({info['jax_backend']}, {info['jax_devices']} device(s)), NumPyro {info['numpyro']}, "
        f"BlackJAX {info['blackjax']}, ArviZ {info['arviz']}, bayeskit {info['bayeskit']}, Python {info['python']}. "
        f"Date: {info['date']}.",
        "",
        f"Command: `python {' '.join([os.path.relpath(sys.argv[0])] + sys.argv[1:])}`",
        "",
        md_table(HEADER, table_rows(results)),
        "",
        "ESS/s ratio bayeskit / NumPyro:",
        "",
        md_table(("model", "first fit", "second fit"), ratio_rows(results), text_columns=1),
        "",
        "Notes:",
        "",
        *[f"- {n}" for n in notes(args)],
        "",
    ]
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def warm_up() -> None:
    """Pay one-off costs (first jit, ArviZ/xarray lazy imports) before timing either library."""
    jax.block_until_ready(jax.jit(lambda x: jnp.sin(x) * 2.0)(jnp.arange(3.0)))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 50))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = az.convert_to_inference_data({"x": x})
        az.rhat(idata)
        az.ess(idata, method="bulk")
        az.bfmi(np.abs(x))
        az.ess(x, method="bulk")
        az.rhat(x)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(posteriordb.NAMES), choices=posteriordb.NAMES,
                   metavar="NAME", help=f"subset of: {', '.join(posteriordb.NAMES)}")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1, help="seed of the first fit; the second uses seed + 1")
    p.add_argument("--numpyro-chain-method", choices=("vectorized", "sequential"), default="vectorized")
    p.add_argument("--json", metavar="PATH", help="write all numbers as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write a markdown report (for docs/benchmarks.md)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    warm_up()
    info = machine_info()
    print(
        f"{info['cpu']}, {info['cpu_count']} cores; JAX {info['jax']} ({info['jax_backend']}, "
        f"{info['jax_devices']} device(s)), NumPyro {info['numpyro']}, BlackJAX {info['blackjax']}, "
        f"bayeskit {info['bayeskit']}; jax_enable_x64={info['x64']} (both libraries)",
        flush=True,
    )
    print(f"{args.chains} chains x ({args.warmup} warmup + {args.draws} draws); NumPyro chain_method="
          f"{args.numpyro_chain_method}", flush=True)
    results = {}
    for i, name in enumerate(args.models, start=1):
        results[name] = run_model(name, i, args)

    print()
    print(text_table(HEADER, table_rows(results)))
    print()
    print("ESS/s ratio bayeskit / NumPyro")
    print(text_table(("model", "first fit", "second fit"), ratio_rows(results), text_columns=1))
    print()
    for n in notes(args):
        print(f"* {n}")

    if args.json:
        payload = {
            "machine": info,
            "config": vars(args),
            "notes": notes(args),
            "results": results,
            "geomean_ratio_ess_per_s": {
                w: geomean(r["ratio_ess_per_s"][w] for r in results.values()) for w in ("first", "second")
            },
        }
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(results, info, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
