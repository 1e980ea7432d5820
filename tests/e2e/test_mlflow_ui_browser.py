"""The MLflow UI of a real server, in Debian's headless Chromium: the run and the model are there.

Playwright drives ``/usr/bin/chromium`` (no browser is downloaded). Screenshots are kept
in the repo's ``reports/`` (``mlflow_ui_runs.png``, ``mlflow_ui_model.png``). Without
Chromium the tests fail in CI (``CI=true``) and are skipped elsewhere, with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from tests.helpers.mlflow_fixtures import (  # noqa: F401
    E2E_MODEL,
    REPO_ROOT,
    ServerRegistration,
    fixture_mlflow_server,
    fixture_server_registration,
    fixture_tiny_repo_template,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = Path(os.environ.get("TSFORECAST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SHOTS = REPO_ROOT / "reports"
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from the system, driven by Playwright."""
    if not CHROMIUM.is_file():
        reason = (
            f"{CHROMIUM} not found: install Debian's Chromium (`apt-get install -y chromium`); "
            "the browser tests never download one"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page in its own browser context."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    try:
        yield pg
    finally:
        context.close()


def test_ui_lists_the_registered_run(page: Any, server_registration: ServerRegistration) -> None:
    reg = server_registration
    run = MlflowClient(tracking_uri=reg.server.url).get_run(reg.result["run_id"])
    page.goto(f"{reg.server.url}/#/experiments/{reg.result['experiment_id']}/runs")
    page.get_by_text(run.info.run_name, exact=True).first.wait_for(state="visible")
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "mlflow_ui_runs.png"), full_page=True)
    assert (SHOTS / "mlflow_ui_runs.png").stat().st_size > 10_000


def test_ui_shows_the_model_with_its_champion_version(
    page: Any, server_registration: ServerRegistration
) -> None:
    reg = server_registration
    page.goto(f"{reg.server.url}/#/models/{E2E_MODEL}")
    page.get_by_text(E2E_MODEL).first.wait_for(state="visible")
    page.get_by_text(f"Version {reg.result['version']}").first.wait_for(state="visible")
    page.get_by_text("champion").first.wait_for(state="visible")
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "mlflow_ui_model.png"), full_page=True)
    assert (SHOTS / "mlflow_ui_model.png").stat().st_size > 10_000
