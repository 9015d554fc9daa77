"""Browser fixtures: Playwright driving Debian's Chromium (never a downloaded browser), and the folder
where page screenshots are kept as test artifacts (printed at the end of the run)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(os.environ.get("ART_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")) / "ui"


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None. Only a missing Chromium (a Debian package the
    setup installs when it may) is a reason to skip; the playwright package is in the dev extra, so
    its absence is a broken setup and fails the tests that need it."""
    if not CHROMIUM.exists():
        return "Debian's Chromium is not installed (/usr/bin/chromium): apt-get install -y chromium (.ci/run does)"
    return None


def require_playwright() -> None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("the playwright package is not installed: pip install -e '.[dev]' (it never downloads a browser)",
                    pytrace=False)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    require_playwright()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    tab.errors = errors  # read by the tests: a page whose script fails is a failing page
    yield tab
    context.close()


_taken: set[str] = set()
_STARTED = time.time() - 1


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _taken.add(str(ARTIFACTS))
    return ARTIFACTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "tests/ui/" in r.nodeid]
    if skipped and browser_missing():  # said even under -q, which hides skip reasons
        terminalreporter.write_line(f"art ui browser tests skipped ({len(skipped)}): {browser_missing()}")
    if _taken:
        shots = [s for s in ARTIFACTS.glob("*.png") if s.stat().st_mtime >= _STARTED]  # this run's, not older ones
        if shots:
            terminalreporter.write_line(f"art ui screenshots ({len(shots)}): {ARTIFACTS}")
