"""The ``bayeskit`` command: ``bayeskit demo``, ``bayeskit report fit.nc -o report.html``,
``bayeskit launch -n 2 script.py [args]`` and ``bayeskit --version``."""

from __future__ import annotations

import argparse
import os
import sys

from ._version import __version__

DEMO_TARGET_ACCEPT = 0.95


def demo(out: str, seed: int, chains: int, draws: int, progress: bool) -> int:
    """Eight schools end to end: fit, summary, trace/rank PNGs, HTML report, netCDF, round trip."""
    import bayeskit as bk
    from bayeskit.datasets import eight_schools
    from bayeskit.diagnostics import save_rank_plot, save_trace_plot

    os.makedirs(out, exist_ok=True)
    # Even non-centred, eight schools keeps a little of its funnel: at Stan's default target acceptance
    # (0.8) a few of 4,000 transitions diverge. A higher target takes smaller steps there, as Stan's
    # and NumPyro's eight-schools examples do, so the demo's draws are clean.
    print(f"bayeskit {__version__}: eight schools (non-centred), NUTS, {chains} chains x {draws} draws, "
          f"target acceptance {DEMO_TARGET_ACCEPT}")
    post = bk.fit(
        eight_schools.model,
        data=eight_schools.DATA,
        engine=bk.NUTS(chains=chains, warmup=draws, draws=draws, target_accept=DEMO_TARGET_ACCEPT, progress=progress),
        seed=seed,
        coords=eight_schools.COORDS,
        dims=eight_schools.DIMS,
    )
    import pandas as pd

    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print(post.summary())
    paths = {
        "trace plot": save_trace_plot(post, os.path.join(out, "trace.png"), var_names=["mu", "tau", "theta"]),
        "rank plot": save_rank_plot(post, os.path.join(out, "rank.png"), var_names=["mu", "tau"]),
    }
    paths["report (HTML)"] = post.report(os.path.join(out, "report.html"), title="Eight schools (non-centred), NUTS")
    nc = os.path.join(out, "posterior.nc")
    post.save(nc)
    paths["posterior (netCDF)"] = nc
    back = bk.load(nc)
    assert all((back.draws[k] == v).all() for k, v in post.draws.items()), "netCDF round trip changed the draws"
    ppc = post.predict()
    print(f"posterior predictive: y has {ppc['y'].shape[0]} draws of {ppc['y'].shape[1]} schools")
    for what, path in paths.items():
        print(f"wrote {what}: {os.path.abspath(path)}")
    return 0


def report(path: str, out: str | None, title: str | None, var_names: list[str] | None) -> int:
    """A saved posterior (`Posterior.save`'s netCDF) as one self-contained HTML page."""
    import bayeskit as bk
    from bayeskit.core.errors import BayeskitError

    out = out or os.path.splitext(path)[0] + ".html"
    try:
        written = bk.load(path).report(out, title=title, var_names=var_names)
    except BayeskitError as err:  # a bad path or file: its message, not a traceback
        print(f"bayeskit report: {err}", file=sys.stderr)
        return 2
    print(f"wrote {os.path.abspath(written)}")
    return 0


LAUNCH_GRACE_SECONDS = 2.0  # a process asked to stop (SIGTERM) is killed after this long (JAX catches SIGTERM)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _core_sets(nprocs: int) -> list[list[int] | None]:
    """The CPU cores of each launched process: this process's cores in ``nprocs`` contiguous shares
    (each at least one core; round robin when there are fewer cores than processes). None where the
    platform cannot pin (not Linux)."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return [None] * nprocs
    if len(cores) < nprocs:
        return [[cores[i % len(cores)]] for i in range(nprocs)]
    bounds = [round(i * len(cores) / nprocs) for i in range(nprocs + 1)]
    return [cores[bounds[i]:bounds[i + 1]] for i in range(nprocs)]


def launch_env(i: int, nprocs: int, jax_port: int, torch_port: int, threads: int, base=None) -> dict:
    """The environment of launched process ``i``: JAX's distributed runtime (`core.distributed`, read
    at ``import bayeskit``), torch.distributed's ``env://`` rendezvous and the thread pools' sizes."""
    from .core import distributed

    env = dict(os.environ if base is None else base)
    env.update({
        distributed.ENV_COORDINATOR: f"127.0.0.1:{jax_port}",
        distributed.ENV_NUM_PROCESSES: str(nprocs),
        distributed.ENV_PROCESS_ID: str(i),
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(torch_port),
        "WORLD_SIZE": str(nprocs), "RANK": str(i), "LOCAL_RANK": str(i), "LOCAL_WORLD_SIZE": str(nprocs),
        "PYTHONUNBUFFERED": "1",
    })
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    return env


def launch(nprocs: int, script: str, args: list[str], threads: int | None = None, pin: bool = True,
           module: bool = False) -> int:
    """Run ``script`` (or, with `module`, ``python -m script``) as ``nprocs`` processes of one JAX
    distributed runtime on this machine; each output line is prefixed with ``[rank]``. When a process
    fails, the others are stopped (a collective would otherwise wait for it until its timeout), and the
    exit status is the first failure's (128 + signal for a signal); 0 when all succeed.

    Each process is pinned to its share of this process's cores (`pin`) and its thread pools (OpenMP,
    MKL, OpenBLAS; bayeskit's NUTS threads follow the pinning) get that many threads, or `threads`."""
    import signal
    import subprocess
    import threading
    import time

    if nprocs < 1:
        print("bayeskit launch: -n must be at least 1", file=sys.stderr)
        return 2
    if not module and not os.path.exists(script):
        print(f"bayeskit launch: no such script {script!r}", file=sys.stderr)
        return 2
    core_sets = _core_sets(nprocs) if pin else [None] * nprocs
    jax_port, torch_port = _free_port(), _free_port()
    out_lock = threading.Lock()
    procs = []
    for i in range(nprocs):
        cores = core_sets[i]
        n_threads = threads or (len(cores) if cores else max(1, (os.cpu_count() or 1) // nprocs))
        env = launch_env(i, nprocs, jax_port, torch_port, n_threads)
        cmd = [sys.executable, *(["-m"] if module else []), script, *args]
        pre = (lambda cores=cores: os.sched_setaffinity(0, cores)) if cores else None
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, preexec_fn=pre))

    def pump(i, proc):
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode(errors="replace")
            with out_lock:
                sys.stdout.write(f"[{i}] {line if line.endswith(chr(10)) else line + chr(10)}")
                sys.stdout.flush()

    pumps = [threading.Thread(target=pump, args=(i, p), daemon=True) for i, p in enumerate(procs)]
    for t in pumps:
        t.start()

    def stop_all():
        for p in procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + LAUNCH_GRACE_SECONDS
        for p in procs:
            try:
                p.wait(max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    failed = None  # (rank, status)
    try:
        while failed is None:
            running = [p.poll() is None for p in procs]  # poll every process (any() would stop at the first)
            failed = next(((i, p.returncode) for i, p in enumerate(procs) if p.returncode not in (None, 0)), None)
            if not any(running):
                break
            time.sleep(0.05)
        failed = failed or next(((i, p.returncode) for i, p in enumerate(procs) if p.returncode), None)
        if failed is not None:
            with out_lock:
                print(f"bayeskit launch: process {failed[0]} exited with status {failed[1]}; stopping the others",
                      file=sys.stderr, flush=True)
            stop_all()
    except KeyboardInterrupt:
        stop_all()
        failed = (None, -signal.SIGINT)
    for t in pumps:
        t.join(timeout=LAUNCH_GRACE_SECONDS)
    if failed is None:
        return 0
    status = failed[1]
    return 128 - status if status < 0 else status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bayeskit", description="Bayesian inference: model -> fit -> Posterior.")
    parser.add_argument("--version", action="version", version=f"bayeskit {__version__}")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("demo", help="fit eight schools with NUTS and write a summary, plots and a netCDF file")
    p.add_argument("--out", default="bayeskit-demo", help="output folder (default: ./bayeskit-demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=1000, help="warmup and kept draws per chain")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    r = sub.add_parser("report", help="write a saved posterior (netCDF) as one self-contained HTML page")
    r.add_argument("path", help="a posterior file written by Posterior.save / bayeskit demo")
    r.add_argument("-o", "--out", default=None, help="the HTML file (default: the input's name with .html)")
    r.add_argument("--title", default=None, help="the page's title (default: posterior class and engine)")
    r.add_argument("--var-names", nargs="+", default=None, help="variables to summarise and plot (default: all "
                   "that fit)")
    la = sub.add_parser("launch", help="run a script as N processes of one JAX distributed runtime on this "
                        "machine (chains and SMC runs are spread over them)")
    la.add_argument("-n", "--nprocs", type=int, required=True, help="number of processes")
    la.add_argument("--threads", type=int, default=None, help="threads per process for OpenMP/MKL/OpenBLAS "
                    "(default: its share of the cores)")
    la.add_argument("--no-pin", action="store_true", help="do not pin each process to its share of the cores")
    la.add_argument("-m", dest="module", action="store_true", help="the script is a module name (python -m)")
    la.add_argument("script", help="the Python script (or module, with -m) every process runs")
    la.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the script")
    args = parser.parse_args(argv)
    if args.command == "launch":
        return launch(args.nprocs, args.script, args.args, args.threads, not args.no_pin, args.module)
    if args.command == "demo":
        return demo(args.out, args.seed, args.chains, args.draws, not args.no_progress)
    if args.command == "report":
        return report(args.path, args.out, args.title, args.var_names)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
