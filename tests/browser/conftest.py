"""Browser tests: the app served on loopback (its own fresh database per test, mail to the
aiosmtpd server of the main conftest) and driven by Debian's Chromium through Playwright.

One browser for the whole session; a fresh browser context (cookies, storage) per test.
Without Chromium the tests are skipped with a message saying how to install it, unless
REQUIRE_BROWSER=1 (CI), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Every run saves its screenshots under build/screenshots; UPDATE_SCREENSHOTS=1 writes the
# ones the README shows (docs/screenshots) instead, so a plain test run leaves the tree clean.
_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = _ROOT / (
    "docs/screenshots" if os.environ.get("UPDATE_SCREENSHOTS", "").strip() in {"1", "true", "yes"} else "build/screenshots"
)
INSTALL_HINT = (
    "Chromium is not installed at {path}. Install it with `sudo apt-get install chromium` "
    "(Debian/Ubuntu), or point CHROMIUM_PATH at a Chromium binary. CI sets REQUIRE_BROWSER=1, "
    "where a missing browser fails the run instead."
)


def _require_browser() -> bool:
    return os.environ.get("REQUIRE_BROWSER", "").strip() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def browser():
    path = CHROMIUM if os.path.isabs(CHROMIUM) else shutil.which(CHROMIUM)
    if not path or not os.access(path, os.X_OK):
        message = INSTALL_HINT.format(path=CHROMIUM)
        if _require_browser():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is a dev dependency
        message = "The playwright package is missing: pip install -e '.[dev]'."
        if _require_browser():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
    except Exception:
        playwright.stop()
        raise
    yield browser
    browser.close()
    playwright.stop()


class LiveServer:
    """The app on 127.0.0.1 and a free port, in a thread."""

    def __init__(self, app) -> None:
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        # Links in emails point here, as APP_BASE_URL does in production.
        app.config["APP_BASE_URL"] = self.url
        # A short poll interval: shutdown() waits for the serving loop's next poll.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name="live-server", daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(app, browser):
    """``app`` is the main conftest's app: same config, this test's database, mail to the
    loopback SMTP server. (Asking for ``browser`` first skips before anything is served.)"""
    with LiveServer(app) as server:
        yield server


class Page:
    """A Playwright page plus what the tests check on every page: no console errors (a CSP
    refusal or an htmx error shows there) and the main frame's navigations."""

    def __init__(self, page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.console_errors: list[str] = []
        self.navigations: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.console_errors.append(str(exc)))
        page.on("framenavigated", lambda frame: frame == page.main_frame and self.navigations.append(frame.url))

    def _on_console(self, message) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} ({message.location.get('url')})")

    def __getattr__(self, name):
        return getattr(self.page, name)

    def open(self, path: str):
        return self.page.goto(self.base_url + path)

    def sign_in(self, email: str, password: str) -> None:
        self.open("/login")
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_load_state()

    def mark_page(self) -> None:
        """Set a marker on ``window``: it survives htmx swaps and dies with a page load."""
        self.page.evaluate("window.__noReload = 'still here'")
        self.navigations.clear()

    def assert_not_reloaded(self) -> None:
        assert self.page.evaluate("window.__noReload") == "still here", "the page was reloaded"
        assert self.navigations == [], f"the page navigated: {self.navigations}"

    def axe_violations(self, impacts=("serious", "critical")) -> list[dict]:
        """Run axe-core (vendored, served by the app: the CSP allows 'self') on the page."""
        self.page.add_script_tag(url=self.base_url + "/static/vendor/axe-core-4.11.0.min.js")
        results = self.page.evaluate(
            """async () => {
                const r = await axe.run(document, {resultTypes: ["violations"]});
                return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.slice(0, 5).map(n => n.target.join(" "))}));
            }"""
        )
        return [v for v in results if v["impact"] in impacts]

    def screenshot_to(self, name: str, **kwargs) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / name
        self.page.screenshot(path=str(path), full_page=True, **kwargs)
        return path


@pytest.fixture
def new_page(browser, live_server):
    """Open pages in fresh browser contexts (one per signed-in person); closed after the test.
    Each page must end the test without console errors."""
    contexts, pages = [], []

    def open_page(viewport=None) -> Page:
        context = browser.new_context(viewport=viewport or {"width": 1280, "height": 900})
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = Page(context.new_page(), live_server.url)
        pages.append(page)
        return page

    yield open_page
    errors = [e for p in pages for e in p.console_errors]
    for context in contexts:
        context.close()
    assert errors == [], f"errors in the browser console: {errors}"


@pytest.fixture
def page(new_page) -> Page:
    return new_page()
