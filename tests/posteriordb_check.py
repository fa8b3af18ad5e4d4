"""Validate the posteriordb ports against the Stan reference posteriors (not a pytest file).

Runs NumPyro NUTS (4 vectorised chains, 1000 warmup + 2000 draws) per model and checks, for
every reference parameter, |mean - ref_mean| <= 4 * sqrt(mcse^2 + ref_mcse^2) and
|sd / ref_sd - 1| <= 0.10.

    PYTHONPATH=. python tests/posteriordb_check.py [NAME ...]
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from numpyro.diagnostics import effective_sample_size  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REF_DIR = ROOT / "tests" / "reference" / "posteriordb"
Z_TOL, SD_TOL = 4.0, 0.10


def _import_posteriordb():
    try:
        from bayeskit.datasets import posteriordb

        return posteriordb
    except ImportError:  # package still incomplete: load the module file directly
        path = ROOT / "bayeskit" / "datasets" / "posteriordb.py"
        spec = importlib.util.spec_from_file_location("_posteriordb", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


def _column(samples: dict, stan_name: str) -> np.ndarray:
    """(chain, draw) draws of a scalar Stan parameter like ``beta[2]``."""
    m = re.fullmatch(r"(\w+)(?:\[(\d+)\])?", stan_name)
    x = np.asarray(samples[m.group(1)])
    return x if m.group(2) is None else x[..., int(m.group(2)) - 1]


def check(pdb, name: str, seed: int = 0) -> bool:
    ref = json.loads((REF_DIR / f"{name}.json").read_text())
    problem = pdb.load(name)
    mcmc = MCMC(
        NUTS(problem.model),
        num_warmup=1000,
        num_samples=2000,
        num_chains=4,
        chain_method="vectorized",
        progress_bar=False,
    )
    t0 = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(seed), **problem.data)
    samples = mcmc.get_samples(group_by_chain=True)
    elapsed = time.perf_counter() - t0
    n_div = int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum())

    print(f"\n== {name}  ({elapsed:.0f}s, {n_div} divergences)")
    print(f"{'param':<14}{'ref mean':>13}{'mean':>13}{'z':>7}{'ref sd':>12}{'sd':>12}{'sd err':>8}{'ess':>7}  ok")
    ok_all, max_z, max_sd = True, 0.0, 0.0
    for pname, r in ref["params"].items():
        x = _column(samples, pname)
        mean, sd = float(x.mean()), float(x.std(ddof=1))
        ess = float(effective_sample_size(x))
        mcse = sd / np.sqrt(ess)
        z = (mean - r["mean"]) / np.hypot(mcse, r["mcse_mean"])
        sd_err = sd / r["sd"] - 1.0
        ok = abs(z) <= Z_TOL and abs(sd_err) <= SD_TOL
        ok_all &= ok
        max_z, max_sd = max(max_z, abs(z)), max(max_sd, abs(sd_err))
        print(
            f"{pname:<14}{r['mean']:>13.5g}{mean:>13.5g}{z:>7.2f}{r['sd']:>12.4g}{sd:>12.4g}"
            f"{sd_err:>8.3f}{ess:>7.0f}  {'ok' if ok else 'FAIL'}"
        )
    print(f"-> {'PASS' if ok_all else 'FAIL'}  max|z|={max_z:.2f}  max|sd err|={max_sd:.3f}")
    return ok_all


def main(argv: list[str]) -> int:
    pdb = _import_posteriordb()
    names = argv or list(pdb.NAMES)
    results = {n: check(pdb, n) for n in names}
    print("\nsummary:", ", ".join(f"{n}: {'PASS' if v else 'FAIL'}" for n, v in results.items()))
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
