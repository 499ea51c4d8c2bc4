"""Texts made below the web layer, and due dates in Dutch working days, in the user's language.

A score's reasons, a refused action's message and the dashboard's tables come from outreach
and scoring in Dutch; an English page shows them in English, while DDAS values stay Dutch
and the CSV download stays Dutch. Every due date says how many working days away it is.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select

from outreach.enums import CaseResult
from outreach.models import Case
from outreach.rules import is_working_day
from outreach.service import close
from scoring import reasons as r
from scoring.models import HouseholdScore
from scoring.service import activate_model, register_model
from signals.db import unit_of_work
from signals.enums import Role
from signals.models import Municipality
from signals.rules import today_nl
from tests.factories import World, csrf_token, login_as, row
from webapp.i18n import COOKIE, working_days_away
from webapp.scheduler import JOBS, run_job


def _page(client: Any, path: str) -> str:
    answer = client.get(path)
    assert answer.status_code == 200, answer.status_code
    return html.unescape(answer.get_data(as_text=True))


def _working_days_late(due: dt.date, today: dt.date) -> int:
    """Counted here day by day: the working days after ``due`` up to and including today."""
    days = (today - due).days
    return sum(is_working_day(due + dt.timedelta(days=i)) for i in range(1, days + 1))


def test_the_case_page_shows_reasons_and_working_days_in_the_users_language(
    client: Any, world: World, passing_artifact: Path
) -> None:
    today = today_nl()
    world.ingest([row(signaal_id="R-1", bedrag="2400", maandbedrag="800",
                      ontruimingsdatum=str(today + dt.timedelta(days=20)))])  # fmt: skip
    with unit_of_work(world.runtime.sessions) as session:
        municipality = session.get(Municipality, world.municipality_id)
        assert municipality is not None
        activate_model(session, municipality, register_model(session, passing_artifact), "t")
    for name in JOBS:
        run_job(world.runtime, name)
    # One task of the contact plan is more than a week late.
    late = today - dt.timedelta(days=9)
    with unit_of_work(world.runtime.sessions) as session:
        case = session.scalars(select(Case)).one()
        case.tasks[-1].due_on = late
        score = session.get(HouseholdScore, case.score_id)
        assert score is not None and score.reasons
        case_id, stored = case.id, list(score.reasons)
    threat_days = world.runtime.settings.first_attempt_working_days_threat  # eviction near
    overdue = _working_days_late(late, today)
    assert overdue >= 2
    login_as(client, world, Role.COUNSELLOR, "taal@gemeente.example")

    dutch = _page(client, f"/cases/{case_id}")
    assert all(reason in dutch for reason in stored)
    assert "ontruimingsdatum binnen 30 dagen" in dutch
    assert f"(over {threat_days} werkdagen)" in dutch  # beside "Eerste poging uiterlijk"
    assert f"verlopen: {overdue} werkdagen te laat" in dutch
    assert "working day" not in dutch

    client.set_cookie(COOKIE, "en")
    english = _page(client, f"/cases/{case_id}")
    assert all(r.parse(reason) is not None for reason in stored)  # each one a template
    assert not [reason for reason in stored if reason in english]
    assert "eviction date within 30 days" in english
    assert f"(in {threat_days} working days)" in english
    assert f"overdue: {overdue} working days overdue" in english
    assert "werkdagen te laat" not in english and "(over " not in english

    queue = _page(client, "/queue")
    assert "eviction date within 30 days" in queue and "ontruimingsdatum" not in queue
    assert f"{overdue} working days overdue" in queue  # the next due date: the late task
    client.set_cookie(COOKIE, "nl")
    queue = _page(client, "/queue")
    assert "ontruimingsdatum binnen 30 dagen" in queue
    assert f"{overdue} werkdagen te laat" in queue


def test_the_working_days_of_a_due_date_in_both_languages(app: Flask) -> None:
    friday, monday = dt.date(2026, 4, 24), dt.date(2026, 4, 27)  # Monday: Koningsdag
    cases = [
        (friday, friday, "vandaag", "today"),
        (friday, dt.date(2026, 4, 28), "over 1 werkdag", "in 1 working day"),
        (friday, dt.date(2026, 5, 1), "over 4 werkdagen", "in 4 working days"),
        (dt.date(2026, 4, 29), friday, "2 werkdagen te laat", "2 working days overdue"),
        (dt.date(2026, 4, 28), friday, "1 werkdag te laat", "1 working day overdue"),
        # Due on a day nobody works: on the working day before it.
        (friday, monday, "vandaag", "today"),
        (dt.date(2026, 4, 25), friday, "0 werkdagen te laat", "0 working days overdue"),
    ]
    for today, due, dutch, english in cases:
        for language, expected in (("nl", dutch), ("en", english)):
            with app.test_request_context("/", headers={"Cookie": f"{COOKIE}={language}"}):
                assert working_days_away(due, today) == expected, (today, due)


def _planned_case(world: World) -> int:
    world.ingest([row(signaal_id="F-1")])
    for name in ("match_signals", "plan_cases"):
        run_job(world.runtime, name)
    with unit_of_work(world.runtime.readers) as session:
        return session.scalars(select(Case.id)).one()


def test_a_refused_action_is_told_in_the_users_language(client: Any, world: World) -> None:
    case_id = _planned_case(world)
    login_as(client, world, Role.COUNSELLOR, "weigering@gemeente.example")
    client.set_cookie(COOKIE, "en")
    token = csrf_token(client.get(f"/cases/{case_id}").get_data(as_text=True))
    tomorrow = today_nl() + dt.timedelta(days=1)
    page = html.unescape(
        client.post(
            f"/cases/{case_id}/attempts",
            data={"csrf_token": token, "kind": "Telefoon", "day": tomorrow.isoformat(),
                  "time": "10:00"},
            follow_redirects=True,
        ).get_data(as_text=True)
    )  # fmt: skip
    assert "an attempt cannot be in the future" in page and "toekomst" not in page

    page = html.unescape(
        client.post(
            f"/cases/{case_id}/release", data={"csrf_token": token}, follow_redirects=True
        ).get_data(as_text=True)
    )
    assert f"case {case_id} is not assigned to you" in page

    # The DDAS end result in the message stays as DDAS names it.
    page = html.unescape(
        client.post(
            f"/cases/{case_id}/close",
            data={"csrf_token": token, "result": CaseResult.ADVIES_QUICK_FIX.value},
            follow_redirects=True,
        ).get_data(as_text=True)
    )
    assert "'(Budget)advies en/of quick fix' needs contact: record a contact attempt" in page
    assert "vraagt om contact" not in page

    client.set_cookie(COOKIE, "nl")
    page = html.unescape(
        client.post(
            f"/cases/{case_id}/release", data={"csrf_token": token}, follow_redirects=True
        ).get_data(as_text=True)
    )
    assert f"zaak {case_id} is niet aan u toegewezen" in page


def test_the_english_dashboard_keeps_ddas_values_and_the_csv_stays_dutch(
    client: Any, world: World
) -> None:
    case_id = _planned_case(world)
    with unit_of_work(world.runtime.sessions) as session:
        case = session.get(Case, case_id)
        assert case is not None
        close(case, CaseResult.NIET_OPGEPAKT_ONTERECHT, "test", today_nl())
    login_as(client, world, Role.ANALYST, "cijfers@gemeente.example")

    dutch = _page(client, "/dashboard")
    assert '<h2 id="t-zaken">Zaken en bereik</h2>' in dutch
    assert "Bereikt: minstens één contactpoging waarbij de inwoner is bereikt." in dutch

    client.set_cookie(COOKIE, "en")
    english = _page(client, "/dashboard")
    titles = re.findall(r'<h2 id="t-\w+">([^<]+)</h2>', english)
    assert titles == [
        "Signals", "Signals per partner type", "Cases and reach", "End results (DDAS)",
        "Help accepted: quick fix or follow-up help, financial or not",
        "Young people and families with children",
        "Contact attempts per kind and reach per channel", "Contact attempts per case",
        "Contact attempts per part of the day", "Speed", "Risk band and outcome", "Per month",
    ]  # fmt: skip
    assert '<th scope="col">partner type</th>' in english
    assert '<th scope="row">partner: Huur</th>' in english  # "Huur": the DDAS partner type
    assert '<th scope="row">Huur</th>' in english
    assert '<th scope="row">Niet opgepakt: onterecht signaal</th>' in english  # DDAS result
    assert '<th scope="row">signal → first attempt</th>' in english
    assert "Reached: at least one contact attempt in which the resident was reached." in english
    assert "Norms: first attempt within 14 days, first conversation within 4 weeks." in english
    for dutch_text in ("Zaken en bereik", "Bereikt: minstens", "partnertype", "Snelheid"):
        assert dutch_text not in english

    download = client.get("/dashboard.csv").get_data(as_text=True)
    assert "Zaken en bereik;bereikt;aantal;" in download and "Cases and reach" not in download


def test_the_timeline_is_shown_in_the_users_language(client: Any, world: World) -> None:
    """The case's timeline is stored in Dutch; an English page reads it back in English,
    the DDAS values and dates in it as they are."""
    case_id = _planned_case(world)
    login_as(client, world, Role.COUNSELLOR, "tijdlijn@gemeente.example")
    token = csrf_token(client.get(f"/cases/{case_id}").get_data(as_text=True))
    assert client.post(f"/cases/{case_id}/claim", data={"csrf_token": token}).status_code == 303
    yesterday = today_nl() - dt.timedelta(days=1)  # 09:30 of it: in the morning, in the past
    form = {"csrf_token": token, "kind": "Telefoon", "day": yesterday.isoformat(), "time": "09:30"}
    assert client.post(f"/cases/{case_id}/attempts", data=form).status_code == 303
    period = f"{today_nl():%Y-%m}"

    dutch = _page(client, f"/cases/{case_id}")
    for text in (
        f"zaak aangemaakt voor periode {period}",
        "contactplan: ",
        "zaak toegewezen",
        "zaak opgepakt (eerste contactpoging)",
        "Telefoon, ochtend: niet bereikt",
    ):
        assert text in dutch, text

    client.set_cookie(COOKIE, "en")
    english = _page(client, f"/cases/{case_id}")
    for text in (
        f"case created for period {period}",
        "contact plan: ",
        "case assigned",
        "case taken up (first contact attempt)",
        "Telefoon, ochtend: not reached",
    ):
        assert text in english, text
    for text in ("zaak aangemaakt", "contactplan", "zaak toegewezen", "niet bereikt"):
        assert text not in english, text


def test_every_timeline_text_is_read_back_and_unknown_text_stays() -> None:
    from outreach import timeline

    for template in timeline.TEMPLATES:
        names = re.findall(r"%\((\w+)\)s", template)
        values = {name: f"waarde {i}" for i, name in enumerate(names)}
        stored = str(timeline.text(template, **values))
        parsed = timeline.parse(stored)
        assert parsed is not None and (parsed.msgid, parsed.params) == (template, values)
    for reason in timeline.INNER:  # the BRP check's reasons inside, read as texts too
        parsed = timeline.parse(str(timeline.text(timeline.RESIDENT_CHECK, reason=reason)))
        assert parsed is not None and parsed.params["reason"].msgid == reason
    assert timeline.parse("iets wat een oudere versie schreef") is None


def test_dashboard_figures_in_dutch_and_english_conventions(app: Flask) -> None:
    from outreach.statistics import Ratio, share
    from webapp.i18n import format_cell

    eighth = share(1_000, 8_000)
    assert eighth == "12.5%" and Ratio(1.5) == "1.50"  # as the CSV and Excel downloads have it
    expected = {
        "nl": {eighth: "12,5%", "12345": "12.345", "<5": "<5", "—": "—"},
        "en": {eighth: "12.5%", "12345": "12,345", "<5": "<5", "—": "—"},
    }
    for language, cells in expected.items():
        with app.test_request_context("/", headers={"Cookie": f"{COOKIE}={language}"}):
            assert {cell: format_cell(cell) for cell in cells} == cells
            assert format_cell(share(200, 300)) == ("66,7%" if language == "nl" else "66.7%")
            assert format_cell(Ratio(1.5)) == ("1,50" if language == "nl" else "1.50")
            assert format_cell(Ratio(1234.5)) == ("1.234,50" if language == "nl" else "1,234.50")
