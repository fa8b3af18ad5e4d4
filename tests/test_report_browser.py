"""The HTML report in a real browser: headless Chromium (Debian's package), driven by Playwright.

The page must load with no console error, every figure must decode and show at its size, and a
screenshot must hold what the page says: plot lines, not a blank page. Skipped where Chromium or
Playwright is missing, unless ``BAYESKIT_REQUIRE_BROWSER=1`` (CI sets it: there a missing browser fails).
"""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest

import bayeskit as bk

SCHOOLS = ["Choate", "Deerfield", "Phillips Andover", "Phillips Exeter", "Hotchkiss", "Lawrenceville", "St. Paul's",
           "Mt. Hermon"]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# as root in a sandboxed machine with no network: no sandbox, and no background connections to refuse
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def _browser_or_skip():
    required = os.environ.get("BAYESKIT_REQUIRE_BROWSER") == "1"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            raise
        pytest.skip("playwright is not installed (pip install playwright)")
    if not os.path.exists(CHROMIUM):
        if required:
            pytest.fail(f"BAYESKIT_REQUIRE_BROWSER=1 but there is no Chromium at {CHROMIUM} (apt-get install chromium)")
        pytest.skip("no Chromium (apt-get install chromium)")
    return sync_playwright


@pytest.fixture(scope="module")
def eight_schools_page(tmp_path_factory):
    from bayeskit.datasets import eight_schools

    post = bk.fit(eight_schools.model, data=eight_schools.DATA,
                  engine=bk.NUTS(chains=4, warmup=300, draws=300, target_accept=0.95, progress=False), seed=0,
                  coords={"school": SCHOOLS}, dims={"theta": ["school"], "theta_trans": ["school"]})
    path = tmp_path_factory.mktemp("report") / "eight_schools.html"
    return post.report(path, title="Eight schools (non-centred), NUTS")


def test_report_renders_in_chromium(eight_schools_page, tmp_path):
    from PIL import Image

    sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto("file://" + os.path.abspath(eight_schools_page), wait_until="load")
            assert errors == []
            assert page.title() == "Eight schools (non-centred), NUTS"
            headings = page.locator("h2").all_inner_texts()
            assert headings[:4] == ["Overview", "Checks", "Summary", "Plots"]
            # every figure decoded, at a real size, and laid out on the page
            images = page.evaluate("""Array.from(document.images).map(i => ({alt: i.alt, ok: i.complete,
                width: i.naturalWidth, height: i.naturalHeight, shown: i.getBoundingClientRect().width}))""")
            assert [i["alt"] for i in images] == ["Trace", "Rank", "Energy", "Posterior predictive check",
                                                  "LOO-PIT (y)"]
            for image in images:
                assert image["ok"] and image["width"] >= 300 and image["height"] >= 200 and image["shown"] >= 300, image
            # the summary's rows carry the schools' names (coords reach the page)
            assert "theta[Choate]" in page.locator("#summary").inner_text()
            shot = page.locator("figure").first.screenshot(path=str(tmp_path / "trace.png"))
            whole = page.screenshot(path=str(tmp_path / "page.png"))
        finally:
            browser.close()
    # the trace figure as shown: coloured chain lines on white, not a blank or grey box (measured: 88%
    # white, 2.5% saturated pixels; a blank figure has none, a failed image shows a grey icon)
    pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).reshape(-1, 3).astype(int)
    white = (pixels > 245).all(axis=1).mean()
    coloured = (pixels.max(axis=1) - pixels.min(axis=1) > 60).mean()
    assert 0.3 < white < 0.98 and coloured > 0.005, (white, coloured)
    top = np.asarray(Image.open(io.BytesIO(whole)).convert("RGB")).astype(int)
    assert top.shape[:2] == (900, 1200) and top.std() > 20  # the page's first screen: text and tables
