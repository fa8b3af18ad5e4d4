"""Strong and weak scaling of NUTS chains and PaRIS runs over processes (issue 19), and the cost of
computing SMC runs in fixed blocks (`engines.smc.engine.RUN_BLOCK`).

    python benchmarks/scaling.py                      # 1 vs 2 processes, small sizes
    python benchmarks/scaling.py --procs 1 2 4 8 --chains 64 --runs 64 --draws 1000
    python benchmarks/scaling.py --blocks             # PaRIS run-block sizes 1, 2, 4, 8 in one process

Each configuration runs as its own `bayeskit launch -n P` (P > 1) or as one process pinned to one core
(P = 1: one device, the unit a process gets from the launcher on a CPU machine), fits once to compile,
then times a second fit (steady state: compilation excluded). Strong scaling keeps the total work
(chains, runs) fixed; weak scaling gives every process the P = 1 work. It reports throughput per second
(NUTS: kept draws over all chains; PaRIS: runs) in total and per process (a process has one device on
CPU; on a multi-GPU node it has its local devices), and the ratios to P = 1 (strong: speed-up; weak:
efficiency). On a machine with fewer cores than processes the ratios measure overhead, not speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.abspath(__file__)


def worker(kind: str, n: int, draws: int, particles: int, T: int, block: int | None) -> None:
    import numpy as np

    import bayeskit as bk
    from bayeskit.core import distributed

    if kind == "nuts":
        import numpyro
        import numpyro.distributions as dist

        def model(x, y=None):
            w = numpyro.sample("w", dist.Normal(0, 1).expand([5]))
            s = numpyro.sample("s", dist.HalfNormal(1.0))
            numpyro.sample("y", dist.Normal(x @ w, s), obs=y)

        rng = np.random.default_rng(0)
        x = rng.standard_normal((200, 5))
        data = {"x": x, "y": x @ np.arange(5.0) + rng.standard_normal(200)}
        engine = bk.NUTS(chains=n, warmup=draws, draws=draws, progress=False)
        work = n * draws
    else:
        from bayeskit.engines.smc import engine as smc_engine
        from bayeskit.models.state_space import LinearGaussian

        if block:
            smc_engine.RUN_BLOCK = block
        model = LinearGaussian.scalar(a=0.9, c=1.0, q=1.0, r=1.0)
        data = {"y": np.random.default_rng(1).standard_normal(T)}
        engine = bk.PaRIS(n_particles=particles, functional="score", runs=n, progress=False)
        work = n
    import warnings

    warnings.simplefilter("ignore")
    bk.fit(model, data, engine=engine, seed=0)  # compile
    distributed.barrier("timed")
    t = time.perf_counter()
    bk.fit(model, data, engine=engine, seed=1)
    seconds = time.perf_counter() - t
    if distributed.is_root():
        print("RESULT " + json.dumps({"kind": kind, "procs": distributed.process_count(), "n": n,
                                      "devices": len(__import__("jax").devices()), "seconds": seconds,
                                      "per_second": work / seconds, "block": block}), flush=True)


def measure(kind, procs, n, args, block=None) -> dict:
    cmd_tail = [HERE, "--worker", kind, str(n), str(args.draws), str(args.particles), str(args.T), str(block or 0)]
    if procs == 1:
        try:
            first = sorted(os.sched_getaffinity(0))[:1]
            pre = (lambda: os.sched_setaffinity(0, first)) if args.pin_single else None
        except AttributeError:
            pre = None
        out = subprocess.run([sys.executable, *cmd_tail], capture_output=True, text=True, preexec_fn=pre)
    else:
        out = subprocess.run([sys.executable, "-m", "bayeskit.cli", "launch", "-n", str(procs), *cmd_tail],
                             capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if "RESULT " in line:
            return json.loads(line.split("RESULT ", 1)[1])
    raise RuntimeError(f"{kind} on {procs} process(es) failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--chains", type=int, default=8, help="NUTS chains at P = 1")
    p.add_argument("--runs", type=int, default=8, help="PaRIS runs at P = 1")
    p.add_argument("--draws", type=int, default=300, help="NUTS warmup and kept draws per chain")
    p.add_argument("--particles", type=int, default=256)
    p.add_argument("--T", type=int, default=100)
    p.add_argument("--no-pin-single", dest="pin_single", action="store_false",
                   help="let the P = 1 run use every core (default: one core, as each launched process gets one "
                        "when there are as many processes as cores)")
    p.add_argument("--blocks", action="store_true", help="time PaRIS run-block sizes 1, 2, 4, 8 in one process")
    p.add_argument("--only", choices=("nuts", "paris"), default=None)
    args = p.parse_args(argv)
    if args.worker:
        kind, n, draws, particles, T, block = args.worker
        worker(kind, int(n), int(draws), int(particles), int(T), int(block) or None)
        return 0
    if args.blocks:
        print(f"PaRIS, {args.runs} runs, {args.particles} particles, T = {args.T}: seconds per fit by run block")
        for block in (1, 2, 4, 8):
            r = measure("paris", 1, args.runs, args, block)
            print(f"  block {block}: {r['seconds']:.3f} s ({r['per_second']:.2f} runs/s)", flush=True)
        return 0
    print(f"cores: {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()}")
    for kind, base in (("nuts", args.chains), ("paris", args.runs)):
        if args.only and kind != args.only:
            continue
        unit = "draws/s" if kind == "nuts" else "runs/s"
        for mode in ("strong", "weak"):
            ref = None
            for procs in args.procs:
                n = base if mode == "strong" else base * procs
                r = measure(kind, procs, n, args)
                ref = ref or r
                ratio = r["per_second"] / ref["per_second"]
                what = "speed-up" if mode == "strong" else "efficiency"
                print(f"{kind:5s} {mode:6s} P={procs} n={n:4d}: {r['seconds']:7.2f} s  {r['per_second']:9.1f} {unit} "
                      f"total, {r['per_second'] / procs:9.1f} per process ({r['devices']} device(s))  "
                      f"{what} {ratio if mode == 'strong' else ratio / procs:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
