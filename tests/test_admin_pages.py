"""Changes on the admin page (``/admin``): add a user, register a partner, renew and retire a
recipient key. Each works as its command does, is audited with the admin as the actor, stays
within the admin's municipalities, and refuses bad input next to the field, storing nothing."""

from __future__ import annotations

import datetime as dt
import html
import io
import re
from typing import Any

import pytest
from sqlalchemy import func, select

from signals import audit
from signals.crypto import token_hash
from signals.db import unit_of_work
from signals.enums import Role
from signals.models import Partner, PartnerKey, RecipientKey, User
from signals.service import active_recipient_keys, add_municipality, create_recipient_key
from tests.factories import World, csrf_token, login, login_as, pem_public
from tests.webapp.test_accessibility import problems
from tests.webapp.test_headers import inline_code

ADMIN = "beheer@utrecht.example"


def _sound(page: str) -> None:
    """The page passes the accessibility checks and has no inline code (CSP)."""
    assert not problems(page) and not inline_code(page), problems(page) + inline_code(page)


def _shown(page: str, element_id: str) -> str:
    _sound(page)
    match = re.search(rf'id="{element_id}">([^<]+)<', page)
    assert match, f"nothing shown as {element_id}"
    return html.unescape(match.group(1))


def _admin(client: Any, world: World) -> str:
    """Log in as an admin of the world's municipality (0344); the admin page's CSRF token."""
    login_as(client, world, Role.ADMIN, ADMIN)
    return csrf_token(client.get("/admin").get_data(as_text=True))


def _management_events(world: World) -> list[Any]:
    with unit_of_work(world.runtime.readers) as session:
        return [e for e in audit.events(session) if e.purpose == audit.PURPOSE_MANAGEMENT]


def _count(world: World, model: Any) -> int:
    with unit_of_work(world.runtime.readers) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _field(page: str, element_id: str) -> str:
    """The opening tag of the control with this id."""
    match = re.search(rf'<(?:input|select)[^>]*id="{element_id}"[^>]*>', page)
    assert match, element_id
    return match.group(0)


def _refused_next_to(page: str, element_id: str, text: str) -> None:
    _sound(page)
    control = _field(page, element_id)
    assert 'aria-invalid="true"' in control and f'aria-describedby="{element_id}-error"' in control
    assert f'<span class="field-error" id="{element_id}-error">{html.escape(text)}' in page


def _other_municipality(world: World) -> tuple[str, int]:
    """Amsterdam (0363), not the admin's, with a recipient key: (code, key id)."""
    with unit_of_work(world.runtime.sessions) as session:
        other = add_municipality(session, "0363", "Amsterdam")
        return other.code, create_recipient_key(session, world.runtime.protector, other).id


# -- add a user ----------------------------------------------------------------------------------
def test_an_admin_adds_a_counsellor_who_can_then_log_in(
    client: Any, world: World, app: Any
) -> None:
    token = _admin(client, world)
    answer = client.post(
        "/admin/gebruikers",
        data={"csrf_token": token, "email": "Nieuw@Utrecht.example", "rol": "counsellor",
              "gemeente": "0344"},
    )  # fmt: skip
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    assert "Gebruiker toegevoegd" in page and "maar één keer" in page
    assert 'class="language"' not in page  # following the switch would lose the password
    password, secret = _shown(page, "nieuw-wachtwoord"), _shown(page, "nieuw-totp")
    assert _shown(page, "nieuw-email") == "nieuw@utrecht.example"

    # The new counsellor logs in with what the page showed, and has the role and the place.
    newcomer = app.test_client()
    login(newcomer, "nieuw@utrecht.example", password, secret)
    assert newcomer.get("/queue").status_code == 200
    assert newcomer.get("/admin").status_code == 403
    with unit_of_work(world.runtime.readers) as session:
        user = session.scalar(select(User).where(User.email == "nieuw@utrecht.example"))
        assert user is not None and user.role is Role.COUNSELLOR
        assert [m.id for m in user.municipalities] == [world.municipality_id]

    (event,) = [e for e in _management_events(world) if e.detail.get("gebruiker_id") == user.id]
    assert event.action == "beheer.gebruiker.aangemaakt" and event.actor == ADMIN
    assert event.detail == {"gebruiker_id": user.id, "rol": "counsellor"}
    assert password not in str(event.detail) and secret not in str(event.detail)

    # Shown once: the page itself no longer has it.
    assert password not in client.get("/admin").get_data(as_text=True)


def test_an_analyst_has_no_second_factor_to_hand_over(client: Any, world: World) -> None:
    token = _admin(client, world)
    answer = client.post("/admin/gebruikers", data={"csrf_token": token, "gemeente": "0344",
                         "email": "analist@utrecht.example", "rol": "analyst"})  # fmt: skip
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and _shown(page, "nieuw-wachtwoord")
    assert 'id="nieuw-totp"' not in page


@pytest.mark.parametrize(
    ("email", "message"),
    [
        (ADMIN, "Er is al een gebruiker met dit e-mailadres."),
        ("geen-adres", "Dit is geen geldig e-mailadres."),
        ("", "Vul een e-mailadres in."),
    ],
)
def test_a_refused_user_is_named_next_to_the_field_and_nothing_is_stored(
    client: Any, world: World, email: str, message: str
) -> None:
    token = _admin(client, world)
    users, events = _count(world, User), len(_management_events(world))
    form = {"csrf_token": token, "email": email, "rol": "counsellor", "gemeente": "0344"}
    answer = client.post("/admin/gebruikers", data=form)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422
    _refused_next_to(page, "gebruiker-email", message)
    assert 'id="nieuw-wachtwoord"' not in page
    assert _count(world, User) == users and len(_management_events(world)) == events


def test_no_partner_role_and_a_municipality_is_needed(client: Any, world: World) -> None:
    token = _admin(client, world)
    users = _count(world, User)
    for data in ({"rol": "partner", "gemeente": "0344"}, {"rol": "counsellor", "gemeente": ""}):
        form = {"csrf_token": token, "email": "x@utrecht.example", **data}
        answer = client.post("/admin/gebruikers", data=form)
        assert answer.status_code == 422, data
    _refused_next_to(answer.get_data(as_text=True), "gebruiker-gemeente", "Kies een gemeente.")
    assert _count(world, User) == users


# -- register a partner --------------------------------------------------------------------------
def test_an_admin_registers_a_partner_whose_token_works_once_shown(
    client: Any, world: World
) -> None:
    token = _admin(client, world)
    answer = client.post(
        "/admin/partners",
        data={"csrf_token": token, "naam": "Energie Utrecht", "soort": "Energie",
              "gemeente": "0344",
              "sleutel": (io.BytesIO(pem_public(world.keys.partner["ec"])), "energie.pem")},
        content_type="multipart/form-data",
    )  # fmt: skip
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    api_token, partner_id = _shown(page, "nieuw-token"), _shown(page, "nieuw-partner-id")
    assert api_token.startswith("vs_") and "maar één keer" in page
    assert "add-key" not in page  # the key was registered with it

    with unit_of_work(world.runtime.readers) as session:
        partner = session.get(Partner, partner_id)
        assert partner is not None and partner.name == "Energie Utrecht"
        assert partner.partner_type.value == "Energie"
        assert [m.id for m in partner.municipalities] == [world.municipality_id]
        assert partner.token_hash == token_hash(api_token) != api_token  # stored as a hash
        assert len(partner.keys) == 1  # the signing key came with it
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    feedback = client.get("/api/v1/feedback", query_string={"since": since},
                          headers={"Authorization": f"Bearer {api_token}"})  # fmt: skip
    assert feedback.status_code == 200

    events = _management_events(world)
    (created,) = [e for e in events if e.action == "beheer.partner.aangemaakt"
                  and e.detail.get("partner_id") == partner_id]  # fmt: skip
    (signing,) = [e for e in events if e.action == "sleutel.aangemaakt"
                  and e.detail.get("partner_id") == partner_id]  # fmt: skip
    assert created.actor == signing.actor == ADMIN
    assert all(api_token not in str(e.detail) for e in events)
    assert api_token not in client.get("/admin").get_data(as_text=True)


def test_a_partner_without_a_key_is_told_to_add_one(client: Any, world: World) -> None:
    token = _admin(client, world)
    answer = client.post("/admin/partners", data={"csrf_token": token, "naam": "Water",
                         "soort": "Water", "gemeente": "0344"})  # fmt: skip
    assert answer.status_code == 200 and "partner add-key" in answer.get_data(as_text=True)


@pytest.mark.parametrize(
    ("data", "element_id", "message"),
    [
        ({"sleutel": (b"geen sleutel", "x.pem")}, "partner-sleutel",
         "Dit is geen leesbare publieke sleutel of certificaat (RSA, EC of Ed25519, PEM)."),
        ({"naam": ""}, "partner-naam", "Vul een naam in."),
        ({"naam": "   "}, "partner-naam", "Vul een naam in."),
        ({"gemeente": ""}, "partner-gemeente", "Kies een gemeente."),
        ({"soort": "Kapper"}, "partner-soort", ""),
    ],
)  # fmt: skip
def test_a_refused_partner_is_named_next_to_the_field_and_nothing_is_stored(
    client: Any, world: World, data: dict[str, Any], element_id: str, message: str
) -> None:
    token = _admin(client, world)
    before = (_count(world, Partner), _count(world, PartnerKey), len(_management_events(world)))
    # A file is given as bytes and opened here: the parameters are shared by both databases.
    data = {k: (io.BytesIO(v[0]), v[1]) if isinstance(v, tuple) else v for k, v in data.items()}
    form = {"csrf_token": token, "naam": "Zorg BV", "soort": "Zorg", "gemeente": "0344", **data}
    answer = client.post("/admin/partners", data=form, content_type="multipart/form-data")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422
    _refused_next_to(page, element_id, message)
    assert 'id="nieuw-token"' not in page
    # The language switch goes back to the page, not to the address of the form.
    switch = re.search(r'<a class="language" href="([^"]+)"', page)
    assert switch and client.get(html.unescape(switch.group(1))).headers["Location"] == "/admin"
    after = (_count(world, Partner), _count(world, PartnerKey), len(_management_events(world)))
    assert after == before


# -- renew and retire a recipient key ------------------------------------------------------------
def test_a_key_is_renewed_both_stay_active_until_the_old_one_is_retired(
    client: Any, world: World
) -> None:
    token = _admin(client, world)
    earlier = len(_management_events(world))  # the trail outlives a test; ids may repeat
    with unit_of_work(world.runtime.readers) as session:
        (old,) = [k.id for k in active_recipient_keys(session, world.municipality_id)]
    only = client.get("/admin").get_data(as_text=True)
    assert 'type="hidden" name="sleutel"' not in only  # the only key: no button

    answer = client.post("/admin/sleutels/vernieuwen", data={"csrf_token": token,
                                                             "gemeente": "0344"})  # fmt: skip
    page = answer.get_data(as_text=True)
    _sound(page)
    assert answer.status_code == 200 and "Nieuwe ontvangstsleutel voor Utrecht" in page
    link = re.search(r'href="(/admin/sleutels/certificaat\.pem\?sleutel=(\d+))" download', page)
    assert link
    new = int(link.group(2))
    with unit_of_work(world.runtime.readers) as session:
        assert {k.id for k in active_recipient_keys(session, world.municipality_id)} == {old, new}

    pem = client.get(link.group(1))
    assert pem.status_code == 200 and pem.mimetype == "application/x-pem-file"
    assert pem.get_data(as_text=True).startswith("-----BEGIN CERTIFICATE-----")
    assert "attachment" in pem.headers["Content-Disposition"]
    assert "PRIVATE" not in pem.get_data(as_text=True)

    # The old key has a button, the new one not; retiring the old one keeps the new one.
    overview = client.get("/admin").get_data(as_text=True)
    _sound(overview)
    assert f'name="sleutel" value="{old}"' in overview
    assert f'name="sleutel" value="{new}"' not in overview
    retired = client.post("/admin/sleutels/uitfaseren", data={"csrf_token": token,
                                                              "sleutel": str(old)})  # fmt: skip
    assert retired.status_code == 303 and retired.headers["Location"].endswith("/admin")
    assert f"Sleutel {old} is uitgefaseerd" in client.get("/admin").get_data(as_text=True)
    with unit_of_work(world.runtime.readers) as session:
        assert [k.id for k in active_recipient_keys(session, world.municipality_id)] == [new]

    events = _management_events(world)[earlier:]
    (made,) = [e for e in events if e.action == "sleutel.aangemaakt"
               and e.detail.get("sleutel_id") == new]  # fmt: skip
    (gone,) = [e for e in events if e.action == "sleutel.uitgefaseerd"
               and e.detail.get("sleutel_id") == old]  # fmt: skip
    assert made.actor == gone.actor == ADMIN
    assert made.municipality_id == gone.municipality_id == world.municipality_id

    # The last active key stays: partners would have nothing to encrypt to.
    last = client.post("/admin/sleutels/uitfaseren", data={"csrf_token": token,
                                                           "sleutel": str(new)})  # fmt: skip
    text = last.get_data(as_text=True)
    _sound(text)
    assert last.status_code == 409 and "de laatste actieve ontvangstsleutel" in text
    again = client.post("/admin/sleutels/uitfaseren", data={"csrf_token": token,
                                                            "sleutel": str(old)})  # fmt: skip
    assert again.status_code == 409 and "al uitgefaseerd" in again.get_data(as_text=True)
    with unit_of_work(world.runtime.readers) as session:
        assert [k.id for k in active_recipient_keys(session, world.municipality_id)] == [new]
    assert len(_management_events(world)) == earlier + len(events)


def test_a_refused_key_form_stores_nothing(client: Any, world: World) -> None:
    token = _admin(client, world)
    keys = _count(world, RecipientKey)
    answer = client.post("/admin/sleutels/vernieuwen", data={"csrf_token": token})
    assert answer.status_code == 422
    _refused_next_to(answer.get_data(as_text=True), "sleutel-gemeente", "Kies een gemeente.")
    assert client.post("/admin/sleutels/uitfaseren", data={"csrf_token": token}).status_code == 422
    unknown = {"csrf_token": token, "sleutel": "999999"}
    assert client.post("/admin/sleutels/uitfaseren", data=unknown).status_code == 404
    assert client.get("/admin/sleutels/certificaat.pem").status_code == 422
    assert client.get("/admin/sleutels/certificaat.pem?sleutel=x").status_code == 404
    assert _count(world, RecipientKey) == keys


# -- who may ---------------------------------------------------------------------------------------
POSTS = {
    "/admin/gebruikers": {"email": "x@utrecht.example", "rol": "admin", "gemeente": "0344"},
    "/admin/partners": {"naam": "X", "soort": "Huur", "gemeente": "0344"},
    "/admin/sleutels/vernieuwen": {"gemeente": "0344"},
    "/admin/sleutels/uitfaseren": {"sleutel": "1"},
}


def test_a_counsellor_and_a_visitor_change_nothing(client: Any, world: World) -> None:
    before = [_count(world, m) for m in (User, Partner, RecipientKey)]
    for path, data in POSTS.items():
        answer = client.post(path, data=data)
        assert answer.status_code == 302 and "/login" in answer.headers["Location"], path
    login_as(client, world, Role.COUNSELLOR, "consulent@utrecht.example")
    token = csrf_token(client.get("/queue").get_data(as_text=True))
    for path, data in POSTS.items():
        assert client.post(path, data={"csrf_token": token, **data}).status_code == 403, path
    assert client.get("/admin/sleutels/certificaat.pem?sleutel=1").status_code == 403
    assert [_count(world, m) for m in (User, Partner, RecipientKey)] == [before[0] + 1, *before[1:]]


def test_without_the_csrf_token_nothing_happens(client: Any, world: World) -> None:
    _admin(client, world)
    before = [_count(world, m) for m in (User, Partner, RecipientKey)]
    for path, data in POSTS.items():
        assert client.post(path, data=data).status_code == 400, path
    assert [_count(world, m) for m in (User, Partner, RecipientKey)] == before


def test_another_municipality_is_not_the_admins(client: Any, world: World) -> None:
    code, other_key = _other_municipality(world)
    token = _admin(client, world)
    page = client.get("/admin").get_data(as_text=True)
    assert 'value="0363"' not in page  # not offered
    before = [_count(world, m) for m in (User, Partner, RecipientKey)]
    events = len(_management_events(world))
    for path, data in POSTS.items():
        data = {**data, "gemeente": code} if "gemeente" in data else {"sleutel": str(other_key)}
        answer = client.post(path, data={"csrf_token": token, **data})
        assert answer.status_code == 404, path
    assert client.get(f"/admin/sleutels/certificaat.pem?sleutel={other_key}").status_code == 404
    assert [_count(world, m) for m in (User, Partner, RecipientKey)] == before
    assert len(_management_events(world)) == events
    with unit_of_work(world.runtime.readers) as session:
        key = session.get(RecipientKey, other_key)
        assert key is not None and key.retired_at is None
