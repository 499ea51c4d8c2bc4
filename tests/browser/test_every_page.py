"""Every page of every role in Chromium: no serious or critical axe-core violation, in
Dutch and in English, and the language switch on each of them (journey 5)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from config import Settings
from tests.browser.conftest import Site, check_accessibility, log_in

pytestmark = pytest.mark.browser

#: The pages of each role ({case} and {batch} are filled from the demo's data, {export} is
#: asked for on /ddas).
PAGES: dict[str, list[tuple[str, str]]] = {
    "counsellor": [
        ("views.home", "/"),
        ("outreach.queue", "/queue"),
        ("outreach.review_list", "/queue/beoordelen"),
        ("outreach.case", "{case}"),
        ("outreach.team", "/team"),
    ],
    "analyst": [("dashboard.dashboard", "/dashboard")],
    "admin": [
        ("admin.index", "/admin"),
        ("admin.audit_log", "/admin/audit"),
        ("ddas_pages.ddas", "/ddas"),
        ("ddas_pages.export", "{export}"),
    ],
    "partner": [("portal.batches", "/partner/batches"), ("portal.batch", "{batch}")],
}
#: GET endpoints that are not pages: files, JSON, redirects, machine APIs.
NOT_PAGES = {
    "static", "views.favicon", "views.healthz", "views.readyz", "api.openapi", "i18n.switch",
    "dashboard.dashboard_csv", "dashboard.dashboard_xlsx", "ddas_pages.export_status",
    "ddas_pages.export_file", "portal.batch_status", "admin.certificate", "api.get_batch",
    "api.get_feedback", "metrics.metrics",
}  # fmt: skip
#: Pages every journey passes before it has a role.
BEFORE_LOG_IN = {"auth.login", "auth.login_totp"}
SWITCH = {"nl": ("English", "en"), "en": ("Nederlands", "nl")}


def test_the_pages_listed_here_are_every_page_of_the_app(site: Site) -> None:
    from webapp import create_app

    settings = Settings(
        database_url=site.env["VROEGSIGNAAL_DATABASE_URL"],
        secret_key=site.env["VROEGSIGNAAL_SECRET_KEY"],
        data_key=site.env["VROEGSIGNAAL_DATA_KEY"],
        inbox_dir=site.env["VROEGSIGNAAL_INBOX_DIR"],
    )
    app = create_app(settings)
    pages = {rule.endpoint for rule in app.url_map.iter_rules() if "GET" in (rule.methods or set())}
    listed = {endpoint for role in PAGES.values() for endpoint, _ in role}
    assert pages - NOT_PAGES == listed | BEFORE_LOG_IN


def _fill(path: str, page: Any) -> str:
    if path == "{case}":
        page.goto("/queue")
        return str(page.locator("table.queue tbody tr a").first.get_attribute("href"))
    if path == "{batch}":
        page.goto("/partner/batches")
        return str(page.locator("main table tbody tr a").first.get_attribute("href"))
    if path == "{export}":  # one the admin asks for now
        page.goto("/ddas")
        page.get_by_role("button", name="Levering maken").click()
        page.wait_for_url(re.compile(r"/ddas/exports/[0-9a-f-]{36}$"))
        return str(urlsplit(page.url).path)
    return path


def _switch_to(page: Any, language: str) -> None:
    """Follow the header's language link and land on the same page in ``language``."""
    here = page.url
    name, code = SWITCH["en" if language == "nl" else "nl"]
    assert code == language
    page.get_by_role("link", name=name, exact=True).click()
    page.wait_for_load_state()
    assert page.url == here, "the switch comes back to the same page"
    assert page.locator("html").get_attribute("lang") == language


@pytest.mark.parametrize("role", sorted(PAGES))
def test_every_page_is_accessible_in_dutch_and_english(page: Any, site: Site, role: str) -> None:
    page.goto("/login")
    check_accessibility(page)
    assert page.locator("html").get_attribute("lang") == "nl", "Dutch first"
    log_in(page, site, role)
    for _endpoint, path in PAGES[role]:
        page.goto(_fill(path, page))
        assert page.locator("html").get_attribute("lang") == "nl"
        dutch = (page.title(), page.locator("h1").inner_text())
        assert page.locator("h1").count() == 1, f"{page.url}: one main heading"
        check_accessibility(page)
        _switch_to(page, "en")
        check_accessibility(page)
        english = (page.title(), page.locator("h1").inner_text())
        assert english[0] != dutch[0] and english[1] != dutch[1], f"{page.url}: {english}"
        assert page.get_by_role("button", name="Uitloggen").count() == 0
        _switch_to(page, "nl")
        assert (page.title(), page.locator("h1").inner_text()) == dutch
        assert page.get_by_role("button", name="Uitloggen").count() == 1
