"""The validate stage's Data Docs in Chromium with the network off (issue 19, item 10).

Every page opens from the file system alone: no request leaves the machine, every stylesheet
and script loads (Bootstrap styles the page, jQuery and bootstrap-table fill the results table,
Font Awesome draws the icons), and nothing fails to load.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.helpers.chromium import chromium
from tsforecast.data.validate import run_validate
from tsforecast.paths import DATA_DOCS_DIR

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT_MS = 30_000
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")

# a link's sheet is null until its stylesheet has loaded (file:// pages may not read the rules themselves)
STYLESHEETS_LOADED = """() => Array.from(document.querySelectorAll('link[rel=stylesheet]'))
    .map(l => [l.getAttribute('href'), l.sheet !== null])"""
LIBRARIES = """() => [typeof jQuery, typeof jQuery.fn.bootstrapTable, typeof jQuery.fn.datepicker,
    typeof Popper, typeof vega, typeof vegaLite, typeof vegaEmbed]"""  # vega, vegaLite: namespaces
FONT_AWESOME_LOADED = """async () => { await document.fonts.ready;
    return Array.from(document.fonts).filter(f => f.family.includes('Font Awesome') && f.status === 'loaded')
        .map(f => f.family); }"""


@pytest.fixture
def site(make_repo) -> Path:
    """reports/data_docs/ as the validate stage builds it for a small clean series."""
    n = 40
    frame = pd.DataFrame(
        {"timestamp": pd.date_range("2000-01-01", periods=n, freq="h"), "y": 10 + np.sin(np.arange(n))}
    )
    repo = make_repo(frame)
    c = repo.cfg
    run_validate(c.data, c.split, c.window, c.orchestration, repo.paths)
    return repo.paths.reports / DATA_DOCS_DIR


@pytest.fixture
def offline_page() -> Iterator[tuple[Any, list[str], list[str]]]:
    """A page with the network off: (page, requests that left the machine, requests that failed)."""
    with chromium() as browser:
        context = browser.new_context(offline=True, viewport={"width": 1440, "height": 900})
        network: list[str] = []
        failed: list[str] = []
        context.route("http*://**", lambda route: route.abort())
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("request", lambda r: None if r.url.startswith(LOCAL_SCHEMES) else network.append(r.url))
        page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
        try:
            yield page, network, failed
        finally:
            context.close()


def test_the_index_renders_styled_with_its_results_table_filled_and_no_network(
    site: Path, offline_page: tuple[Any, list[str], list[str]]
) -> None:
    page, network, failed = offline_page
    page.goto((site / "index.html").as_uri(), wait_until="load")
    rows = page.locator("#section-1-content-block-2-1-body-table tbody tr")
    rows.first.wait_for(state="visible")
    assert "tsforecast-validate" in rows.first.inner_text()  # bootstrap-table built the row from the data

    assert network == [], f"the page loaded from the network: {network}"
    assert failed == [], failed
    sheets = page.evaluate(STYLESHEETS_LOADED)
    assert len(sheets) >= 6 and all(ok for _, ok in sheets), sheets
    assert page.evaluate(LIBRARIES) == ["function"] * 4 + ["object", "object", "function"]
    assert page.evaluate(FONT_AWESOME_LOADED), "no Font Awesome face was loaded"
    assert page.evaluate("getComputedStyle(document.querySelector('.navbar')).display") == "flex"  # Bootstrap's


def test_every_page_of_the_site_loads_nothing_from_the_network(
    site: Path, offline_page: tuple[Any, list[str], list[str]]
) -> None:
    page, network, failed = offline_page
    pages = sorted(site.rglob("*.html"))
    pages = [p for p in pages if "static" not in p.relative_to(site).parts]
    assert len(pages) >= 3
    for html in pages:
        page.goto(html.as_uri(), wait_until="load")
        sheets = page.evaluate(STYLESHEETS_LOADED)
        assert sheets and all(ok for _, ok in sheets), (html, sheets)
        assert page.evaluate("typeof jQuery.fn.bootstrapTable") == "function", html
    assert network == [], f"pages loaded from the network: {network}"
    assert failed == [], failed
