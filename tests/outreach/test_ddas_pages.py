"""The DDAS page for admins: the delivery log and the export as a download."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from sqlalchemy import select

from outreach.ddas import violations
from outreach.models import DdasDelivery
from signals.db import unit_of_work
from signals.enums import Role
from signals.models import Municipality
from signals.rules import today_nl
from signals.runtime import Runtime
from signals.service import add_municipality, add_user
from tests.factories import World
from tests.outreach.test_ddas import DDAS, official_violations, paged_data
from tests.outreach.test_pages import _csrf, _login
from webapp import create_app

START = (today_nl() - dt.timedelta(days=40)).isoformat()
END = today_nl().isoformat()


def app_client(world: World, **settings: Any) -> Any:
    values = {"ddas_contact_email": "vroegsignalering@utrecht.example", **settings}
    runtime = Runtime(world.runtime.settings.model_copy(update=values), world.runtime.engine)
    return create_app(runtime=runtime, TESTING=True).test_client()


def post(client: Any, **form: str) -> Any:
    token = _csrf(client.get("/ddas").get_data(as_text=True))
    data = {"van": START, "tot": END, "gemeente": "alle", "csrf_token": token, **form}
    return client.post("/ddas", data=data)


def test_an_admin_downloads_a_valid_delivery_and_sees_it_in_the_log(world: World) -> None:
    paged_data(world)
    client = app_client(world)
    _login(client, world, Role.ADMIN, "beheer@example.nl")
    page = client.get("/ddas")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    text = page.get_data(as_text=True)
    assert 'href="/ddas"' in text and "Nog geen leveringen" in text  # in the menu, empty log

    answer = post(client, gemeente="0344")
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    assert answer.headers["Cache-Control"] == "no-store"
    disposition = answer.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="ddas-0344-{START}-{END}.json"'
    content = answer.get_data()
    document = json.loads(content)
    assert violations(document) == []
    if (DDAS / "json_schema_Uitwisselmodel.json").is_file():
        assert official_violations(document) == []
    assert len(document["leveringen"][0]["vroegsignalen"]) == 5

    with unit_of_work(world.runtime.readers) as session:
        (log,) = session.scalars(select(DdasDelivery)).all()
        assert (log.by, log.gemeenten, log.signals, log.cases) == (
            "beheer@example.nl",
            "0344",
            5,
            2,
        )
        assert log.sha256 == hashlib.sha256(content).hexdigest()
    text = client.get("/ddas").get_data(as_text=True)
    assert "beheer@example.nl" in text and log.sha256[:16] in text
    assert "111222333" not in text  # the log shows no BSN


def test_only_admins_and_only_their_municipalities(world: World) -> None:
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
    refused = post(client, gemeente="0307")
    assert refused.status_code == 404
    with unit_of_work(world.runtime.readers) as session:
        assert session.scalars(select(DdasDelivery.by)).all() == ["systeem"]


def test_a_refusal_lists_the_paths_and_nothing_is_sent(world: World) -> None:
    paged_data(world)
    client = app_client(world, ddas_contact_email=None)
    _login(client, world, Role.ADMIN, "beheer@example.nl")
    answer = post(client)
    assert answer.status_code == 422 and "Content-Disposition" not in answer.headers
    text = answer.get_data(as_text=True)
    assert "aanleverendeOrganisatie.contactpersonen: no contact e-mail configured" in text
    wrong_order = post(client, van=END, tot=START)
    assert wrong_order.status_code == 400 and "Tot en met ligt voor van." in (
        wrong_order.get_data(as_text=True)
    )
    with unit_of_work(world.runtime.readers) as session:
        assert session.scalars(select(DdasDelivery)).all() == []
        assert session.get(Municipality, world.municipality_id) is not None


def test_no_file_is_left_behind(world: World, tmp_path: Path, monkeypatch: Any) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    paged_data(world)
    client = app_client(world)
    _login(client, world, Role.ADMIN, "beheer@example.nl")
    assert post(client).status_code == 200
    assert not [p for p in tmp_path.rglob("*") if re.search(r"ddas", p.name)]
