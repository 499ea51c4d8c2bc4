"""The counsellor's pages, and one flow from an openssl batch to a closed case."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from sqlalchemy import select

from outreach.enums import CaseResult, CaseState
from outreach.models import Case
from scoring.models import HouseholdScore
from scoring.service import activate_model, register_model
from signals.db import unit_of_work
from signals.enums import Role, SignalStatus
from signals.models import Municipality, Signal
from signals.rules import NL, today_nl
from signals.service import add_municipality
from tests.factories import World, add_staff, csv_bytes, login, login_as, openssl_batch, row
from webapp.scheduler import JOBS, run_job


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
    assert match, "no CSRF token"
    return match.group(1)


def _login(client: Any, world: World, role: Role, email: str) -> None:
    login_as(client, world, role, email)


def test_from_an_openssl_batch_to_a_closed_case(
    client: Any, world: World, passing_artifact: Path
) -> None:
    rows = [
        row(signaal_id="R-1", bsn="111222333", bedrag="2400", maandbedrag="800",
            ontruimingsdatum=str(today_nl() + dt.timedelta(days=20))),
        row(signaal_id="R-2", bsn="123456782", bedrag="300", maandbedrag="800",
            achternaam="Bakker", straat="Lange Nieuwstraat", huisnummer="3", postcode="3512 PH"),
    ]  # fmt: skip
    path, sig = openssl_batch(world, csv_bytes(rows))
    world.receive(path, sig)
    with unit_of_work(world.runtime.sessions) as session:
        municipality = session.get(Municipality, world.municipality_id)
        assert municipality is not None
        activate_model(session, municipality, register_model(session, passing_artifact), "t")
    for name in JOBS:  # what the scheduler runs, in its order
        run_job(world.runtime, name)
    _login(client, world, Role.COUNSELLOR, "consulent@example.nl")

    queue = client.get("/queue")
    assert queue.status_code == 200 and queue.headers["Cache-Control"] == "no-store"
    page = queue.get_data(as_text=True)
    with unit_of_work(world.runtime.readers) as session:
        cases = {s.signal_ref: c for c in session.scalars(select(Case)) for s in c.signals}
        urgent, other = cases["R-1"], cases["R-2"]
        score = session.get(HouseholdScore, urgent.score_id)
        assert score is not None
    # The eviction in 20 days comes first, with its band and reasons.
    assert page.index(f"/cases/{urgent.id}") < page.index(f"/cases/{other.id}")
    assert urgent.priority == 0 and f"band-{score.band}" in page
    assert "ontruimingsdatum binnen 30 dagen" in page
    assert "Vries" not in page  # names only on the case page

    # Claim from the queue (one click), then the case page (two).
    client.post(f"/cases/{urgent.id}/claim", data={"csrf_token": _csrf(page)})
    case_page = client.get(f"/cases/{urgent.id}").get_data(as_text=True)
    assert "J. de Vries" in case_page and "Oudegracht 12" in case_page
    assert "consulent@example.nl" in case_page
    token = _csrf(case_page)
    now = dt.datetime.now(NL)
    answer = client.post(
        f"/cases/{urgent.id}/attempts",
        data={
            "csrf_token": token,
            "kind": "Huisbezoek",
            "day": (now + dt.timedelta(days=2)).date().isoformat(),
            "time": "10:00",
        },
        follow_redirects=True,
    )
    assert "kan niet in de toekomst liggen" in answer.get_data(as_text=True)
    answer = client.post(
        f"/cases/{urgent.id}/attempts",
        data={
            "csrf_token": token,
            "kind": "Huisbezoek",
            "day": now.date().isoformat(),
            "time": "00:01",
            "reached": "y",
            "note": "afspraak gemaakt",
        },
        follow_redirects=True,
    )
    text = answer.get_data(as_text=True)
    assert "Contactpoging vastgelegd" in text and "afspraak gemaakt" in text
    answer = client.post(
        f"/cases/{urgent.id}/close",
        data={"csrf_token": token, "result": CaseResult.VERVOLGHULP_FINANCIEEL.value},
        follow_redirects=True,
    )
    assert "Zaak afgesloten" in answer.get_data(as_text=True)
    again = client.post(
        f"/cases/{urgent.id}/close",
        data={"csrf_token": token, "result": CaseResult.GEEN_CONTACT.value},
        follow_redirects=True,
    )
    assert "al afgesloten" in again.get_data(as_text=True)
    with unit_of_work(world.runtime.readers) as session:
        case = session.get(Case, urgent.id)
        assert case is not None
        assert case.state is CaseState.AFGESLOTEN
        assert case.result is CaseResult.VERVOLGHULP_FINANCIEEL
        signal = session.scalars(select(Signal).where(Signal.signal_ref == "R-1")).one()
        assert signal.status is SignalStatus.OPGEPAKT
    assert f"/cases/{urgent.id}" not in client.get("/queue").get_data(as_text=True)


def test_other_municipalities_and_other_roles_see_nothing(client: Any, world: World) -> None:
    path, sig = openssl_batch(world, csv_bytes([row()]))
    world.receive(path, sig)
    for name in JOBS:
        run_job(world.runtime, name)
    with unit_of_work(world.runtime.readers) as session:
        case_id = session.scalars(select(Case.id)).one()
    with unit_of_work(world.runtime.sessions) as session:
        elsewhere = add_municipality(session, "0363", "Amsterdam").id
    created = add_staff(world.runtime, "a@example.nl", Role.COUNSELLOR, [elsewhere])
    login(client, "a@example.nl", created.password, created.totp_secret)
    assert client.get(f"/cases/{case_id}").status_code == 404
    assert f"/cases/{case_id}" not in client.get("/queue").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": _csrf(client.get("/queue").get_data(as_text=True))})
    _login(client, world, Role.ANALYST, "analist@example.nl")
    assert client.get("/queue").status_code == 403
    assert client.get(f"/cases/{case_id}").status_code == 403


def test_the_review_list_decides_both_ways(client: Any, world: World) -> None:
    from signals.enums import PartnerType

    zorg, _ = world.add_partner("Zorgverzekeraar", PartnerType.ZORG, key="rsa2")
    late = str(today_nl() - dt.timedelta(days=160))
    world.ingest(
        [
            row(signaal_id="Z1", bsn="111222333", ontstaansdatum=late),
            row(signaal_id="Z2", bsn="123456782", ontstaansdatum=late),
        ],
        partner=zorg,
        key="rsa2",
    )
    for name in JOBS:
        run_job(world.runtime, name)
    _login(client, world, Role.COUNSELLOR, "consulent@example.nl")
    listing = client.get("/queue/beoordelen").get_data(as_text=True)
    with unit_of_work(world.runtime.readers) as session:
        ids = {s.signal_ref: c.id for c in session.scalars(select(Case)) for s in c.signals}
    assert f"/cases/{ids['Z1']}" in listing and "buiten het convenantvenster (Zorg)" in listing
    assert f"/cases/{ids['Z1']}" not in client.get("/queue").get_data(as_text=True)
    token = _csrf(client.get(f"/cases/{ids['Z1']}").get_data(as_text=True))
    client.post(f"/cases/{ids['Z1']}/review", data={"csrf_token": token, "besluit": "oppakken"})
    client.post(f"/cases/{ids['Z2']}/review", data={"csrf_token": token, "besluit": "onterecht"})
    again = client.post(
        f"/cases/{ids['Z2']}/review",
        data={"csrf_token": token, "besluit": "oppakken"},
        follow_redirects=True,
    )
    assert "staat niet op de beoordelingslijst" in again.get_data(as_text=True)
    with unit_of_work(world.runtime.readers) as session:
        accepted, rejected = session.get(Case, ids["Z1"]), session.get(Case, ids["Z2"])
        assert accepted is not None and rejected is not None
        assert accepted.state is CaseState.NIEUW and len(accepted.tasks) >= 4
        assert rejected.state is CaseState.AFGESLOTEN
        assert rejected.result is CaseResult.NIET_OPGEPAKT_ONTERECHT
    # Back in the queue after a person decided; the other one is gone from both lists.
    assert f"/cases/{ids['Z1']}" in client.get("/queue").get_data(as_text=True)
    assert f"/cases/{ids['Z2']}" not in client.get("/queue/beoordelen").get_data(as_text=True)


def test_the_queue_filters_by_partner_and_lists_my_due_tasks(client: Any, world: World) -> None:
    from signals.enums import PartnerType

    energie, _ = world.add_partner("Stroom BV", PartnerType.ENERGIE, key="rsa2")
    world.ingest([row(signaal_id="H-1", bsn="111222333")], "huur.p7m")
    world.ingest(
        [row(signaal_id="E-1", bsn="123456782")], "energie.p7m", partner=energie, key="rsa2"
    )
    for name in ("match_signals", "plan_cases"):
        run_job(world.runtime, name)
    with unit_of_work(world.runtime.readers) as session:
        by_partner = {
            c.signals[0].partner_type: c.id for c in session.scalars(select(Case)).unique()
        }
    huur, stroom = by_partner[PartnerType.HUUR], by_partner[PartnerType.ENERGIE]
    user = login_as(client, world, Role.COUNSELLOR, "filter@gemeente.example").user

    def listed(path: str) -> set[int]:
        page = client.get(path).get_data(as_text=True)
        return {int(n) for n in re.findall(r'href="/cases/(\d+)"', page)}

    assert listed("/queue") == {huur, stroom}
    assert listed("/queue?partner=Energie") == {stroom}
    assert listed("/queue?partner=Huur") == {huur}
    assert "Mijn taken voor vandaag" not in client.get("/queue").get_data(as_text=True)
    # My due tasks: none until I take a case whose tasks are due.
    with unit_of_work(world.runtime.sessions) as session:
        case = session.get(Case, stroom)
        assert case is not None
        case.assigned_to_id = user.id
        for task in case.tasks:
            task.due_on = today_nl() - dt.timedelta(days=1)
    assert listed("/queue?toegewezen=mij") == {stroom}
    page = client.get("/queue").get_data(as_text=True)
    due = page[page.index("Mijn taken voor vandaag") : page.index("</section>")]
    assert f"zaak #{stroom}" in due and f"zaak #{huur}" not in due
