"""The users' journeys, end to end in Chromium against the running product (see conftest)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import re
from typing import Any

import pytest

from signals.synthetic import make_bsn
from tests.browser.conftest import Site, check_accessibility, log_in, screenshot
from tests.factories import csv_bytes, openssl_encrypt, openssl_sign, row

pytestmark = pytest.mark.browser

BSN_LIKE = re.compile(r"\b\d{9}\b")
POSTCODE = re.compile(r"\b\d{4} ?[A-Z]{2}\b")


def _now_nl() -> dt.datetime:
    from signals.rules import NL as AMSTERDAM

    return dt.datetime.now(AMSTERDAM)


def _record_attempt(page: Any, kind: str, reached: bool, at: dt.datetime) -> None:
    form = page.locator("form", has=page.get_by_role("button", name="Vastleggen"))
    form.get_by_label("Soort contact").select_option(kind)
    form.get_by_label("Datum").fill(at.strftime("%Y-%m-%d"))
    form.get_by_label("Tijd").fill(at.strftime("%H:%M"))
    box = form.get_by_label("Bereikt")
    if reached:
        box.check()
    else:
        box.uncheck()
    form.get_by_role("button", name="Vastleggen").click()
    page.wait_for_load_state()


def test_counsellor_takes_the_top_case_records_attempts_and_closes_it(
    page: Any, site: Site
) -> None:
    log_in(page, site, "counsellor")
    page.goto("/queue")
    check_accessibility(page)
    screenshot(page, "queue")
    first_row = page.locator("table.queue tbody tr").first
    case_link = first_row.get_by_role("link").first
    case_number = case_link.inner_text().strip()
    assert case_number.startswith("#")
    case_link.click()
    page.wait_for_url(re.compile(r"/cases/\d+$"))
    assert case_number in page.get_by_role("heading", level=1).inner_text()
    # The reasons of the score, in words, and every household an offer whatever the band.
    reasons = page.locator("ul.reasons li")
    assert reasons.count() >= 1, "the case page shows the reasons of the score"
    if page.get_by_role("button", name="Oppakken").count():
        page.get_by_role("button", name="Oppakken").click()
        page.wait_for_load_state()
    check_accessibility(page)
    screenshot(page, "case")
    now = _now_nl() - dt.timedelta(minutes=2)
    _record_attempt(page, "Telefoon", reached=False, at=now - dt.timedelta(minutes=30))
    _record_attempt(page, "Huisbezoek", reached=True, at=now)
    timeline = page.get_by_role("region", name="Tijdlijn")
    text = timeline.inner_text()
    assert "Telefoon" in text and "Huisbezoek" in text
    close = page.locator("form", has=page.get_by_role("button", name="Afsluiten"))
    close.get_by_label("Eindresultaat").select_option("(Budget)advies en/of quick fix")
    close.get_by_role("button", name="Afsluiten").click()
    page.wait_for_load_state()
    assert "(Budget)advies en/of quick fix" in page.inner_text("main")
    check_accessibility(page)
    # It has left the queue.
    page.goto("/queue")
    numbers = page.locator("table.queue tbody tr td:first-child a").all_inner_texts()
    assert case_number not in [n.strip() for n in numbers]


def test_analyst_changes_period_and_municipality_and_downloads_csv_without_personal_data(
    page: Any, site: Site
) -> None:
    log_in(page, site, "analyst")
    page.goto("/dashboard")
    check_accessibility(page)
    choices = page.get_by_label("Gemeente of regio").locator("option")
    values = [choices.nth(i).get_attribute("value") for i in range(choices.count())]
    assert values, "the analyst chooses a municipality or region"
    page.get_by_label("Gemeente of regio").select_option(values[-1])
    periods = page.get_by_label("Periode").locator("option")
    period_values = [periods.nth(i).get_attribute("value") for i in range(periods.count())]
    assert len(period_values) >= 2
    page.get_by_label("Periode").select_option(period_values[1])
    page.get_by_role("button", name="Toon").click()
    page.wait_for_load_state()
    assert f"periode={period_values[1]}" in page.url
    check_accessibility(page)
    screenshot(page, "dashboard")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download CSV").click()
    download = info.value
    data = download.path().read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(data), delimiter=";"))
    assert len(rows) > 5, "the CSV holds the dashboard's figures"
    assert not BSN_LIKE.search(data), "no BSN-like numbers in the CSV"
    assert not POSTCODE.search(data), "no postcodes in the CSV"
    assert "@" not in data


def test_partner_uploads_an_openssl_batch_and_watches_it_processed_without_reloading(
    page: Any, site: Site
) -> None:
    recipient = site.tmp / "recipient.pem"
    site.vs("keys", "create-recipient", "--gemeente", "0344", "--out", str(recipient))
    rows = [row(signaal_id=f"B-{i}", bsn=make_bsn(random.Random(900 + i))) for i in range(4)]
    rows.append(row(signaal_id="B-bad-bsn", bsn="123456780"))  # fails the elfproef
    rows.append(row(signaal_id="B-bad-postcode", bsn=make_bsn(random.Random(950)), postcode="35"))
    path = site.tmp / "huur-browser.csv.p7m"
    path.write_bytes(openssl_encrypt(csv_bytes(rows), recipient))
    signature = openssl_sign(path, site.tmp / "demo" / "partners" / "huur.key")

    log_in(page, site, "partner")
    page.goto("/partner/batches")
    check_accessibility(page)
    page.get_by_label("Versleuteld bestand (.p7m)").set_input_files(str(path))
    page.get_by_label("Handtekening (.p7m.sig)").set_input_files(str(signature))
    page.get_by_role("button", name="Aanleveren").click()
    page.wait_for_url(re.compile(r"/partner/batches/[0-9a-f-]{36}$"))
    url = page.url
    loads: list[str] = []
    page.on("load", lambda p: loads.append(p.url))
    status = page.locator("[data-status-label]")
    assert status.inner_text() in ("Ontvangen", "In verwerking", "Verwerkt")
    check_accessibility(page)
    # The scheduler (polling every second) processes it; the page follows by itself.
    page.get_by_role("heading", name="Geweigerde rijen").wait_for(timeout=60_000)
    assert page.locator("[data-status-label]").inner_text() == "Verwerkt"
    assert loads == [] and page.url == url, "the page was not reloaded"
    table = page.get_by_role("table", name="Geweigerde rijen")
    text = table.inner_text()
    assert "bsn_checksum" in text and "BSN klopt niet (elfproef)" in text
    assert "postcode_format" in text
    assert "123456780" not in page.content(), "the refused value itself is never shown"
    facts = page.locator("dl.facts").inner_text()
    assert re.search(r"Geaccepteerd\s+4", facts) and re.search(r"Geweigerd\s+2", facts)
    check_accessibility(page)
    screenshot(page, "partner-batch")
