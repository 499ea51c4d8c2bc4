"""Journeys in a real browser: Playwright drives Debian's Chromium against the real product.

One site per test session, as ``make run`` starts it: ``vroegsignaal init-db``, the demo
(partners' batches packed, encrypted, ingested, the model trained and households scored),
``vroegsignaal run`` on a free loopback port and ``vroegsignaal scheduler`` beside it, in
child processes with their own database file. Every page a journey opens is checked with
axe-core (fetched from the npm registry by ``tests/browser/fetch_axe.py``, evaluated in
the page: no CDN). The browser is ``/usr/bin/chromium`` (``.ci/run`` installs it); without
it, or without axe-core, the tests skip saying why, and in CI they fail instead.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.fetch_axe import TARGET as AXE_FILE
from tests.factories import totp_code

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHROMIUM = Path(os.environ.get("VROEGSIGNAAL_TEST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = (
    Path(os.environ.get("VROEGSIGNAAL_SCREENSHOTS", ""))
    if os.environ.get("VROEGSIGNAAL_SCREENSHOTS")
    else None
)
#: axe-core rules run: WCAG 2.0/2.1 A and AA
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def _require(path: Path, what: str) -> None:
    if path.exists():
        return
    message = f"{what} not found at {path}"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI must run the browser tests (.ci/run installs it)")
    pytest.skip(f"{message} (.ci/run installs it; make test fetches axe-core)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Site:
    base: str
    env: dict[str, str]
    tmp: Path
    logins: dict[str, dict[str, str]]

    def vs(self, *args: str) -> str:
        result = subprocess.run(
            [str(BIN / "vroegsignaal"), *args],
            env=self.env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert result.returncode == 0, f"vroegsignaal {args[0]}: {result.stderr[-2000:]}"
        return result.stdout


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    _require(CHROMIUM, "Chromium")
    _require(AXE_FILE, "axe-core")
    tmp = tmp_path_factory.mktemp("site")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VROEGSIGNAAL_")}
    env.update(
        {
            "VROEGSIGNAAL_DATABASE_URL": f"sqlite:///{tmp / 'site.db'}",
            "VROEGSIGNAAL_SECRET_KEY": base64.b64encode(os.urandom(24)).decode(),
            "VROEGSIGNAAL_DATA_KEY": base64.b64encode(os.urandom(32)).decode(),
            "VROEGSIGNAAL_INBOX_DIR": str(tmp / "inbox"),
            "VROEGSIGNAAL_MODELS_DIR": str(tmp / "models"),
            "VROEGSIGNAAL_INGEST_POLL_SECONDS": "1",
            "VROEGSIGNAAL_INBOX_POLL_SECONDS": "2",
            "VROEGSIGNAAL_SCORING_POLL_SECONDS": "2",
            "VROEGSIGNAAL_MATCHING_POLL_SECONDS": "2",
            "VROEGSIGNAAL_DDAS_EXPORT_POLL_SECONDS": "1",
            "VROEGSIGNAAL_DDAS_DIR": str(tmp / "ddas"),
            "VROEGSIGNAAL_DDAS_EXPORTS_DIR": str(tmp / "ddas-exports"),
            "VROEGSIGNAAL_DDAS_CONTACT_EMAIL": "vroegsignalering@demo.vroegsignaal.nl",
            "VROEGSIGNAAL_RATE_LIMIT_LOGIN": "1000 per minute",
        }
    )
    port = _free_port()
    site = Site(f"http://127.0.0.1:{port}", env, tmp, {})
    site.vs("init-db")
    demo = json.loads(site.vs("demo", "--signals", "800", "--json"))
    site.logins = {u["role"]: u for u in demo["users"]}
    processes = []
    logs = []
    try:
        for name, args in [
            ("web", ["run", "--host", "127.0.0.1", "--port", str(port)]),
            ("scheduler", ["scheduler"]),
        ]:
            log = (tmp / f"{name}.log").open("wb")
            logs.append(log)
            processes.append(
                subprocess.Popen(
                    [str(BIN / "vroegsignaal"), *args],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{site.base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp / "web.log").read_text()[-2000:]
            time.sleep(0.2)
        yield site
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()


@pytest.fixture(scope="session")
def browser(site: Site) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    context = browser.new_context(
        base_url=site.base,
        locale="nl-NL",
        timezone_id="Europe/Amsterdam",
        viewport={"width": 1280, "height": 900},
        accept_downloads=True,
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on(
        "response",
        lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )
    yield page
    context.close()
    assert not errors, f"errors in the browser console: {errors}"


def check_accessibility(page: Any) -> None:
    """axe-core on the page as it is now: no serious or critical WCAG 2.1 A/AA violation."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_FILE.read_text(encoding="utf-8"))
    violations = page.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ')),
            }));
        }""",
        AXE_TAGS,
    )
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not bad, f"{page.url}: " + "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {v['nodes']}" for v in bad
    )


def screenshot(page: Any, name: str) -> None:
    """With VROEGSIGNAAL_SCREENSHOTS (make screenshots), the page as a PNG for the README."""
    if SCREENSHOTS is not None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)


def log_in(page: Any, site: Site, role: str) -> None:
    """The log-in of the demo user of ``role``: password, and the second factor where the role
    has one (enrolled at the first log-in with the key the page shows)."""
    user = site.logins[role]
    page.goto("/login")
    page.get_by_label("E-mailadres").fill(user["email"])
    page.get_by_label("Wachtwoord").fill(user["password"])
    page.get_by_role("button", name="Inloggen").click()
    if "/login/totp" in page.url:
        page.get_by_label("Code").fill(totp_code(user["totp_secret"]))
        page.get_by_role("button", name="Bevestigen").click()
    saved = page.get_by_role("link", name="Ik heb de codes bewaard")
    if saved.count():  # the first log-in shows the recovery codes once
        saved.click()
    page.wait_for_load_state()
