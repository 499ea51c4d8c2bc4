"""GET /api/v1/feedback: partners learn what they may know, never the reason behind it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from outreach.enums import CaseResult, ContactKind
from outreach.feedback import feedback
from outreach.jobs import match, plan
from outreach.models import Case
from outreach.service import close, record_attempt
from signals.db import unit_of_work
from signals.enums import PartnerType, Role
from signals.models import Municipality, Signal, User
from signals.rules import NL, today_nl
from signals.service import add_user
from tests.factories import World, row

SINCE = "2000-01-01T00:00:00Z"


def _case_of(session: Any, ref: str) -> Case:
    signal = session.scalars(select(Signal).where(Signal.signal_ref == ref)).one()
    return session.scalars(select(Case).where(Case.signals.contains(signal))).one()


def test_partners_learn_the_status_but_never_the_other_reason(client: Any, world: World) -> None:
    world.ingest(
        [
            row(signaal_id="OP", bsn="111222333"),
            row(signaal_id="AR", bsn="123456782"),
            row(signaal_id="AB", bsn="100000009"),
            row(signaal_id="HV", bsn="100000010"),
            row(signaal_id="ON", bsn="100000022"),
        ]
    )
    other, other_token = world.add_partner("Stroom BV", PartnerType.ENERGIE, key="rsa2")
    world.ingest([row(signaal_id="EX", bsn="100000034")], partner=other, key="rsa2")
    match(world.runtime)
    plan(world.runtime)
    with unit_of_work(world.runtime.sessions) as session:
        municipality = session.get(Municipality, world.municipality_id)
        assert municipality is not None
        user_id = add_user(session, "c@example.nl", Role.COUNSELLOR, [municipality]).user.id
    today = today_nl()
    with unit_of_work(world.runtime.sessions) as session:
        user = session.get(User, user_id)
        assert user is not None
        reached = dt.datetime.now(NL) - dt.timedelta(hours=1)
        protector = world.runtime.protector
        record_attempt(
            _case_of(session, "OP"), user, ContactKind.TELEFOON, reached, False, None, protector
        )
        close(_case_of(session, "AR"), CaseResult.NIET_OPGEPAKT_ANDERE_REDEN, user.email, today)
        close(_case_of(session, "AB"), CaseResult.AL_BEKEND, user.email, today)
        close(_case_of(session, "ON"), CaseResult.NIET_OPGEPAKT_ONTERECHT, user.email, today)
        helped = _case_of(session, "HV")
        record_attempt(helped, user, ContactKind.HUISBEZOEK, reached, True, None, protector)
        close(helped, CaseResult.VERVOLGHULP_FINANCIEEL, user.email, today)

    answer = client.get(
        f"/api/v1/feedback?since={SINCE}", headers={"Authorization": f"Bearer {world.token}"}
    )
    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    by_id = {item["signaal_id"]: item for item in answer.get_json()["feedback"]}
    assert by_id["OP"]["status"] == "Opgepakt"
    assert by_id["AR"]["status"] == "Niet opgepakt"  # never why
    assert by_id["AB"]["status"] == "Niet opgepakt"  # known at debt help: nobody's business
    assert by_id["ON"]["status"] == "Niet opgepakt: onterecht signaal"
    assert by_id["HV"] == {
        **by_id["HV"],
        "status": "Opgepakt",
        "incassopauze_tot": (today + dt.timedelta(days=30)).isoformat(),
    }
    assert "EX" not in by_id  # another partner's signal
    assert "andere reden" not in text and "al bekend" not in text
    # Only what changed after "since".
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    again = client.get(
        "/api/v1/feedback",
        query_string={"since": later.isoformat()},
        headers={"Authorization": f"Bearer {world.token}"},
    )
    assert again.get_json()["feedback"] == []
    # The other partner sees only its own.
    theirs = client.get(
        f"/api/v1/feedback?since={SINCE}", headers={"Authorization": f"Bearer {other_token}"}
    ).get_json()["feedback"]
    assert [item["signaal_id"] for item in theirs] == ["EX"]
    # Pages never split a moment, and together hold everything once.
    with unit_of_work(world.runtime.readers) as session:
        seen: list[str] = []
        since = dt.datetime.fromisoformat(SINCE.replace("Z", "+00:00"))
        for _ in range(10):
            page = feedback(session, world.partner_id, since, limit=2)
            seen += [item["signaal_id"] for item in page["feedback"]]
            if page["next_since"] is None:
                break
            since = dt.datetime.fromisoformat(page["next_since"])
    assert sorted(seen) == sorted(by_id)


def test_bad_feedback_requests_get_problem_documents(client: Any, world: World) -> None:
    auth = {"Authorization": f"Bearer {world.token}"}
    for query, detail in [
        ("", "is required"),
        ("?since=gisteren", "not an ISO 8601"),
        ("?since=2026-11-01T00:00:00", "needs a time zone"),
    ]:
        answer = client.get(f"/api/v1/feedback{query}", headers=auth)
        assert answer.status_code == 400 and answer.mimetype == "application/problem+json"
        assert detail in answer.get_json()["detail"]
    assert client.get(f"/api/v1/feedback?since={SINCE}").status_code == 401
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/feedback" in spec["paths"] and "Feedback" in spec["components"]["schemas"]
