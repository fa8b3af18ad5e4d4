"""Development tasks: ``nox -s tests lint docs examples bench`` (``nox -l`` lists them).

Each session gets its own virtual environment under ``.nox/`` made with the standard ``venv``
module and Python 3.11 (found on PATH as ``python3.11``). To use another interpreter, e.g. on a
machine with only 3.12: ``nox -s tests --force-python 3.12``. Arguments after ``--`` go to the
underlying command, e.g. ``nox -s tests -- -k posterior -x``.
"""

from __future__ import annotations

import glob
import os

import nox

PYTHON = "3.11"
LINT_PATHS = ("bayeskit", "tests", "benchmarks", "examples", "noxfile.py")

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests", "docs"]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Fast test tier, in parallel: pytest -m "not slow and not docs" -n auto."""
    session.install("-e", ".[dev,torch]")
    session.run("pytest", "-m", "not slow and not docs", "-n", "auto", *session.posargs)


@nox.session(python=PYTHON)
def slow(session: nox.Session) -> None:
    """Long statistical and benchmark-style tests: pytest -m slow."""
    session.install("-e", ".[dev,torch]")
    session.run("pytest", "-m", "slow", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check (rules in pyproject.toml); formatting is not enforced."""
    session.install("ruff>=0.6")
    paths = [p for p in LINT_PATHS if os.path.exists(p)]
    session.run("ruff", "check", *paths, *session.posargs)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the mkdocs-material site into site/, failing on any warning. The build runs every
    examples/*.py into the gallery (mkdocs-gallery), in the short form unless BAYESKIT_FAST=0 is set;
    an example that raises fails it."""
    session.install("-e", ".[dev,torch]")
    # NO_MKDOCS_2_WARNING: silences mkdocs-material's end-of-life banner (not a build warning)
    env = {"NO_MKDOCS_2_WARNING": "1", "MPLBACKEND": "Agg", "BAYESKIT_FAST": os.environ.get("BAYESKIT_FAST", "1")}
    session.run("mkdocs", "build", "--strict", *session.posargs, env=env)
    session.run("pytest", "-m", "docs", "-n", "auto", "tests/test_docs.py")  # every python block of the pages


@nox.session(python=PYTHON)
def examples(session: nox.Session) -> None:
    """Run examples/*.py as plain scripts, the way a reader does (the docs session runs them inside the
    gallery): all in their short form (BAYESKIT_FAST=1), or the ones named in full, e.g.
    ``nox -s examples -- eight_schools lcpfn``."""
    names = session.posargs
    scripts = [f"examples/{n.removesuffix('.py')}.py" for n in names] or sorted(glob.glob("examples/*.py"))
    if not scripts:
        session.skip("no examples/*.py")
    session.install("-e", ".[torch]")
    for script in scripts:
        session.log(f"running {script}")
        session.run("python", script, env={"BAYESKIT_FAST": "0" if names else "1", "MPLBACKEND": "Agg"})


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """bayeskit NUTS vs NumPyro NUTS: python benchmarks/nuts_vs_numpyro.py [options]."""
    session.install("-e", ".")
    session.run("python", "benchmarks/nuts_vs_numpyro.py", *session.posargs)
