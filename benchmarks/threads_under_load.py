"""PFN training step time alone and beside busy processes, for torch thread settings.

Each configuration runs in a fresh process: a TINY PFN on a GP prior is trained for a few warm-up
steps (compiling the prior's sampler), then `k` processes that spin on a core are started and 40
more steps are timed. ``threads``: bayeskit's default "auto" (the cores other processes leave idle,
`bayeskit.core.threads`), a fixed 1, and None (torch's own setting: one thread per core, the old
default). Run from the repository root:

    python benchmarks/threads_under_load.py                 # the table for docs/benchmarks.md
    python benchmarks/threads_under_load.py --busy 0 1      # fewer configurations
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def worker(threads: str, busy: int, steps: int) -> float:
    """ms per training step with `busy` spinning processes beside this one."""
    import bayeskit as bk
    from bayeskit.models.kernels import RBF
    from bayeskit.models.processes import ScaleMixtureProcess

    setting = None if threads == "none" else threads if threads == "auto" else int(threads)
    prior = bk.pfn.ProcessPrior(ScaleMixtureProcess(RBF(lengthscale=0.3), noise=0.05))
    bk.pfn.train(prior, bk.pfn.Training(steps=12, warmup=2, border_samples=2000, threads=setting), seed=0,
                 progress=False)
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        time.sleep(0.5)
        start = time.perf_counter()
        bk.pfn.train(prior, bk.pfn.Training(steps=steps, warmup=2, border_samples=2000, threads=setting), seed=1,
                     progress=False)
        return (time.perf_counter() - start) / steps * 1e3
    finally:
        for p in spinners:
            p.kill()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", nargs="+", default=["auto", "1", "none"])
    p.add_argument("--busy", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.steps)))
        return 0
    rows = {}
    for threads in args.threads:
        for busy in args.busy:
            out = subprocess.run([sys.executable, __file__, "--worker", threads, str(busy), "--steps", str(args.steps)],
                                 capture_output=True, text=True, check=True)
            rows[(threads, busy)] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"threads={threads} busy={busy}: {rows[(threads, busy)]:.1f} ms/step", file=sys.stderr, flush=True)
    print(f"{os.cpu_count()} cores; ms per training step (TINY PFN, GP prior), {args.steps} steps after warm-up\n")
    print("| torch threads | " + " | ".join(f"{b} busy process{'es' if b != 1 else ''}" for b in args.busy) + " |")
    print("|---|" + "---:|" * len(args.busy))
    for threads in args.threads:
        name = {"auto": '"auto" (default)', "none": "None (torch: one per core)"}.get(threads, threads)
        print(f"| {name} | " + " | ".join(f"{rows[(threads, b)]:.0f}" for b in args.busy) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
