"""Log-in, roles and the partner portal (CONTRACT §5)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from signals.db import unit_of_work
from signals.enums import Role
from signals.jobs import process_pending_batches
from signals.models import Municipality, Partner
from signals.service import add_user
from tests.factories import World, csv_bytes, login, login_as, openssl_batch, row


def _csrf(client: Any, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page
    )
    assert match, "no CSRF token on " + path
    return match.group(1)


def _user(world: World, role: Role, email: str, partner_id: str | None = None) -> str:
    with unit_of_work(world.runtime.sessions) as session:
        municipality = session.get(Municipality, world.municipality_id)
        partner = session.get(Partner, partner_id) if partner_id else None
        return add_user(
            session, email, role, [municipality] if municipality else [], partner
        ).password


def _login(client: Any, email: str, password: str) -> Any:
    return login(client, email, password, check=False)


def test_login_and_wrong_password(client: Any, world: World) -> None:
    password = _user(world, Role.PARTNER, "p@example.nl", world.partner_id)
    bad = _login(client, "p@example.nl", "wrong-password")
    assert bad.status_code == 401
    assert "onjuist" in bad.get_data(as_text=True)
    good = _login(client, "P@Example.nl", password)
    assert good.status_code == 302 and good.headers["Location"].endswith("/partner/batches")


def test_login_without_csrf_token_is_refused(client: Any, world: World) -> None:
    password = _user(world, Role.PARTNER, "p@example.nl", world.partner_id)
    response = client.post("/login", data={"email": "p@example.nl", "password": password})
    assert response.status_code == 400
    assert client.get("/partner/batches").status_code == 302  # still not logged in


def test_partner_uploads_and_reads_own_report(client: Any, world: World) -> None:
    password = _user(world, Role.PARTNER, "p@example.nl", world.partner_id)
    _login(client, "p@example.nl", password)
    path, sig = openssl_batch(world, csv_bytes([row(), row(signaal_id="S-2", bsn="123456789")]))
    token = _csrf(client, "/partner/batches")
    response = client.post(
        "/partner/batches",
        data={
            "csrf_token": token,
            "gemeentecode": "0344",
            "file": (path.open("rb"), path.name),
            "signature": (sig.open("rb"), sig.name),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    batch_url = response.headers["Location"]
    page = client.get(batch_url).get_data(as_text=True)
    assert "Ontvangen" in page
    process_pending_batches(world.runtime)
    page = client.get(batch_url).get_data(as_text=True)
    assert "Verwerkt" in page
    assert "bsn_checksum" in page
    assert "123456789" not in page  # the report never shows a submitted value
    listing = client.get("/partner/batches").get_data(as_text=True)
    assert path.name in listing


def test_partner_sees_no_batch_of_another_partner(client: Any, world: World) -> None:
    other_id, _ = world.add_partner("Ander")
    password = _user(world, Role.PARTNER, "other@example.nl", other_id)
    from signals.enums import BatchSource
    from signals.jobs import ingest_file

    path, sig = openssl_batch(world, csv_bytes([row()]))
    batch_id = ingest_file(world.runtime, world.partner_id, path, sig, BatchSource.CLI).report["id"]
    _login(client, "other@example.nl", password)
    assert client.get(f"/partner/batches/{batch_id}").status_code == 404
    assert path.name not in client.get("/partner/batches").get_data(as_text=True)


@pytest.mark.parametrize("role", [Role.COUNSELLOR, Role.ANALYST, Role.ADMIN])
def test_other_roles_get_403_on_the_portal(client: Any, world: World, role: Role) -> None:
    login_as(client, world, role, f"{role.value}@example.nl")
    assert client.get("/partner/batches").status_code == 403


def test_anonymous_is_sent_to_login(client: Any) -> None:
    response = client.get("/partner/batches")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_security_headers(client: Any) -> None:
    headers = client.get("/login").headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "/%09/evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
    ],
)
def test_login_never_redirects_off_site(client: Any, world: World, target: str) -> None:
    password = _user(world, Role.PARTNER, "p@example.nl", world.partner_id)
    token = _csrf(client, "/login")
    response = client.post(
        f"/login?next={target}",
        data={"email": "p@example.nl", "password": password, "csrf_token": token},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/partner/batches"


def test_login_keeps_a_local_next(client: Any, world: World) -> None:
    password = _user(world, Role.PARTNER, "p@example.nl", world.partner_id)
    token = _csrf(client, "/login")
    response = client.post(
        "/login?next=/partner/batches?x=1",
        data={"email": "p@example.nl", "password": password, "csrf_token": token},
    )
    assert response.headers["Location"] == "/partner/batches?x=1"
