"""The DDAS page for admins: asking for an export, following it, downloading it, the log.

The export is made by the scheduler's job (``make_ddas_exports``), run here for real between
the requests, as the scheduler process would.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from outreach import exports
from outreach.ddas import violations
from outreach.models import DdasDelivery, DdasExport, ExportStatus
from signals.db import unit_of_work
from signals.enums import Role
from signals.models import AuditEvent, Municipality, User
from signals.rules import today_nl
from signals.runtime import Runtime
from signals.service import add_municipality, add_user
from tests.factories import World
from tests.outreach.test_ddas import DDAS, official_violations, paged_data
from tests.outreach.test_pages import _csrf, _login
from webapp import create_app

START = (today_nl() - dt.timedelta(days=40)).isoformat()
END = today_nl().isoformat()
CONTACT = {"ddas_contact_email": "vroegsignalering@utrecht.example"}


def runtime_with(world: World, **settings: Any) -> Runtime:
    values = {**CONTACT, **settings}
    return Runtime(world.runtime.settings.model_copy(update=values), world.runtime.engine)


def app_client(world: World, **settings: Any) -> Any:
    return create_app(runtime=runtime_with(world, **settings), TESTING=True).test_client()


def ask(client: Any, **form: str) -> Any:
    token = _csrf(client.get("/ddas").get_data(as_text=True))
    data = {"van": START, "tot": END, "gemeente": "alle", "csrf_token": token, **form}
    return client.post("/ddas", data=data)


def asked(client: Any, **form: str) -> str:
    """Ask for an export; its page's path."""
    answer = ask(client, **form)
    assert answer.status_code == 303, answer.get_data(as_text=True)[:500]
    location = answer.headers["Location"]
    assert re.fullmatch(r"/ddas/exports/[0-9a-f-]{36}", location), location
    return str(location)


def status(client: Any, page: str) -> dict[str, Any]:
    answer = client.get(f"{page}/status")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    return dict(answer.get_json())


def test_an_admin_asks_follows_and_downloads_a_valid_delivery(world: World) -> None:
    paged_data(world)
    client = app_client(world)
    _login(client, world, Role.ADMIN, "beheer@example.nl")
    page = client.get("/ddas")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    text = page.get_data(as_text=True)
    assert 'href="/ddas"' in text and "Nog geen leveringen" in text  # in the menu, empty log

    path = asked(client, gemeente="0344")
    # Queued: the page says so and follows it; nothing is made inside the request.
    text = client.get(path).get_data(as_text=True)
    assert "In de wachtrij" in text and f'data-status-url="{path}/status"' in text
    assert status(client, path) == {"status": "queued", "label": "In de wachtrij",
                                    "final": False, "done": 0, "total": None,
                                    "progress": ""}  # fmt: skip
    assert client.get(f"{path}/bestand").status_code == 409  # not ready yet
    with unit_of_work(world.runtime.readers) as session:
        assert session.scalars(select(DdasDelivery)).all() == []
    # On /ddas under "Mijn leveringen".
    assert path in client.get("/ddas").get_data(as_text=True)

    assert exports.make_exports(runtime_with(world)) == 1  # the scheduler's job
    assert status(client, path) == {"status": "ready", "label": "Klaar om te downloaden",
                                    "final": True, "done": 5, "total": 5,
                                    "progress": "5 van 5 signalen"}  # fmt: skip
    text = client.get(path).get_data(as_text=True)
    assert "data-status-url" not in text and f'href="{path}/bestand"' in text

    answer = client.get(f"{path}/bestand")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    disposition = answer.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="ddas-0344-{START}-{END}.json"'
    content = answer.get_data()
    assert int(answer.headers["Content-Length"]) == len(content)
    document = json.loads(content)
    assert violations(document) == []
    if (DDAS / "json_schema_Uitwisselmodel.json").is_file():
        assert official_violations(document) == []
    assert len(document["leveringen"][0]["vroegsignalen"]) == 5

    with unit_of_work(world.runtime.readers) as session:
        (log,) = session.scalars(select(DdasDelivery)).all()
        assert (log.by, log.gemeenten, log.signals, log.cases) == ("beheer@example.nl", "0344",
                                                                   5, 2)  # fmt: skip
        assert log.sha256 == hashlib.sha256(content).hexdigest()
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("export.ddas%"))
        ).all()
        assert sorted(actions) == ["export.ddas", "export.ddas.aangevraagd",
                                   "export.ddas.gedownload"]  # fmt: skip
    text = client.get("/ddas").get_data(as_text=True)
    assert "beheer@example.nl" in text and log.sha256[:16] in text
    assert "111222333" not in text  # the log shows no BSN
    # A second download gives the same bytes, and is counted and audited too.
    assert client.get(f"{path}/bestand").get_data() == content
    assert "2 keer" in client.get(path).get_data(as_text=True)


def test_the_file_waits_encrypted_and_is_removed(world: World) -> None:
    paged_data(world)
    client = app_client(world)
    _login(client, world, Role.ADMIN, "beheer@example.nl")
    path = asked(client)
    exports.make_exports(runtime_with(world))
    folder = Path(world.runtime.settings.ddas_exports_dir)
    (stored,) = folder.iterdir()
    assert stored.name == f"{path.rsplit('/', 1)[1]}.ddas"
    assert stored.stat().st_mode & 0o777 == 0o600 and folder.stat().st_mode & 0o777 == 0o700
    sealed = stored.read_bytes()
    content = client.get(f"{path}/bestand").get_data()
    assert b"111222333" in content and b"burgerservicenummer" in content
    assert b"111222333" not in sealed and b"burgerservicenummer" not in sealed

    # The admin removes it: gone from the disk, the page says so, the log stays.
    token = _csrf(client.get(path).get_data(as_text=True))
    answer = client.post(f"{path}/verwijderen", data={"csrf_token": token})
    assert answer.status_code == 303 and answer.headers["Location"] == "/ddas"
    assert list(folder.iterdir()) == []
    assert client.get(f"{path}/bestand").status_code == 410
    assert "Het bestand is verwijderd" in client.get(path).get_data(as_text=True)
    with unit_of_work(world.runtime.readers) as session:
        assert len(session.scalars(select(DdasDelivery)).all()) == 1

    # Another export's time runs out: the next run of the job removes it.
    second = asked(client)
    exports.make_exports(runtime_with(world))
    assert len(list(folder.iterdir())) == 1
    with unit_of_work(world.runtime.sessions) as session:
        record = session.get(DdasExport, second.rsplit("/", 1)[1])
        assert record is not None and record.expires_at is not None
        record.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    exports.make_exports(runtime_with(world))
    assert list(folder.iterdir()) == []
    assert status(client, second)["status"] == "removed"
    assert client.get(f"{second}/bestand").status_code == 410


def test_only_the_admin_who_asked_and_only_their_municipalities(world: World) -> None:
    paged_data(world)
    for role, email in ((Role.ANALYST, "analist@example.nl"), (Role.COUNSELLOR, "c@example.nl")):
        client = app_client(world)
        _login(client, world, role, email)
        assert client.get("/ddas").status_code == 403
        token = _csrf(client.get("/").get_data(as_text=True))
        form = {"van": START, "tot": END, "gemeente": "alle", "csrf_token": token}
        assert client.post("/ddas", data=form).status_code == 403
        assert 'href="/ddas"' not in client.get("/").get_data(as_text=True)
    with unit_of_work(world.runtime.sessions) as session:
        amersfoort = add_municipality(session, "0307", "Amersfoort")
        add_user(session, "beheer-amersfoort@example.nl", Role.ADMIN, [amersfoort])
        session.add(DdasDelivery(period_start=dt.date(2026, 1, 1), period_end=dt.date(2026, 3, 31),
                                 gemeenten="0307", ddas_version="1.2", product="Vroegsignaal",
                                 signals=3, cases=1, sha256="f" * 64, by="systeem"))  # fmt: skip
    client = app_client(world)
    _login(client, world, Role.ADMIN, "beheer@example.nl")  # of Utrecht (0344) only
    text = client.get("/ddas").get_data(as_text=True)
    assert "0307" not in text and "Amersfoort" not in text  # neither offered nor in the log
    assert ask(client, gemeente="0307").status_code == 404
    path = asked(client)
    exports.make_exports(runtime_with(world))
    # A colleague, also an admin of Utrecht, sees neither the export nor its file.
    colleague = app_client(world)
    _login(colleague, world, Role.ADMIN, "beheer2@example.nl")
    for url in (path, f"{path}/status", f"{path}/bestand"):
        assert colleague.get(url).status_code == 404, url
    assert path not in colleague.get("/ddas").get_data(as_text=True)
    token = _csrf(colleague.get("/ddas").get_data(as_text=True))
    assert colleague.post(f"{path}/verwijderen", data={"csrf_token": token}).status_code == 404
    assert client.get(f"{path}/bestand").status_code == 200  # still there for the one who asked
    with unit_of_work(world.runtime.readers) as session:
        assert sorted(session.scalars(select(DdasDelivery.by)).all()) == [
            "beheer@example.nl",
            "systeem",
        ]


def test_refusals_list_the_paths_and_nothing_is_delivered(world: World) -> None:
    paged_data(world)
    # What can be refused at once is refused in the request, and nothing is queued.
    client = app_client(world, ddas_contact_email=None)
    _login(client, world, Role.ADMIN, "beheer@example.nl")
    answer = ask(client)
    assert answer.status_code == 422
    text = answer.get_data(as_text=True)
    assert "aanleverendeOrganisatie.contactpersonen: no contact e-mail configured" in text
    wrong_order = ask(client, van=END, tot=START)
    assert wrong_order.status_code == 400 and "Tot en met ligt voor van." in (
        wrong_order.get_data(as_text=True)
    )
    # A refusal found while making it: its page lists the paths (never a value).
    client = app_client(world)
    _login(client, world, Role.ADMIN, "beheer-2@example.nl")
    path = asked(client)
    exports.make_exports(runtime_with(world, ddas_contact_email=None))
    assert status(client, path)["status"] == "refused"
    text = client.get(path).get_data(as_text=True)
    assert "De levering is afgekeurd" in text
    assert "aanleverendeOrganisatie.contactpersonen: no contact e-mail configured" in text
    assert client.get(f"{path}/bestand").status_code == 409
    assert list(Path(world.runtime.settings.ddas_exports_dir).iterdir()) == []
    with unit_of_work(world.runtime.readers) as session:
        assert session.scalars(select(DdasDelivery)).all() == []
        assert session.get(Municipality, world.municipality_id) is not None


def test_an_export_left_running_is_made_again_then_failed(world: World) -> None:
    """A maker that died leaves its export "running": the next run takes it up again, until
    its attempts are used up; the page then says it failed."""
    paged_data(world)
    client = app_client(world)
    _login(client, world, Role.ADMIN, "beheer@example.nl")
    path = asked(client)
    export_id = path.rsplit("/", 1)[1]

    def left_running(attempts: int) -> None:
        with unit_of_work(world.runtime.sessions) as session:
            record = session.get(DdasExport, export_id)
            assert record is not None
            record.status, record.attempts = ExportStatus.RUNNING, attempts

    left_running(1)
    assert exports.make_exports(runtime_with(world)) == 1
    assert status(client, path)["status"] == "ready"
    with unit_of_work(world.runtime.readers) as session:
        assert session.get(DdasExport, export_id).attempts == 2  # type: ignore[union-attr]
    left_running(3)  # the default ddas_export_max_attempts
    assert exports.make_exports(runtime_with(world)) == 0
    assert status(client, path)["status"] == "failed"
    assert "kon niet worden gemaakt" in client.get(path).get_data(as_text=True)
    assert list(Path(world.runtime.settings.ddas_exports_dir).iterdir()) == []


def test_asking_twice_gives_the_same_export_and_the_waiting_list_is_bounded(world: World) -> None:
    paged_data(world)
    client = app_client(world)
    _login(client, world, Role.ADMIN, "beheer@example.nl")
    first = asked(client)
    assert asked(client) == first  # a double click or a reload: the export already asked
    days = [(today_nl() - dt.timedelta(days=n)).isoformat() for n in (30, 20, 10)]
    others = [asked(client, van=day) for day in days[:2]]
    assert len({first, *others}) == 3
    refused = ask(client, van=days[2])
    assert refused.status_code == 429
    assert "U heeft al 3 leveringen in de wachtrij" in refused.get_data(as_text=True)
    exports.make_exports(runtime_with(world))
    assert asked(client, van=days[2]) not in (first, *others)  # room again once made


def test_an_admin_who_loses_a_municipality_loses_its_exports(world: World) -> None:
    paged_data(world)
    client = app_client(world)
    _login(client, world, Role.ADMIN, "beheer@example.nl")
    path = asked(client)
    exports.make_exports(runtime_with(world))
    assert client.get(f"{path}/bestand").status_code == 200
    token = _csrf(client.get("/ddas").get_data(as_text=True))
    with unit_of_work(world.runtime.sessions) as session:
        other = add_municipality(session, "0307", "Amersfoort")
        user = session.scalars(select(User).where(User.email == "beheer@example.nl")).one()
        user.municipalities = [other]  # an admin of Amersfoort now, no longer of Utrecht
    for url in (path, f"{path}/status", f"{path}/bestand"):
        assert client.get(url).status_code == 404, url
    assert client.post(f"{path}/verwijderen", data={"csrf_token": token}).status_code == 404
    assert path not in client.get("/ddas").get_data(as_text=True)


def test_a_database_outage_does_not_use_up_an_attempt(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler retries a job the database dropped out of; the export it stopped is
    made again without counting, while any other failure counts."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from outreach import ddas

    paged_data(world)
    client = app_client(world)
    _login(client, world, Role.ADMIN, "beheer@example.nl")
    path = asked(client)
    export_id = path.rsplit("/", 1)[1]
    write_file = ddas.write_file

    def attempts() -> int:
        with unit_of_work(world.runtime.readers) as session:
            return session.get(DdasExport, export_id).attempts  # type: ignore[union-attr]

    for error, counted in (
        (OperationalError("SELECT", {}, sqlite3.OperationalError("database is locked")), 1),
        (ValueError("a bug"), 1),  # the outage's attempt given back, this one counted
    ):
        monkeypatch.setattr(ddas, "write_file", lambda *a, e=error, **k: (_ for _ in ()).throw(e))
        with pytest.raises(type(error)):
            exports.make_exports(runtime_with(world))
        assert status(client, path)["status"] == "running" and attempts() == counted
    monkeypatch.setattr(ddas, "write_file", write_file)
    assert exports.make_exports(runtime_with(world)) == 1
    assert status(client, path)["status"] == "ready"
    assert attempts() == 2  # the bug's and this one; the outage's was given back
