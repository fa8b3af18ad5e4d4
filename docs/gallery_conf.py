"""mkdocs-gallery settings that YAML cannot hold (mkdocs.yml: plugins > gallery > conf_script).

The gallery's built-in "matplotlib" scraper shows the figures pyplot manages (ArviZ's plots). bayeskit and
its examples also build figures without pyplot, on a bare `matplotlib.figure.Figure` (no global state, no
backend switch), which pyplot's figure list never sees; `figure_scraper` shows those. A cell shows a
figure by binding it to a top-level name (``fig = result.plot()``), or a list, tuple or dict of them; each
figure is shown once, below the cell that first binds it.

Two presentation settings of the build process (not of the examples, which run the same on their own):
a warning shows on a page as ``Category: message``, without the build machine's file paths, and
deprecation warnings raised inside ArviZ (about its own use of matplotlib and pandas) are left out.
"""

from __future__ import annotations

import warnings
import weakref

# optax imports absl.logging, whose handler keeps the stderr it finds and closes it at exit: imported
# here, it keeps the real one rather than the gallery's capture of an example's output (which has no
# close(), so every build would end on an "Exception ignored in atexit callback").
import absl.logging  # noqa: F401
from mkdocs_gallery.scrapers import figure_md_or_html

_seen: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # script -> figures already considered


def _figures(value):
    from matplotlib.figure import Figure

    if isinstance(value, Figure):
        yield value
    elif isinstance(value, list | tuple | dict):
        for item in value.values() if isinstance(value, dict) else value:
            if isinstance(item, Figure):
                yield item


def figure_scraper(block, script) -> str:
    """Save the bare Figures the cell bound to top-level names and return the markdown that shows them.

    Runs before the "matplotlib" scraper: a pyplot-managed figure is marked seen and left to it (that
    scraper saves and closes it; a closed figure no longer looks managed, hence the mark)."""
    seen = _seen.setdefault(script, weakref.WeakSet())
    paths = []
    for value in list(script.run_vars.example_globals.values()):
        for fig in _figures(value):
            if fig in seen:
                continue
            seen.add(fig)
            if fig.canvas.manager is None:  # not pyplot's
                path = next(script.run_vars.image_path_iterator)
                fig.savefig(path)
                paths.append(path)
    return figure_md_or_html(paths, script) if paths else ""


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"{category.__name__}: {message}\n"


warnings.formatwarning = _format_warning
warnings.filterwarnings("ignore", category=DeprecationWarning, module="arviz")

conf = {"image_scrapers": (figure_scraper, "matplotlib")}
