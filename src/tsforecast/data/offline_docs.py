"""Data Docs that work offline: the CDN scripts, stylesheets and fonts shipped with the report.

Great Expectations builds ``reports/data_docs/`` with ``<script>`` and ``<link>`` tags that load
Bootstrap, jQuery, Popper, bootstrap-table, bootstrap-datepicker, Font Awesome and Vega from
public CDNs, and the GX logo from an S3 bucket; where those cannot be reached the pages render
unstyled and their result tables stay empty. :func:`localize_data_docs` runs after GX has built
the site: it copies the same files, vendored in this package (``offline_assets/``, from the npm
registry at the versions GX references; see its README for sources and licences), to
``static/vendor/`` in the site and rewrites every page to load them by relative path.
"""

from __future__ import annotations

import logging
import re
import shutil
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

ASSETS = "offline_assets"  # beside this module, inside the package
VENDOR_DIR = "static/vendor"  # inside the docs site
GX_IMAGES = "static/images"  # GX writes its own images here
GX_LOGO = "logo-long.png"

#: Every CDN URL GX 1.x's page templates reference -> the vendored file (``<package>-<version>/<path>``).
CDN_FILES: dict[str, str] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap-4.3.1/dist/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap-4.3.1/dist/js/bootstrap.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (
        "bootstrap-dark-1.1.0/dist/css/bootstrap-prefers-dark.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "bootstrap-datepicker-1.9.0/dist/css/bootstrap-datepicker.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "bootstrap-datepicker-1.9.0/dist/js/bootstrap-datepicker.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": (
        "bootstrap-table-1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (
        "bootstrap-table-1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table-1.19.1/dist/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table-1.19.1/dist/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
        "bootstrap-table-1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome-free-6.6.0/css/all.min.css",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js-1.12.9/dist/umd/popper.min.js",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega-5.33.1/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite-5.23.0/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed-6.29.0/build/vega-embed.min.js",
}
GX_ASSET_HOST = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"

_QUOTED = {url: re.compile(rf"(?<=[\"']){re.escape(url)}(?=[\"'])") for url in CDN_FILES}
_GX_IMAGE = re.compile(rf"{re.escape(GX_ASSET_HOST)}([\w.-]+)(?:\?[^\"')\s]*)?")
_TAG = re.compile(r"<(?:script|link)\b[^>]*>", re.IGNORECASE)
_SRI = re.compile(r"\s+(?:integrity|crossorigin)(?:=(?:\"[^\"]*\"|'[^']*'|[^\s>]*))?", re.IGNORECASE)
#: What a browser fetches on its own: script and link sources, images, CSS url(...).
REMOTE_LOADS = re.compile(
    r"<(?:script|link|img)\b[^>]*?\s(?:src|href)=[\"'](https?://[^\"']+)[\"']"
    r"|url\(\s*[\"']?(https?://[^\"')\s]+)",
    re.IGNORECASE,
)


def remote_loads(html: str) -> list[str]:
    """The URLs a browser would fetch from the network to render ``html`` (not the links one follows)."""
    return [a or b for a, b in REMOTE_LOADS.findall(html)]


def localize_page(html: str, prefix: str, local_images: set[str]) -> str:
    """``html`` with every known CDN asset at ``<prefix>static/vendor/...``, GX's logo at its local copy.

    ``prefix`` leads from the page back to the site root (``""``, ``"../"``, ...). Integrity
    and crossorigin attributes go from the rewritten tags: a browser refuses a file:// script
    that asks for CORS, and the vendored files are checked against GX's pins by the tests.
    """
    for url, local in CDN_FILES.items():
        html = _QUOTED[url].sub(f"{prefix}{VENDOR_DIR}/{local}", html)

    def image(m: re.Match[str]) -> str:
        name = m.group(1) if m.group(1) in local_images else GX_LOGO
        return f"{prefix}{GX_IMAGES}/{name}"

    html = _GX_IMAGE.sub(image, html)
    return _TAG.sub(lambda m: _SRI.sub("", m.group(0)) if f"{VENDOR_DIR}/" in m.group(0) else m.group(0), html)


def localize_data_docs(site: Path) -> list[str]:
    """Copy the vendored assets into ``site`` and point its pages at them; returns what stays remote.

    Call it after GX has built the site. A page still loading something from the network (a
    GX upgrade that references a new asset) is logged with the URL, not an error: the report
    still works online.
    """
    site = Path(site)
    with resources.as_file(resources.files(__package__).joinpath(ASSETS)) as assets:
        shutil.copytree(assets, site / VENDOR_DIR, dirs_exist_ok=True)
    images_dir = site / GX_IMAGES
    local_images = {p.name for p in images_dir.iterdir()} if images_dir.is_dir() else set()
    remote: list[str] = []
    for page in sorted(site.rglob("*.html")):
        if VENDOR_DIR in page.relative_to(site).as_posix():
            continue
        prefix = "../" * (len(page.relative_to(site).parts) - 1)
        text = page.read_text(encoding="utf-8")
        new = localize_page(text, prefix, local_images)
        if new != text:
            page.write_text(new, encoding="utf-8")
        remote += [f"{page.relative_to(site)}: {url}" for url in remote_loads(new)]
    for line in remote:
        log.warning("Data Docs page still loads from the network (not vendored): %s", line)
    return remote


__all__ = ["CDN_FILES", "localize_data_docs", "localize_page", "remote_loads"]
