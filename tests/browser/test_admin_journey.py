"""Journey 4 in Chromium: the admin adds a counsellor, renews a recipient key, registers a
partner and finds the three changes in the audit trail; the new counsellor logs in with the
password the page showed once (see conftest for the running site)."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.browser.conftest import Site, check_accessibility, log_in, screenshot
from tests.factories import pem_public, totp_code

pytestmark = pytest.mark.browser

NEW_COUNSELLOR = "nieuwe.consulent@demo.vroegsignaal.nl"
NEW_PARTNER = "Energiecoöperatie Zonnedak"


def _form(page: Any, button: str) -> Any:
    """The form with this submit button."""
    return page.locator("form", has=page.get_by_role("button", name=button, exact=True))


def _active_keys(page: Any, code: str) -> Any:
    rows = page.get_by_role("table", name="Ontvangstsleutels (partners versleutelen hiernaar)")
    return rows.locator("tbody tr").filter(has_text=code).filter(has_text="in gebruik")


def test_admin_adds_a_counsellor_renews_a_key_registers_a_partner_and_reads_the_trail(
    page: Any, site: Site, browser: Any
) -> None:
    admin = site.logins["admin"]["email"]
    log_in(page, site, "admin")
    page.goto("/admin")
    assert page.get_by_role("heading", level=1).inner_text() == "Functioneel beheer"
    check_accessibility(page)

    # A counsellor: the password (and the second step's key) shown once, with how to hand over.
    form = _form(page, "Gebruiker toevoegen")
    form.get_by_label("E-mailadres").fill(NEW_COUNSELLOR)
    form.get_by_label("Rol").select_option(label="Consulent")
    form.get_by_label("Gemeente").select_option("0344")
    form.get_by_role("button", name="Gebruiker toevoegen").click()
    page.wait_for_load_state()
    page.get_by_role("heading", name="Gebruiker toegevoegd").wait_for()
    password = page.locator("#nieuw-wachtwoord").inner_text().strip()
    secret = page.locator("#nieuw-totp").inner_text().strip()
    assert len(password) >= 12 and re.fullmatch(r"[A-Z2-7]+", secret)
    assert "maar één keer" in page.inner_text("main")
    check_accessibility(page)

    # The recipient key of 0344: a new one beside the old, both in use; its certificate.
    page.goto("/admin")
    before = _active_keys(page, "0344").count()
    assert before >= 1
    form = _form(page, "Ontvangstsleutel vernieuwen")
    form.get_by_label("Gemeente").select_option("0344")
    form.get_by_role("button", name="Ontvangstsleutel vernieuwen").click()
    page.wait_for_load_state()
    page.get_by_role("heading", name="Nieuwe ontvangstsleutel voor Utrecht").wait_for()
    assert _active_keys(page, "0344").count() == before + 1 >= 2
    assert page.get_by_role("button", name=re.compile(r"^Uitfaseren")).count() == before
    check_accessibility(page)
    with page.expect_download() as info:
        page.get_by_role("link", name="Certificaat downloaden (.pem)").click()
    download = info.value
    assert download.suggested_filename.endswith(".pem")
    pem = download.path().read_text(encoding="ascii")
    assert pem.startswith("-----BEGIN CERTIFICATE-----") and "PRIVATE" not in pem

    # A partner with its signing key: the API token shown once, and it works.
    page.goto("/admin")
    form = _form(page, "Partner registreren")
    form.get_by_label("Naam").fill(NEW_PARTNER)
    form.get_by_label("Soort signaalpartner (DDAS)").select_option("Energie")
    form.get_by_label("Gemeente").select_option("0344")
    key = pem_public(ec.generate_private_key(ec.SECP256R1()))
    form.get_by_label(re.compile("^Publieke sleutel")).set_input_files(
        {"name": "zonnedak.pem", "mimeType": "application/x-pem-file", "buffer": key}
    )
    form.get_by_role("button", name="Partner registreren").click()
    page.wait_for_load_state()
    page.get_by_role("heading", name="Partner geregistreerd").wait_for()
    token = page.locator("#nieuw-token").inner_text().strip()
    assert token.startswith("vs_")
    check_accessibility(page)
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    answer = httpx.get(f"{site.base}/api/v1/feedback", params={"since": since},
                       headers={"Authorization": f"Bearer {token}"}, timeout=10)  # fmt: skip
    assert answer.status_code == 200
    page.goto("/admin")
    assert token not in page.content() and password not in page.content()
    partners = page.get_by_role("table", name="Signaalpartners")
    assert partners.locator("tbody tr").filter(has_text=NEW_PARTNER).count() == 1

    # The audit trail: the three changes, by the admin.
    page.get_by_role("link", name="Auditlogboek bekijken").click()
    page.wait_for_load_state()
    check_accessibility(page)
    screenshot(page, "admin-audit")
    rows = page.locator("main table tbody tr").filter(has_text=admin)
    for action in (
        "beheer.gebruiker.aangemaakt",
        "sleutel.aangemaakt",
        "beheer.partner.aangemaakt",
    ):
        assert rows.filter(has_text=action).count() >= 1, action
    assert "Hashketen intact" in page.inner_text("main")
    content = page.content()
    assert password not in content and secret not in content and token not in content

    # The new counsellor logs in with what was handed over, and enrols the second step.
    context = browser.new_context(base_url=site.base, locale="nl-NL",
                                  timezone_id="Europe/Amsterdam")  # fmt: skip
    try:
        newcomer = context.new_page()
        newcomer.goto("/login")
        newcomer.get_by_label("E-mailadres").fill(NEW_COUNSELLOR)
        newcomer.get_by_label("Wachtwoord").fill(password)
        newcomer.get_by_role("button", name="Inloggen").click()
        newcomer.wait_for_url(re.compile(r"/login/totp$"))
        assert newcomer.locator("#totp-secret").inner_text().replace(" ", "") == secret
        newcomer.get_by_label("Code").fill(totp_code(secret))
        newcomer.get_by_role("button", name="Bevestigen").click()
        newcomer.get_by_role("link", name="Ik heb de codes bewaard").click()
        newcomer.wait_for_load_state()
        newcomer.goto("/queue")
        assert newcomer.get_by_role("heading", level=1).count() == 1
        assert newcomer.get_by_role("button", name="Uitloggen").count() == 1
        check_accessibility(newcomer)
    finally:
        context.close()


def test_admin_asks_for_a_ddas_delivery_watches_it_made_and_downloads_it(
    page: Any, site: Site
) -> None:
    """The export is made by the scheduler; its page follows it without reloading and then
    offers the checked file (progress and finish states for long work)."""
    log_in(page, site, "admin")
    page.goto("/ddas")
    check_accessibility(page)
    today = dt.date.today()
    page.get_by_label("Van").fill((today - dt.timedelta(days=120)).isoformat())
    page.get_by_label("Tot en met").fill(today.isoformat())
    page.get_by_label("Gemeente").select_option("0344")
    page.get_by_role("button", name="Levering maken").click()
    page.wait_for_url(re.compile(r"/ddas/exports/[0-9a-f-]{36}$"))
    url = page.url
    loads: list[str] = []
    page.on("load", lambda p: loads.append(p.url))
    first = page.locator("[data-status-label]").inner_text()
    assert first in ("In de wachtrij", "Wordt gemaakt", "Klaar om te downloaden")
    # The scheduler (every second) makes it; the page follows by itself.
    link = page.get_by_role("link", name=re.compile(r"^Download ddas-0344-"))
    link.wait_for(timeout=60_000)
    assert page.locator("[data-status-label]").inner_text() == "Klaar om te downloaden"
    assert loads == [] and page.url == url, "the page was not reloaded"
    check_accessibility(page)
    screenshot(page, "ddas-export")
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert re.fullmatch(
        r"ddas-0344-\d{4}-\d\d-\d\d-\d{4}-\d\d-\d\d\.json", download.suggested_filename
    )
    document = json.loads(download.path().read_bytes())
    (levering,) = document["leveringen"]
    assert levering["gemeentecode"] == "0344" and len(levering["vroegsignalen"]) > 100
    facts = page.locator("dl.facts").inner_text()
    assert re.search(rf"Signalen\s+{len(levering['vroegsignalen'])}\b", facts)
    # The file goes when the admin says so; the delivery log keeps the delivery.
    page.get_by_role("button", name="Bestand nu verwijderen").click()
    page.wait_for_url(re.compile(r"/ddas$"))
    assert "Het bestand is verwijderd." in page.inner_text("main")
    assert page.request.get(f"{url}/bestand", max_redirects=0).status == 410  # same session
    log = page.get_by_role("table", name="Leveringslogboek").inner_text()
    assert site.logins["admin"]["email"] in log
