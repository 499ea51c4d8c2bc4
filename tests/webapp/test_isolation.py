"""Municipality isolation by guessing ids: another municipality's object is a 404, never data.

Users of municipality A ask for the objects of municipality B (and of nobody) by id: the
case page and every action on it, with forms that are valid and forms that are not; the
batch reports of another partner in the API and the portal; the DDAS download of another
municipality; the dashboard, its downloads and a region with B in it. Each answer is a 404
that names nothing of B, and nothing of B changes.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sqlalchemy import func, select

from outreach import exports
from outreach.enums import CaseResult, CaseState, ContactKind
from outreach.models import Case, ContactAttempt
from signals.db import unit_of_work
from signals.enums import Role
from signals.rules import today_nl
from signals.runtime import Runtime
from tests.webapp.conftest import PEOPLE_B, Side, Two, log_in, personal_strings, token_of
from webapp import create_app

TODAY = today_nl()
#: Every action on a case, with a form that would be accepted on the user's own case.
CASE_ACTIONS: dict[str, dict[str, str]] = {
    "claim": {},
    "release": {},
    "attempts": {
        "kind": ContactKind.HUISBEZOEK.value,
        "day": TODAY.isoformat(),
        "time": "00:01",
        "reached": "y",
        "note": "geraden",
    },
    "close": {"result": CaseResult.GEEN_CONTACT.value},
    "review": {"besluit": "oppakken"},
    "hulpvraag": {},
    "brief": {"soort": "kaartje"},
    "email": {"to": "iemand@voorbeeld.example", "subject": "Hallo", "body": "Tekst"},
}
#: The same actions with a form that is refused (a missing or wrong field).
BAD_FORMS: dict[str, dict[str, str]] = {
    "attempts": {"kind": "geen soort"},
    "close": {"result": "geen resultaat"},
    "email": {},
}


def app_for(two: Two, **settings: Any) -> Any:
    runtime = two.world.runtime
    changed = runtime.settings.model_copy(update=settings)
    return create_app(runtime=Runtime(changed, runtime.engine), TESTING=True)


def client_of(app: Any, side: Side, role: Role) -> Any:
    client = app.test_client()
    log_in(client, side.users[role])
    return client


def shows_nothing_of_b(two: Two, answer: Any) -> list[str]:
    text = answer.get_data(as_text=True)
    leaked = [s for s in personal_strings(PEOPLE_B) if s in text]
    leaked += [s for s in ("Amsterdam", "0363", "Waterbedrijf B", two.b.batch_id) if s in text]
    return leaked


def case_state(two: Two, case_id: int) -> tuple[Any, ...]:
    with unit_of_work(two.world.runtime.readers) as session:
        case = session.get(Case, case_id)
        assert case is not None
        attempts = session.scalar(
            select(func.count(ContactAttempt.id)).where(ContactAttempt.case_id == case_id)
        )
        return case.state, case.assigned_to_id, case.result, attempts, len(case.messages)


def test_a_case_of_another_municipality_is_404_for_the_page_and_every_action(two: Two) -> None:
    app = app_for(two, smtp_host="127.0.0.1", smtp_port=9)  # nothing may be sent anyway
    client = client_of(app, two.a, Role.COUNSELLOR)
    token = token_of(client)
    unknown = max(two.a.case_ids + two.b.case_ids) + 1000
    own = two.a.case_ids[0]
    assert client.get(f"/cases/{own}").status_code == 200  # the counsellor's own: shown
    wrong = []
    for case_id in (*two.b.case_ids, unknown):
        before = case_state(two, two.b.case_ids[0])
        answer = client.get(f"/cases/{case_id}")
        if answer.status_code != 404 or shows_nothing_of_b(two, answer):
            wrong.append(f"GET /cases/{case_id}: {answer.status_code}")
        for action, form in CASE_ACTIONS.items():
            for fields in (form, BAD_FORMS.get(action, {"onzin": "1"})):
                url = f"/cases/{case_id}/{action}"
                answer = client.post(url, data={"csrf_token": token, **fields})
                if answer.status_code != 404 or (leaked := shows_nothing_of_b(two, answer)):
                    wrong.append(f"POST {url} {fields}: {answer.status_code} {leaked or ''}")
        assert case_state(two, two.b.case_ids[0]) == before, "B's case changed"
    assert not wrong, "\n".join(wrong)
    with unit_of_work(two.world.runtime.readers) as session:
        case = session.get(Case, two.b.case_ids[0])
        assert case is not None and case.state is not CaseState.AFGESLOTEN


def test_lists_of_a_hold_nothing_of_b(two: Two) -> None:
    app = app_for(two)
    counsellor = client_of(app, two.a, Role.COUNSELLOR)
    for path in ("/queue", "/queue/beoordelen", "/team", "/queue?toegewezen=niemand"):
        answer = counsellor.get(path)
        assert answer.status_code == 200, path
        assert not shows_nothing_of_b(two, answer), path
        for case_id in two.b.case_ids:
            assert f'/cases/{case_id}"' not in answer.get_data(as_text=True), path
    admin = client_of(app, two.a, Role.ADMIN)
    for path in ("/admin", "/admin/audit", "/ddas", "/team", "/dashboard"):
        answer = admin.get(path)
        assert answer.status_code == 200, path
        assert not (leaked := shows_nothing_of_b(two, answer)), (path, leaked)
        assert "-0363@" not in answer.get_data(as_text=True), path  # B's users


def test_batches_of_another_partner_are_404_in_the_api_and_the_portal(two: Two) -> None:
    app = app_for(two)
    api = app.test_client()
    bearer = {"Authorization": f"Bearer {two.a.token}"}
    own = api.get(f"/api/v1/batches/{two.a.batch_id}", headers=bearer)
    assert own.status_code == 200 and own.get_json()["rows_total"] == 2
    for batch_id in (two.b.batch_id, str(uuid.uuid4()), "x" * 37, "1"):
        answer = api.get(f"/api/v1/batches/{batch_id}", headers=bearer)
        assert answer.status_code == 404, batch_id
        assert answer.mimetype == "application/problem+json"
        assert "rows_total" not in answer.get_json() and not shows_nothing_of_b(two, answer)
    portal = client_of(app, two.a, Role.PARTNER)
    assert portal.get(f"/partner/batches/{two.a.batch_id}").status_code == 200
    for batch_id in (two.b.batch_id, str(uuid.uuid4()), "x" * 37):
        answer = portal.get(f"/partner/batches/{batch_id}")
        assert answer.status_code == 404 and not shows_nothing_of_b(two, answer), batch_id
    listing = portal.get("/partner/batches")
    assert two.a.batch_id in listing.get_data(as_text=True)
    assert not shows_nothing_of_b(two, listing)


def test_feedback_holds_only_the_partners_own_signals(two: Two) -> None:
    api = app_for(two).test_client()
    since = "2000-01-01T00:00:00Z"
    refs = {}
    for side in (two.a, two.b):
        answer = api.get(f"/api/v1/feedback?since={since}",
                         headers={"Authorization": f"Bearer {side.token}"})  # fmt: skip
        assert answer.status_code == 200
        refs[side.code] = {item["signaal_id"] for item in answer.get_json()["feedback"]}
    assert refs["0344"] == {"A-1", "A-2"} and refs["0363"] == {"B-1"}


def test_the_ddas_download_of_another_municipality_is_404(two: Two) -> None:
    app = app_for(two, ddas_contact_email="vroegsignalering@utrecht.example")
    admin = client_of(app, two.a, Role.ADMIN)
    token = token_of(admin)
    period = {"van": (TODAY - dt.timedelta(days=90)).isoformat(), "tot": TODAY.isoformat()}
    for code in ("0363", "9999", "regio:x", ""):
        answer = admin.post("/ddas", data={"csrf_token": token, "gemeente": code, **period})
        assert answer.status_code == 404, code
        assert not shows_nothing_of_b(two, answer), code
    asked = admin.post("/ddas", data={"csrf_token": token, "gemeente": "alle", **period})
    assert asked.status_code == 303, asked.status_code
    path = asked.headers["Location"]
    assert exports.make_exports(app.extensions["vroegsignaal"]) == 1  # the scheduler's job
    everything = admin.get(f"{path}/bestand")
    assert everything.status_code == 200, everything.status_code
    delivery = json.loads(everything.get_data())
    assert [lev["gemeentecode"] for lev in delivery["leveringen"]] == ["0344"]  # A alone
    assert not shows_nothing_of_b(two, everything)
    # B's admin's export: neither its page, its progress nor its file, nor removing it.
    theirs = f"/ddas/exports/{two.b.export_id}"
    for url in (theirs, f"{theirs}/status", f"{theirs}/bestand"):
        answer = admin.get(url)
        assert answer.status_code == 404, url
        assert not shows_nothing_of_b(two, answer), url
    assert admin.post(f"{theirs}/verwijderen", data={"csrf_token": token}).status_code == 404
    assert two.b.export_id not in admin.get("/ddas").get_data(as_text=True)


def test_the_dashboard_of_another_municipality_or_region_is_404(two: Two) -> None:
    app = app_for(two, regions={"Beide": ["0344", "0363"], "Alleen A": ["0344"]})
    analyst = client_of(app, two.a, Role.ANALYST)
    page = analyst.get("/dashboard")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "regio:Alleen A" in text and "regio:Beide" not in text  # offered only whole
    for path in ("/dashboard", "/dashboard.csv", "/dashboard.xlsx"):
        for choice in ("0363", "regio:Beide", "9999", "regio:Onbekend"):
            answer = analyst.get(path, query_string={"gemeente": choice})
            assert answer.status_code == 404, (path, choice)
            assert not shows_nothing_of_b(two, answer), (path, choice)
        assert analyst.get(path, query_string={"gemeente": "regio:Alleen A"}).status_code == 200


def test_the_delivery_log_shows_a_shared_delivery_without_the_others_figures(two: Two) -> None:
    from outreach.models import DdasDelivery

    with unit_of_work(two.world.runtime.sessions) as session:
        for codes, signals, by in (("0344,0363", 9173, "systeem"), ("0363", 4711, "b@b.example"),
                                   ("0344", 2, "a@a.example")):  # fmt: skip
            session.add(DdasDelivery(period_start=TODAY, period_end=TODAY, gemeenten=codes,
                                     ddas_version="1.2", product="t", signals=signals,
                                     cases=signals, sha256="0" * 64, by=by))  # fmt: skip
    admin = client_of(app_for(two), two.a, Role.ADMIN)
    answer = admin.get("/ddas")
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "a@a.example" in text and "systeem" in text
    assert "9173" not in text and "4711" not in text and "b@b.example" not in text
    assert "(en 1 andere)" in text and not shows_nothing_of_b(two, answer)
