"""The XLA:CPU hang of batched LAPACK kernels, reproduced standalone (JAX and NumPy only).

A jitted, vmapped GP predictive mixture (two batched solves over 500 posterior draws) is called
repeatedly. With XLA's default CPU scheduler the two solves may run at once on XLA's intra-op thread
pool (one thread per core); each batched LAPACK kernel splits its batch over the same pool and waits
for the pieces, so on a 2-core machine both pool threads end up waiting for work no thread is left
to run: the process hangs with no CPU use (JAX 0.10.2; `gdb` shows two ``tf_XLAEigen`` workers in
``jax::ParallelBatchMap`` -> ``absl::BlockingCounter::Wait`` under ``lapack_dtrsm_ffi``).
``--xla_cpu_enable_concurrency_optimized_scheduler=false`` (which ``import bayeskit`` sets, see
`bayeskit.core.xla_flags`) orders the kernels one after the other and the hang is gone.

Each setting runs in fresh processes; a run that makes no progress for 20 s counts as hung:

    python benchmarks/repro_lapack_hang.py                 # 3 runs with each setting
    python benchmarks/repro_lapack_hang.py --runs 5 --calls 4000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

SETTINGS = {
    "XLA defaults": "",
    "--xla_cpu_multi_thread_eigen=false": "--xla_cpu_multi_thread_eigen=false",
    "bayeskit's (concurrency-optimized scheduler off)": "--xla_cpu_enable_concurrency_optimized_scheduler=false",
}


def child(calls: int) -> int:
    import faulthandler

    import jax
    import jax.numpy as jnp
    import numpy as np

    jax.config.update("jax_enable_x64", True)

    @jax.jit
    def mixture(lengthscales, noises, X, y, X_test, y_test):
        def one(ell, noise):
            k = lambda a, b: jnp.exp(-0.5 * (a[:, None] - b[None, :]) ** 2 / ell**2)  # noqa: E731
            A, Ks = k(X, X) + noise * jnp.eye(X.shape[0]), k(X, X_test)
            mean = Ks.T @ jnp.linalg.solve(A, y)
            var = 1.0 + noise - jnp.sum(Ks * jnp.linalg.solve(A, Ks), 0)
            return jax.scipy.stats.norm.logpdf(y_test, mean, jnp.sqrt(var))

        lp = jax.vmap(one)(lengthscales, noises)
        return jax.scipy.special.logsumexp(lp, 0) - jnp.log(lp.shape[0])

    rng = np.random.default_rng(0)
    for i in range(calls):
        faulthandler.dump_traceback_later(20, exit=True)  # 20 s without progress: a hang (exit code 1)
        n = (5, 10, 20, 30)[i % 4]
        X, X_test = rng.uniform(size=n), rng.uniform(size=100)
        ell = np.exp(rng.normal(np.log(0.2), 0.5, 500))
        noise = np.exp(rng.normal(np.log(0.01), 0.5, 500))
        float(mixture(ell, noise, X, np.sin(6 * X), X_test, np.sin(6 * X_test)).mean())
    faulthandler.cancel_dump_traceback_later()
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args.calls)
    print(f"{os.cpu_count()} cores; {args.calls} calls per run; a run hangs when 20 s pass without a call\n")
    print("| XLA_FLAGS | runs finished | runs hung | seconds per finished run |")
    print("|---|---:|---:|---:|")
    for name, flags in SETTINGS.items():
        finished, hung, seconds = 0, 0, []
        for _ in range(args.runs):
            env = {**os.environ, "XLA_FLAGS": flags, "BAYESKIT_XLA_FLAGS": "off"}
            start = time.perf_counter()
            rc = subprocess.run([sys.executable, __file__, "--child", "--calls", str(args.calls)], env=env,
                                capture_output=True).returncode
            if rc == 0:
                finished += 1
                seconds.append(time.perf_counter() - start)
            else:
                hung += 1
        mean = f"{sum(seconds) / len(seconds):.0f}" if seconds else "-"
        print(f"| {name} | {finished} | {hung} | {mean} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
