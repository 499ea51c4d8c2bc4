"""Rights of the person (AVG art. 15 and 17) through the command line, as an operator runs it."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from outreach.enums import CaseResult, CaseState, ContactKind
from outreach.jobs import match
from outreach.models import Case
from outreach.service import close, record_attempt
from signals import audit
from signals.db import unit_of_work
from signals.enums import Role
from signals.models import Client, Municipality, RetainedSignal, Signal, User
from signals.rules import NL, today_nl
from signals.service import add_user
from tests.factories import World, row
from tests.test_cli import vs

PERSON = "111222333"
OTHER = "123456782"


def _setup(world: World) -> int:
    world.ingest(
        [
            row(signaal_id="P-1", bsn=PERSON, telefoon="0612345678"),
            row(signaal_id="P-2", bsn=PERSON, bedrag="99,95"),
            row(signaal_id="O-1", bsn=OTHER, achternaam="Bakker", straat="Lange Nieuwstraat"),
        ]
    )
    match(world.runtime)
    with unit_of_work(world.runtime.sessions) as session:
        municipality = session.get(Municipality, world.municipality_id)
        assert municipality is not None
        user = add_user(session, "c@example.nl", Role.COUNSELLOR, [municipality]).user
        case = session.scalars(
            select(Case).join(Case.signals).where(Signal.signal_ref == "P-1")
        ).one()
        at = dt.datetime.now(NL) - dt.timedelta(hours=1)
        record_attempt(
            case, user, ContactKind.TELEFOON, at, True, "wil graag hulp", world.runtime.protector
        )
        return case.id


def _close(world: World, case_id: int, result: CaseResult) -> None:
    with unit_of_work(world.runtime.sessions) as session:
        case = session.get(Case, case_id)
        user = session.scalars(select(User)).first()
        assert case is not None and user is not None
        close(case, result, user.email, today_nl())


def _avg_events(world: World) -> list[dict[str, Any]]:
    with unit_of_work(world.runtime.readers) as session:
        return [audit.as_dict(e) for e in audit.events(session) if e.action.startswith("avg.")]


def test_access_gives_everything_about_one_bsn_and_is_audited(world: World, tmp_path: Path) -> None:
    case_id = _setup(world)
    out = tmp_path / "inzage.json"
    answer = vs(world.runtime, "avg", "inzage", "--bsn", PERSON, "--gemeente", "0344",
                "--out", str(out), "--json")  # fmt: skip
    assert json.loads(answer.stdout) == {"file": str(out), "signalen": 2, "zaken": 1}
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    document = json.loads(out.read_text())
    assert {s["kenmerk_partner"] for s in document["signalen"]} == {"P-1", "P-2"}
    assert document["personen"][0]["identiteit"]["achternaam"] == "Vries"
    assert document["signalen"][0]["contactgegevens"]["postcode"] == "3511AB"
    (case,) = document["zaken"]
    assert case["id"] == case_id and case["contactpogingen"][0]["notitie"] == "wil graag hulp"
    text = out.read_text()
    assert "Bakker" not in text and OTHER not in text  # nobody else
    (event,) = _avg_events(world)
    assert event["action"] == "avg.inzage" and event["actor"].startswith("cli")
    assert event["subject"] == world.runtime.protector.bsn_hash(PERSON)
    assert event["detail"] == {"signalen": 2, "zaken": 1}
    assert PERSON not in json.dumps(event)


def test_erasure_is_refused_while_the_law_needs_the_data(world: World) -> None:
    case_id = _setup(world)
    refused = vs(world.runtime, "avg", "wissen", "--bsn", PERSON, "--gemeente", "0344",
                 check=False)  # fmt: skip
    assert refused.returncode != 0 and "zaak" in refused.stderr and "Wgs" in refused.stderr
    _close(world, case_id, CaseResult.ADVIES_QUICK_FIX)  # help accepted: its term runs
    refused = vs(world.runtime, "avg", "wissen", "--bsn", PERSON, "--gemeente", "0344",
                 "--reden", "verzoek AVG-17", check=False)  # fmt: skip
    assert refused.returncode != 0 and "hulp aanvaard" in refused.stderr
    with unit_of_work(world.runtime.readers) as session:
        assert session.scalar(select(func.count(Signal.id))) == 3  # nothing deleted
    events = _avg_events(world)
    assert [e["action"] for e in events] == ["avg.wissen.geweigerd"] * 2
    assert events[1]["detail"]["reden"] == "verzoek AVG-17"
    bad = vs(world.runtime, "avg", "wissen", "--bsn", "123456789", "--gemeente", "0344",
             check=False)  # fmt: skip
    assert bad.returncode != 0 and "BSN" in bad.stderr


def test_erasure_deletes_the_person_and_nobody_else(world: World) -> None:
    case_id = _setup(world)
    _close(world, case_id, CaseResult.REGELT_ZELF)
    answer = vs(world.runtime, "avg", "wissen", "--bsn", PERSON, "--gemeente", "0344", "--json")
    result = json.loads(answer.stdout)
    assert result["erased"] and result["signals"] == 2 and result["cases"] == 1
    assert result["attempts"] == 1 and result["clients"] == 1
    with unit_of_work(world.runtime.readers) as session:
        assert set(session.scalars(select(Signal.signal_ref))) == {"O-1"}
        assert session.get(Case, case_id) is None
        assert session.scalars(select(Case.state)).one() is CaseState.NIEUW  # the other's
        hashed = world.runtime.protector.bsn_hash(PERSON)
        assert not session.scalar(select(func.count(Client.id)).where(Client.bsn_hash == hashed))
        assert session.scalar(select(func.count(RetainedSignal.id))) == 0  # no hash kept
        assert audit.verify(session).ok
    (event,) = [e for e in _avg_events(world) if e["action"] == "avg.wissen"]
    assert event["subject"] == world.runtime.protector.bsn_hash(PERSON)
    assert event["detail"]["signals"] == 2
