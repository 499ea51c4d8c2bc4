"""The audit trail: chained, append-only, every view and change of a case, no personal data."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

from outreach.jobs import match, plan
from outreach.models import Case
from signals import audit
from signals.db import unit_of_work
from signals.enums import Role
from signals.models import AuditEvent
from signals.runtime import Runtime
from tests.factories import World, csrf_token, login_as, pem_public, row
from tests.test_cli import vs

# Whole values, not fragments: "3511" or "1450" turn up by chance inside hashes and times.
PERSONAL = ["111222333", "Vries", "Oudegracht", "3511AB", "3511 AB", "3511 ab", "1990-04-12",
            "1450,75", "1450.75"]  # fmt: skip


def _one_case(world: World) -> int:
    world.ingest([row(signaal_id="S-1")])
    match(world.runtime)
    plan(world.runtime)
    with unit_of_work(world.runtime.readers) as session:
        return session.scalars(select(Case.id)).one()


def _events(runtime: Runtime) -> list[dict[str, Any]]:
    with unit_of_work(runtime.readers) as session:
        return [audit.as_dict(e) for e in audit.events(session)]


def test_every_change_of_a_case_is_chained_and_tampering_is_found(world: World) -> None:
    case_id = _one_case(world)
    events = _events(world.runtime)
    actions = [e["action"] for e in events if e["case_id"] == case_id]
    assert actions[:1] == ["zaak.aangemaakt"] and "zaak.plan" in actions
    assert all(e["purpose"] for e in events if e["case_id"] == case_id)
    assert all(e["municipality_id"] == world.municipality_id for e in events if e["case_id"])
    assert events[0]["prev_hash"] == audit.GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(events))
    with unit_of_work(world.runtime.readers) as session:
        assert audit.verify(session).ok
    assert "intact" in vs(world.runtime, "audit", "verify").stdout

    # Somebody with database access rewrites who did something.
    victim = next(e for e in events if e["case_id"] == case_id)["id"]
    with world.runtime.engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_events SET actor = 'iemand' WHERE id = :id"), {"id": victim}
        )
    with unit_of_work(world.runtime.readers) as session:
        result = audit.verify(session)
    assert not result.ok and result.broken_id == victim
    answer = vs(world.runtime, "audit", "verify", check=False)
    assert answer.returncode != 0 and f"event {victim}" in answer.stderr


def test_a_removed_event_breaks_the_chain_at_its_successor(world: World) -> None:
    _one_case(world)
    ids = [e["id"] for e in _events(world.runtime)]
    assert len(ids) >= 3
    with world.runtime.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": ids[1]})
    with unit_of_work(world.runtime.readers) as session:
        result = audit.verify(session)
    assert not result.ok and result.broken_id == ids[2]


def test_the_orm_refuses_to_change_or_delete_an_event(world: World) -> None:
    _one_case(world)
    with pytest.raises(PermissionError), unit_of_work(world.runtime.sessions) as session:
        event = session.scalars(select(AuditEvent).limit(1)).one()
        event.actor = "iemand"
        session.flush()
    with pytest.raises(PermissionError), unit_of_work(world.runtime.sessions) as session:
        session.delete(session.scalars(select(AuditEvent).limit(1)).one())
        session.flush()
    with unit_of_work(world.runtime.readers) as session:
        assert audit.verify(session).ok


def test_a_rolled_back_unit_of_work_leaves_no_event(world: World) -> None:
    before = len(_events(world.runtime))
    with pytest.raises(RuntimeError), unit_of_work(world.runtime.sessions) as session:
        audit.record(session, "t@example.nl", "test")
        raise RuntimeError("undone")
    assert len(_events(world.runtime)) == before


def test_appends_at_once_from_many_workers_keep_one_chain(world: World) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(5):
                with unit_of_work(world.runtime.sessions) as session:
                    audit.record(session, f"w{n}@example.nl", "test", volgnummer=i)
                    audit.record(session, f"w{n}@example.nl", "test", volgnummer=i, tweede=True)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with unit_of_work(world.runtime.readers) as session:
        result = audit.verify(session)
    assert result.ok and result.checked >= 60


def test_viewing_a_case_and_downloading_a_letter_are_audited_without_personal_data(
    client: Any, world: World
) -> None:
    case_id = _one_case(world)
    login_as(client, world, Role.COUNSELLOR, "consulent@example.nl")
    page = client.get(f"/cases/{case_id}")
    assert page.status_code == 200 and "Vries" in page.get_data(as_text=True)
    views = [e for e in _events(world.runtime) if e["action"] == "zaak.inzien"]
    assert len(views) == 1
    assert views[0]["actor"] == "consulent@example.nl"
    assert views[0]["case_id"] == case_id
    assert views[0]["municipality_id"] == world.municipality_id
    assert "Wgs" in views[0]["purpose"]

    token = csrf_token(client.get(f"/cases/{case_id}").get_data(as_text=True))
    letter = client.post(f"/cases/{case_id}/brief", data={"csrf_token": token, "soort": "brief"})
    assert letter.status_code == 200 and letter.mimetype == "application/pdf"
    events = _events(world.runtime)
    download = [e for e in events if e["action"] == "zaak.download"]
    assert download and download[0]["case_id"] == case_id and download[0]["detail"]["soort"]
    assert any(e["action"] == "zaak.poging" for e in events)  # the change, once
    assert len([e for e in events if e["action"] == "zaak.inzien"]) == 2
    hashes = ("hash", "prev_hash", "subject")
    stored = json.dumps([{k: v for k, v in e.items() if k not in hashes} for e in events],
                        ensure_ascii=False)  # fmt: skip
    for value in PERSONAL:
        assert value not in stored, value


def test_the_cli_lists_the_trail_and_management_is_audited(world: World, tmp_path: Path) -> None:
    _one_case(world)
    key_file = tmp_path / "partner.pem"
    key_file.write_bytes(pem_public(world.keys.partner["ec"]))
    added = json.loads(
        vs(world.runtime, "partner", "add-key", "--partner", world.partner_id,
           "--public-key", str(key_file), "--json").stdout
    )  # fmt: skip
    vs(world.runtime, "partner", "revoke-key", "--partner", world.partner_id,
       "--key-id", str(added["id"]))  # fmt: skip
    token = json.loads(
        vs(world.runtime, "partner", "rotate-token", "--partner", world.partner_id, "--json").stdout
    )["token"]
    assert token.startswith("vs_")
    user = json.loads(
        vs(world.runtime, "user", "add", "--email", "nieuw@utrecht.example", "--role", "admin",
           "--gemeente", "0344", "--json").stdout
    )  # fmt: skip
    listed = json.loads(vs(world.runtime, "audit", "list", "--json").stdout)
    (added_user,) = [e for e in listed["events"] if e["action"] == "beheer.gebruiker.aangemaakt"]
    assert added_user["detail"] == {"gebruiker_id": user["id"], "rol": "admin"}
    assert added_user["actor"].startswith("cli")
    assert user["password"] not in json.dumps(listed)
    actions = [e["action"] for e in listed["events"]]
    assert listed["count"] == len(listed["events"])
    assert {"sleutel.aangemaakt", "sleutel.ingetrokken", "partner.token.vervangen"} <= set(actions)
    revoked = next(e for e in listed["events"] if e["action"] == "sleutel.ingetrokken")
    assert revoked["actor"].startswith("cli")
    assert revoked["detail"]["sleutel_id"] == added["id"]
    assert token not in json.dumps(listed)
    last = listed["events"][-1]["at"]
    newer = json.loads(vs(world.runtime, "audit", "list", "--since", last, "--json").stdout)
    assert [e["id"] for e in newer["events"]] == [listed["events"][-1]["id"]]
    bad = vs(world.runtime, "audit", "list", "--since", "gisteren", check=False)
    assert bad.returncode != 0


def test_a_ddas_export_is_audited_with_counts(world: World, tmp_path: Path) -> None:
    _one_case(world)
    out = tmp_path / "levering.json"
    vs(world.runtime, "export", "ddas", "--from", "2020-01-01", "--to", "2030-12-31",
       "--out", str(out), VROEGSIGNAAL_DDAS_CONTACT_EMAIL="vs@utrecht.example")  # fmt: skip
    (export,) = [e for e in _events(world.runtime) if e["action"] == "export.ddas"]
    assert export["actor"].startswith("cli")
    assert export["detail"]["signalen"] == 1 and export["detail"]["zaken"] == 1
    assert export["municipality_id"] == world.municipality_id


def test_events_cannot_be_updated_by_a_bulk_statement_either_unnoticed(world: World) -> None:
    _one_case(world)
    with unit_of_work(world.runtime.sessions) as session:
        first = session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)).first()
        session.execute(
            update(AuditEvent).where(AuditEvent.id == first).values(purpose="anders"),
            execution_options={"synchronize_session": False},
        )
    with unit_of_work(world.runtime.readers) as session:
        assert audit.verify(session).broken_id == first
