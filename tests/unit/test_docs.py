"""The front page and the docs site: README.md stays short, links resolve, the site builds strictly."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tsforecast.config import Config

REPO = Path(__file__).resolve().parents[2]
README_MAX_LINES = 200
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = ("http://", "https://", "mailto:", "#")


def relative_links(page: Path) -> list[str]:
    """The Markdown link targets of ``page`` outside fenced code that point into the repo."""
    text = FENCE.sub("", page.read_text())
    return [t for t in LINK.findall(text) if not t.startswith(EXTERNAL)]


def test_readme_has_at_most_200_lines() -> None:
    n = len((REPO / "README.md").read_text().splitlines())
    assert n <= README_MAX_LINES, (
        f"README.md has {n} lines; move detail into docs/ (at most {README_MAX_LINES})"
    )


def test_readme_links_into_the_docs() -> None:
    assert any(t.startswith("docs/") for t in relative_links(REPO / "README.md"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_to_an_existing_file(page: Path) -> None:
    missing = [t for t in relative_links(page) if not (page.parent / t.split("#")[0]).exists()]
    assert not missing, f"{page.relative_to(REPO)} links to files that do not exist: {missing}"


def test_every_params_key_is_documented_in_configuration_md() -> None:
    text = (REPO / "docs" / "configuration.md").read_text()
    keys = [f"{s}.{k}" for s, f in Config.model_fields.items() for k in f.annotation.model_fields]
    missing = [k for k in keys if f"`{k}`" not in text]
    assert not missing, f"docs/configuration.md does not document {missing}"


@pytest.mark.slow
def test_mkdocs_build_strict_succeeds(tmp_path: Path) -> None:
    for module in ("mkdocs", "material"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: `make install-dev` installs the docs extras")
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, f"mkdocs build --strict failed:\n{out.stdout}\n{out.stderr}"
    assert (tmp_path / "site" / "index.html").is_file()
