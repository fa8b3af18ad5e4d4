"""Package-level behaviour: fast import, lazy heavy dependencies, version, CLI."""

import subprocess
import sys

import pytest


def test_import_is_lazy():
    # `import bayeskit` must not pull in JAX, ArviZ or torch (they cost seconds).
    code = (
        "import sys, bayeskit; "
        "heavy = [m for m in ('jax', 'arviz', 'torch', 'gpytorch', 'numpyro', 'blackjax') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_names_resolve():
    import bayeskit as bk

    for name in ("fit", "load", "NUTS", "HMC", "Posterior", "DrawsPosterior", "DataError", "ConvergenceWarning"):
        assert getattr(bk, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bk.nope  # noqa: B018


def test_cli_version():
    import bayeskit

    cmd = [sys.executable, "-m", "bayeskit.cli", "--version"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"bayeskit {bayeskit.__version__}"


def test_cli_demo_writes_outputs(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "bayeskit.cli", "demo", "--out", str(tmp_path), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "Warning" not in out.stderr, out.stderr  # the demo as a new user first runs it is clean
    assert "r_hat" in out.stdout and "tau" in out.stdout
    assert "theta[Choate]" in out.stdout  # the schools' names label the summary (coords= and dims=)
    for name in ("trace.png", "rank.png", "posterior.nc", "report.html"):
        path = tmp_path / name
        assert path.stat().st_size > 1000, name
    assert (tmp_path / "trace.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
