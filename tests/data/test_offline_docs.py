"""Data Docs work offline: GX's CDN assets are vendored and the pages point at them (issue 19, item 10).

The browser check (a page opened with the network off) is tests/data/test_data_docs_browser.py.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import great_expectations
from tsforecast.data import offline_docs
from tsforecast.data.offline_docs import CDN_FILES, GX_ASSET_HOST, localize_page, remote_loads
from tsforecast.data.validate import run_validate
from tsforecast.paths import DATA_DOCS_DIR

GX_TEMPLATES = Path(great_expectations.__file__).parent / "render/view/templates"
ASSETS = Path(str(resources.files("tsforecast.data").joinpath(offline_docs.ASSETS)))
ASSET_URL = re.compile(r"<(?:script|link)\b[^>]*?\s(?:src|href)=\"(https?://[^\"]+)\"[^>]*>")


def gx_template_assets() -> dict[str, str | None]:
    """Every URL a GX page template loads with a script or link tag -> its pinned SRI hash (or None)."""
    found: dict[str, str | None] = {}
    for template in GX_TEMPLATES.glob("*.j2"):
        for tag in re.finditer(r"<(?:script|link)\b[^>]*>", template.read_text()):
            url = ASSET_URL.search(tag.group(0))
            if url:
                sri = re.search(r'integrity="([^"]+)"', tag.group(0))
                found[url.group(1)] = sri.group(1) if sri else None
    return found


def test_every_asset_gx_s_templates_load_is_vendored() -> None:
    assets = gx_template_assets()
    assert len(assets) >= 15, assets  # the templates were found and read
    missing = sorted(set(assets) - set(CDN_FILES))
    assert not missing, f"GX loads assets that are not vendored (see offline_assets/README.md): {missing}"
    for url, local in CDN_FILES.items():
        assert (ASSETS / local).is_file(), (url, local)
    assert GX_ASSET_HOST in (GX_TEMPLATES / "top_navbar.j2").read_text()  # the logo, replaced by GX's copy


def test_the_vendored_files_match_the_integrity_hashes_gx_pins() -> None:
    pinned = {url: sri for url, sri in gx_template_assets().items() if sri}
    assert len(pinned) == 2  # popper.js and bootstrap.js
    for url, sri in pinned.items():
        algo, _, want = sri.partition("-")
        got = base64.b64encode(hashlib.new(algo, (ASSETS / CDN_FILES[url]).read_bytes()).digest()).decode()
        assert got == want, url


def test_every_vendored_package_carries_its_licence_and_the_fonts_its_css_names() -> None:
    for folder in sorted(p for p in ASSETS.iterdir() if p.is_dir()):
        assert list(folder.glob("LICENSE*")), f"{folder.name}: no licence"
    css = (ASSETS / "fontawesome-free-6.6.0/css/all.min.css").read_text()
    for font in set(re.findall(r"url\(\.\./webfonts/([\w-]+\.woff2)\)", css)):
        assert (ASSETS / "fontawesome-free-6.6.0/webfonts" / font).is_file(), font
    total = sum(f.stat().st_size for f in ASSETS.rglob("*") if f.is_file())
    assert total < 2.5e6, f"{total / 1e6:.1f} MB of vendored assets"


def test_a_page_is_pointed_at_the_vendored_files_relative_to_its_own_depth() -> None:
    html = (
        '<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>\n'
        '<script src="https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js" '
        'integrity="sha384-x" crossorigin="anonymous"></script>\n'
        '<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/vega@5"/>\n'
        f"<style>.a {{ background: url('{GX_ASSET_HOST}full_logo_dark.png') }}</style>\n"
        f'<img src="{GX_ASSET_HOST}logo-long.png?d=20250101T000000Z">\n'
        '<a href="https://greatexpectations.io">GX</a>'
    )
    out = localize_page(html, "../../", {"logo-long.png"})
    assert '<script src="../../static/vendor/jquery-3.7.1/dist/jquery.min.js"></script>' in out
    assert '<script src="../../static/vendor/popper.js-1.12.9/dist/umd/popper.min.js"></script>' in out
    assert 'href="../../static/vendor/vega-5.33.1/build/vega.min.js"' in out
    assert "url('../../static/images/logo-long.png')" in out and 'src="../../static/images/logo-long.png"' in out
    assert '<a href="https://greatexpectations.io">' in out  # a link one follows is no load
    assert remote_loads(out) == []


def test_the_validate_stage_writes_data_docs_that_load_nothing_from_the_network(make_repo) -> None:
    n = 40
    frame = pd.DataFrame(
        {"timestamp": pd.date_range("2000-01-01", periods=n, freq="h"), "y": 10 + np.sin(np.arange(n))}
    )
    repo = make_repo(frame)
    c = repo.cfg
    run_validate(c.data, c.split, c.window, c.orchestration, repo.paths)
    site = repo.paths.reports / DATA_DOCS_DIR
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 3  # the index, the suite, one validation result
    for page in pages:
        html = page.read_text()
        assert remote_loads(html) == [], page
        for ref in re.findall(r'(?:src|href)="([^"]*static/vendor/[^"]+)"', html):
            assert (page.parent / ref).resolve().is_file(), (page, ref)


@pytest.mark.parametrize("url", sorted(CDN_FILES))
def test_each_cdn_url_is_rewritten_only_where_it_is_quoted_whole(url: str) -> None:
    assert localize_page(f'src="{url}.map"', "", set()) == f'src="{url}.map"'
