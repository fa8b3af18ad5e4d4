"""The docs run: every ```python block of README.md and docs/*.md is executed, so no page can go stale.

One test per page, found by glob, so a page added later is covered the day it lands. A page's blocks
run in order in one namespace, as a reader would paste them into one session, in a temporary working
directory (files a page writes stay out of the repository), with matplotlib on Agg.

Fast mode: some pages teach with full-size settings (200 SBC simulations, 3,500 PFN training steps).
`FAST` below swaps in smaller ones for the test only, page by page, each with its reason; the page
keeps what it teaches. Every entry must still match its page, so a stale one fails loudly.

Skips: a block that genuinely cannot run here (it needs a GPU, a download, hours of training) is left
out only through a marker the reader sees as harmless, on the line before its fence:

    <!-- docs-test: skip (needs a GPU) -->

Skipped blocks are counted and reported: a `DocsSkipWarning` per page that skips some, a pytest skip
for a page that skips all.

Tier: the page tests carry the `docs` marker. They cost minutes, nearly all of it XLA compiling each
page's programs, so the README's fast tier leaves them out (``-m "not slow and not docs"``) and CI runs
them as a step of their own (``pytest -m docs``): every page runs in CI, and the fast tier stays fast.

A second test checks that the pages' shell blocks name only scripts and files that exist (fast tier).
"""

from __future__ import annotations

import linecache
import re
import shlex
import sys
import traceback
import types
import warnings
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])  # not docs/gallery/: generated

# Per page (path from the repository root): (text on the page, text the test runs instead).
FAST: dict[str, list[tuple[str, str]]] = {
    # SBC refits NUTS 200 times and the PIT check takes 400 datasets (1.5 min on 2 cores): a tenth of each
    "docs/calibration.md": [("simulations=200", "simulations=20"), ("datasets=400", "datasets=40")],
    # 500 optimiser steps of a full and of a sparse deep kernel machine (1.5 min)
    "docs/dkm.md": [("steps=500", "steps=20")],
    # 1,000 posterior draws of the copula rule, each 5,000 forward steps (1.5 min of CPU)
    "docs/martingale.md": [("draws=1000)", "draws=100, horizon=1000)")],
    # training a PFN (3,500 steps of `TINY`) or a neural process (5,000 steps) takes minutes; 30 steps
    # check that training, saving, loading and predicting fit together
    "docs/pfn.md": [("bk.pfn.TINY,", "bk.pfn.TINY.replace(steps=30, warmup=5),")],
    "docs/neural_processes.md": [('NPTraining(model="mpnp")', 'NPTraining(model="mpnp", steps=30)')],
    # NUTS over kernel hyperparameters (a Cholesky per gradient: 4.5 min), 800 sparse variational steps,
    # 300 + 20 type-II ML steps: fewer points, steps and draws
    "docs/processes.md": [
        ("size=(100, 1)", "size=(30, 1)"),
        ("size=100)", "size=30)"),
        ("engine=bk.Exact())", "engine=bk.Exact(steps=30))"),
        ("engine=bk.NUTS())", "engine=bk.NUTS(chains=2, warmup=100, draws=100))"),
        ("bk.Exact(steps=20,", "bk.Exact(steps=3,"),
        ("steps=800", "steps=80"),
    ],
    # a bound from 10,000 x 1,000 importance weights (10 s), the variational autoencoder's 20,000 steps
    "docs/vi.md": [("post.evaluate(bk.vi.iwelbo(1000))", "post.evaluate(bk.vi.iwelbo(1000), n=500)"),
                   ("steps=20_000", "steps=200")],
}

PYTHON = ("python", "py")
SHELL = ("bash", "sh", "shell", "console", "zsh")
SKIP_MARKER = re.compile(r"<!--\s*docs-test:\s*skip\b\s*(?:\((?P<reason>[^)]*)\))?\s*-->")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")


class DocsSkipWarning(UserWarning):
    """Some python blocks of a page were skipped by a `docs-test: skip` marker."""


class Block(NamedTuple):
    lang: str
    index: int  # position among the page's blocks of this language, from 1
    line: int  # line of the page where the block's code starts, from 1
    code: str
    skip: str | None  # the reason, when a skip marker precedes the block


def read_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a markdown page, in order (also those indented in lists and notes)."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    count: dict[str, int] = {}
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m["indent"], m["fence"], m["lang"].lower()
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        i += 1  # the closing fence
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = SKIP_MARKER.search(before)
        count[lang] = count.get(lang, 0) + 1
        blocks.append(Block(lang, count[lang], start + 2, "\n".join(body) + "\n",
                            (marker["reason"] or "no reason given") if marker else None))
    return blocks


def page_id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def first_line(code: str) -> str:
    return next((line.strip() for line in code.splitlines() if line.strip()), "")


def python_blocks(path: Path) -> list[Block]:
    """The page's python blocks as the test runs them: with the page's FAST substitutions made."""
    blocks = [b for b in read_blocks(path) if b.lang in PYTHON]
    subs = FAST.get(page_id(path), [])
    for old, _ in subs:
        assert any(old in b.code for b in blocks), f"FAST entry for {page_id(path)} matches nothing there: {old!r}"
    for old, new in subs:
        blocks = [b._replace(code=b.code.replace(old, new)) for b in blocks]
    return blocks


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """A page's run leaves nothing behind: its files go to tmp_path, engines it defines are
    unregistered, figures closed, 64-bit JAX as it was."""
    import jax
    import matplotlib

    from bayeskit.core import registry

    monkeypatch.setenv("MPLBACKEND", "Agg")
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    engines, x64 = dict(registry._engines), jax.config.jax_enable_x64
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
    registry._engines.clear()
    registry._engines.update(engines)
    jax.config.update("jax_enable_x64", x64)


def python_pages() -> list:
    return [pytest.param(page, id=page_id(page), marks=[pytest.mark.docs])
            for page in PAGES if any(b.lang in PYTHON for b in read_blocks(page))]


@pytest.mark.parametrize("page", python_pages())
def test_page_runs(page: Path, isolated, monkeypatch):
    name = page_id(page)
    blocks = python_blocks(page)
    fast = " (with the FAST substitutions of tests/test_docs.py)" if name in FAST else ""
    # the page's namespace is a module, as a reader's script is: what it defines can be pickled by name
    module = types.ModuleType("bayeskit_docs_page")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    skipped, failure = [], None
    try:
        for b in blocks:
            if b.skip:
                skipped.append(f"block {b.index} at line {b.line} ({b.skip})")
                continue
            filename = f"{name}, python block {b.index}"
            source = "\n" * (b.line - 1) + b.code  # line numbers in tracebacks are the page's
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
            try:
                exec(compile(source, filename, "exec"), namespace)
            except Exception as exc:
                tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next))  # not this frame
                failure = (f"{name}: python block {b.index} of {len(blocks)} (line {b.line}) failed{fast}\n"
                           f"  first line: {first_line(b.code)}\n\n{tb}")
                break
    finally:
        for b in blocks:
            linecache.cache.pop(f"{name}, python block {b.index}", None)
    if failure:
        pytest.fail(failure, pytrace=False)
    if skipped:
        message = f"{name}: skipped {len(skipped)} of {len(blocks)} python blocks: " + "; ".join(skipped)
        if len(skipped) == len(blocks):
            pytest.skip(message)
        warnings.warn(message, DocsSkipWarning, stacklevel=1)


# -- shell blocks ----------------------------------------------------------------------------------

# a word that names a file of the repository: a relative path with a source-like suffix
REPO_FILE = re.compile(r"^(?:\./)?(?P<path>[\w.-]+(?:/[\w.-]+)*\.(?:py|sh|md|toml|cfg|ya?ml|json|txt|ipynb))$")
# options and redirections whose argument is a file the command writes, not one it reads
OUTPUT = re.compile(r"^(>|>>|\d>|-o|--out\w*|--output\w*|--json|--markdown|--html|--save\w*)$")


def shell_paths(code: str) -> list[str]:
    """Files a shell block reads: scripts run (`python x.py`, `bash x.sh`) and paths into the repository."""
    paths = []
    for line in code.replace("\\\n", " ").splitlines():
        line = re.sub(r"^\s*\$\s+", "", line)  # a console prompt
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            words = line.split()
        for before, word in zip(["", *words[:-1]], words, strict=True):
            if OUTPUT.match(before):
                continue
            word = word.split("=", 1)[1] if word.startswith("-") and "=" in word else word
            m = REPO_FILE.match(word.split("::")[0])  # pytest node ids: tests/test_x.py::test_y
            if m and ("/" in m["path"] or m["path"].endswith((".py", ".sh"))):
                paths.append(m["path"])
    return paths


@pytest.mark.parametrize("page", [p for p in PAGES if any(b.lang in SHELL for b in read_blocks(p))], ids=page_id)
def test_shell_blocks_name_existing_files(page: Path):
    missing = [f"{page_id(page)} line {b.line}: {path}"
               for b in read_blocks(page) if b.lang in SHELL
               for path in shell_paths(b.code) if not (ROOT / path).exists()]
    assert not missing, "shell blocks name files that are not in the repository:\n" + "\n".join(missing)
