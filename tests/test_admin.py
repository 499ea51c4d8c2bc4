"""The admin page (CONTRACT §5 ``/admin``): the admin's own users, partners, keys and
municipalities, and the audit trail in pages with the state of its hash chain."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from signals import audit
from signals.db import unit_of_work
from signals.enums import Role
from signals.service import add_municipality, add_user
from tests.factories import World, login_as


def _other_municipality(world: World) -> int:
    with unit_of_work(world.runtime.sessions) as session:
        other = add_municipality(session, "0363", "Amsterdam")
        add_user(session, "ander@amsterdam.example", Role.COUNSELLOR, [other])
        audit.record(session, "ander@amsterdam.example", "zaak.inzien", municipality_id=other.id)
        return other.id


def test_an_admin_sees_their_municipality_and_the_trail_in_pages(client: Any, world: World) -> None:
    _other_municipality(world)
    with unit_of_work(world.runtime.sessions) as session:
        for n in range(60):
            audit.record(
                session, "t@example.nl", "test", municipality_id=world.municipality_id, n=n
            )
    login_as(client, world, Role.ADMIN, "beheer@utrecht.example")
    page = client.get("/admin")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert "0344" in html and "Woonstichting Test" in html and "beheer@utrecht.example" in html
    assert "0363" not in html and "ander@amsterdam.example" not in html  # not theirs
    assert "<script" not in html and "style=" not in html
    assert 'href="/admin"' in html  # in the menu

    trail = client.get("/admin/audit").get_data(as_text=True)
    assert "Hashketen intact" in trail and "n=59" in trail and "n=9" not in trail
    assert "ander@amsterdam.example" not in trail
    older = client.get("/admin/audit?pagina=2").get_data(as_text=True)
    assert "n=9" in older and "nieuwer" in older
    assert client.get("/admin/audit?pagina=x").status_code == 200
    with unit_of_work(world.runtime.sessions) as session:
        audit.record(session, "c@example.nl", "zaak.inzien", case_id=987654, purpose="doel X")
    one = client.get("/admin/audit?zaak=987654").get_data(as_text=True)
    assert "doel X" in one and "n=59" not in one and "1 gebeurtenis van" in one

    with world.runtime.engine.begin() as conn:
        broken = conn.execute(text("SELECT MIN(id) FROM audit_events WHERE action = 'test'"))
        victim = broken.scalar_one()
        conn.execute(text("UPDATE audit_events SET actor = 'x' WHERE id = :id"), {"id": victim})
    trail = client.get("/admin/audit").get_data(as_text=True)
    assert f"Hashketen verbroken bij gebeurtenis {victim}" in trail


def test_only_admins_open_the_admin_pages(client: Any, world: World) -> None:
    assert client.get("/admin").status_code == 302  # to the log-in page
    login_as(client, world, Role.COUNSELLOR, "consulent@utrecht.example")
    assert client.get("/admin").status_code == 403
    assert client.get("/admin/audit").status_code == 403
    assert 'href="/admin"' not in client.get("/queue").get_data(as_text=True)
