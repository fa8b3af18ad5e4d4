"""Optional dependencies: a missing one says which extra installs it."""

from __future__ import annotations

import contextlib

#: top-level module -> the extra of pyproject.toml that installs it
EXTRAS = {"torch": "torch", "gpytorch": "torch", "linear_operator": "torch"}


@contextlib.contextmanager
def needs_extra(what: str):
    """Turn the ModuleNotFoundError of an optional dependency inside the block into one that names
    `what` needed it and the extra to install (``pip install 'bayeskit[torch]'``)."""
    try:
        yield
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        raise ModuleNotFoundError(f"{what} needs the `{extra}` extra, which is not installed (no module "
                                  f"{exc.name!r}): pip install 'bayeskit[{extra}]'", name=exc.name) from exc
