"""Log-in security (issue 6, Access): second factor, lock-out, rate limits, sessions, cookies.

Everything goes through the real app and the real database; codes are computed with pyotp
as an authenticator app would.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from flask import Flask
from sqlalchemy import select, update

from signals import totp
from signals.db import unit_of_work, utcnow
from signals.enums import Role
from signals.models import User
from signals.runtime import Runtime
from tests.factories import (
    World,
    add_staff,
    csrf_token,
    csv_bytes,
    login,
    login_as,
    openssl_batch,
    row,
)
from webapp import create_app

TEMPLATES = Path(__file__).resolve().parents[2] / "webapp" / "templates"


def _app(world: World, **settings: Any) -> Flask:
    """An app of its own (own rate-limit counts) with these settings changed."""
    runtime = Runtime(world.runtime.settings.model_copy(update=settings), world.runtime.engine)
    return create_app(runtime=runtime, TESTING=True)


def _password_step(client: Any, email: str, password: str) -> Any:
    page = client.get("/login").get_data(as_text=True)
    return client.post(
        "/login", data={"email": email, "password": password, "csrf_token": csrf_token(page)}
    )


def _code_step(client: Any, code: str) -> Any:
    page = client.get("/login/totp").get_data(as_text=True)
    return client.post("/login/totp", data={"code": code, "csrf_token": csrf_token(page)})


def _logout(client: Any) -> None:
    page = client.get("/").get_data(as_text=True)
    assert client.post("/logout", data={"csrf_token": csrf_token(page)}).status_code == 302


def _user(world: World, email: str) -> User:
    with unit_of_work(world.runtime.readers) as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        session.expunge(user)
        return user


def _logged_in(client: Any) -> bool:
    answer = client.get("/")
    return answer.status_code == 200


# -- the second factor -------------------------------------------------------------------------
def test_user_add_gives_staff_an_encrypted_secret_and_others_none(world: World) -> None:
    counsellor = add_staff(world.runtime, "c@example.nl", Role.COUNSELLOR, [world.municipality_id])
    admin = add_staff(world.runtime, "a@example.nl", Role.ADMIN, [world.municipality_id])
    analyst = add_staff(world.runtime, "an@example.nl", Role.ANALYST, [world.municipality_id])
    both = add_staff(world.runtime, "b@example.nl", Role.ANALYST, [world.municipality_id],
                     extra_roles=(Role.COUNSELLOR,))  # fmt: skip
    assert counsellor.totp_secret and admin.totp_secret and both.totp_secret
    assert analyst.totp_secret is None
    stored = _user(world, "c@example.nl")
    assert stored.totp_secret is not None and stored.totp_enrolled_at is None
    # Encrypted with the data key, like personal data: the secret is not in the row.
    assert counsellor.totp_secret.encode() not in stored.totp_secret
    assert base64.b32encode(base64.b32decode(counsellor.totp_secret)).decode() not in str(
        stored.totp_secret
    )
    assert totp.secret_of(stored, world.runtime.protector) == counsellor.totp_secret


def test_a_counsellor_enrols_at_the_first_log_in(client: Any, world: World) -> None:
    created = add_staff(world.runtime, "c@example.nl", Role.COUNSELLOR, [world.municipality_id])
    assert created.totp_secret
    answer = _password_step(client, "c@example.nl", created.password)
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/login/totp")
    # The password alone logs nobody in.
    assert not _logged_in(client)
    assert client.get("/queue").status_code == 302

    page = client.get("/login/totp")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    shown = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', html)
    assert shown and shown.group(1).replace(" ", "") == created.totp_secret
    uri = re.search(r'id="totp-uri">([^<]+)<', html)
    assert uri and uri.group(1).replace("&amp;", "&") == pyotp.TOTP(
        created.totp_secret
    ).provisioning_uri(name="c@example.nl", issuer_name="Vroegsignaal")
    assert "<svg" in html and "<script" not in html and "style=" not in html  # QR on the server

    wrong = _code_step(client, "000000" if pyotp.TOTP(created.totp_secret).now() != "000000"
                       else "111111")  # fmt: skip
    assert wrong.status_code == 401 and "onjuist" in wrong.get_data(as_text=True)
    assert not _logged_in(client)

    done = _code_step(client, pyotp.TOTP(created.totp_secret).now())
    assert done.status_code == 200
    codes = re.findall(r"<li><code>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</code></li>", done.text)
    assert len(set(codes)) == 10
    assert _logged_in(client) and client.get("/queue").status_code == 200
    stored = _user(world, "c@example.nl")
    assert stored.totp_enrolled_at is not None and stored.totp_last_step is not None
    assert len(stored.recovery_codes) == 10
    assert all(h.startswith("$argon2id$") for h in stored.recovery_codes)
    assert not any(code.replace("-", "") in h for code in codes for h in stored.recovery_codes)


def test_an_enrolled_user_needs_a_fresh_code_and_a_replay_is_refused(
    client: Any, world: World
) -> None:
    created = add_staff(world.runtime, "a@example.nl", Role.ADMIN, [world.municipality_id])
    assert created.totp_secret
    generator = pyotp.TOTP(created.totp_secret)
    now = time.time()
    assert _password_step(client, "a@example.nl", created.password).status_code == 302
    assert _code_step(client, generator.at(now)).status_code == 200  # enrolled
    _logout(client)

    assert _password_step(client, "a@example.nl", created.password).status_code == 302
    page = client.get("/login/totp").get_data(as_text=True)
    assert 'id="totp-secret"' not in page  # enrolled: the secret is never shown again
    replay = _code_step(client, generator.at(now))
    assert replay.status_code == 401 and "al gebruikt" in replay.get_data(as_text=True)
    assert not _logged_in(client)
    fresh = _code_step(client, generator.at(now + 30))  # the next step: a new code
    assert fresh.status_code == 302 and fresh.headers["Location"] == "/"
    assert _logged_in(client)


def test_a_code_from_long_ago_or_the_far_future_is_refused(client: Any, world: World) -> None:
    created = add_staff(world.runtime, "c@example.nl", Role.COUNSELLOR, [world.municipality_id])
    assert created.totp_secret
    generator = pyotp.TOTP(created.totp_secret)
    _password_step(client, "c@example.nl", created.password)
    for moment in (time.time() - 120, time.time() + 120):
        code = generator.at(moment)
        if code not in {generator.at(time.time() + d) for d in (-30, 0, 30)}:
            assert _code_step(client, code).status_code == 401
    assert not _logged_in(client)


def test_a_recovery_code_works_once_in_place_of_a_code(client: Any, world: World) -> None:
    created = add_staff(world.runtime, "c@example.nl", Role.COUNSELLOR, [world.municipality_id])
    enrolled = login(client, "c@example.nl", created.password, created.totp_secret)
    codes = re.findall(r"<code>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</code>", enrolled.text)
    assert len(codes) == 10
    _logout(client)

    _password_step(client, "c@example.nl", created.password)
    used = _code_step(client, codes[3].upper().replace("-", " "))  # as typed from paper
    assert used.status_code == 302
    assert "nog 9 over" in client.get("/").get_data(as_text=True)
    assert len(_user(world, "c@example.nl").recovery_codes) == 9
    _logout(client)

    _password_step(client, "c@example.nl", created.password)
    again = _code_step(client, codes[3])
    assert again.status_code == 401 and not _logged_in(client)
    assert _code_step(client, codes[4]).status_code == 302 and _logged_in(client)


def test_partners_and_analysts_log_in_without_a_second_factor(client: Any, world: World) -> None:
    created = add_staff(world.runtime, "an@example.nl", Role.ANALYST, [world.municipality_id])
    answer = _password_step(client, "an@example.nl", created.password)
    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    assert _logged_in(client)


def test_the_second_step_must_follow_the_first_soon(client: Any, world: World) -> None:
    created = add_staff(world.runtime, "c@example.nl", Role.COUNSELLOR, [world.municipality_id])
    assert created.totp_secret
    assert client.get("/login/totp").headers["Location"].endswith("/login")  # no password yet
    _password_step(client, "c@example.nl", created.password)
    with client.session_transaction() as session:
        pending = session["login_pending"]
        session["login_pending"] = {**pending, "at": pending["at"] - 301}
    answer = client.get("/login/totp")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/login")
    assert "opnieuw" in client.get("/login").get_data(as_text=True)
    assert not _logged_in(client)


# -- lock-out ----------------------------------------------------------------------------------
def test_wrong_passwords_lock_the_account_for_a_while(world: World) -> None:
    app = _app(world, login_max_failures=3, login_lockout_minutes=15, rate_limit_login="99/minute")
    client = app.test_client()
    created = add_staff(world.runtime, "an@example.nl", Role.ANALYST, [world.municipality_id])
    unknown = _password_step(client, "nobody@example.nl", "whatever-password")
    assert unknown.status_code == 401

    # Failures in a row: a success in between starts the count again.
    for _ in range(2):
        assert _password_step(client, "an@example.nl", "wrong-password").status_code == 401
    assert _password_step(client, "an@example.nl", created.password).status_code == 302
    _logout(client)
    for _ in range(3):
        wrong = _password_step(client, "an@example.nl", "wrong-password")
        assert wrong.status_code == 401
    locked = _password_step(client, "an@example.nl", created.password)
    assert locked.status_code == 401 and not _logged_in(client)
    # The same words as for an unknown address: nobody learns whether the account exists.
    message = re.compile(r'id="login-error">([^<]+)<')
    assert message.search(locked.text)[1] == message.search(unknown.text)[1]  # type: ignore[index]
    stored = _user(world, "an@example.nl")
    assert stored.locked_until is not None
    assert dt.timedelta(minutes=14) < stored.locked_until - utcnow() <= dt.timedelta(minutes=15)

    # When the lock-out has passed (its end moved to the past), the password works again.
    with unit_of_work(world.runtime.sessions) as session:
        session.execute(
            update(User)
            .where(User.email == "an@example.nl")
            .values(locked_until=utcnow() - dt.timedelta(seconds=1))
        )
    assert _password_step(client, "an@example.nl", created.password).status_code == 302
    assert _logged_in(client)
    stored = _user(world, "an@example.nl")
    assert stored.failed_logins == 0 and stored.locked_until is None


def test_wrong_codes_lock_the_account_too(world: World) -> None:
    app = _app(world, login_max_failures=3)
    client = app.test_client()
    created = add_staff(world.runtime, "c@example.nl", Role.COUNSELLOR, [world.municipality_id])
    assert created.totp_secret
    good = pyotp.TOTP(created.totp_secret).now()
    bad = "000000" if good != "000000" else "111111"
    _password_step(client, "c@example.nl", created.password)
    assert _code_step(client, bad).status_code == 401
    # A right password again does not reset the count: codes cannot be guessed for ever.
    _password_step(client, "c@example.nl", created.password)
    assert _code_step(client, bad).status_code == 401
    third = _code_step(client, bad)
    assert third.status_code == 302 and third.headers["Location"].endswith("/login")
    assert "geblokkeerd" in client.get("/login").get_data(as_text=True)
    assert _user(world, "c@example.nl").locked_until is not None
    # Locked: neither the password nor a right code gets in.
    assert _password_step(client, "c@example.nl", created.password).status_code == 401
    assert client.get("/login/totp").status_code == 302
    assert not _logged_in(client)


# -- rate limits -------------------------------------------------------------------------------
def test_too_many_log_in_attempts_get_429_as_a_dutch_page(world: World) -> None:
    app = _app(world, rate_limit_login="3 per minute")
    client = app.test_client()
    for _ in range(3):
        assert _password_step(client, "x@example.nl", "wrong-password").status_code == 401
    answer = _password_step(client, "x@example.nl", "wrong-password")
    assert answer.status_code == 429
    assert "Te veel pogingen" in answer.get_data(as_text=True)
    assert int(answer.headers["Retry-After"]) > 0
    assert client.get("/login").status_code == 200  # reading the form is not limited
    # The second step has a limit of its own.
    form = {"code": "123456", "csrf_token": csrf_token(client.get("/login").get_data(as_text=True))}
    for _ in range(3):
        assert client.post("/login/totp", data=form).status_code == 302  # no password step
    assert client.post("/login/totp", data=form).status_code == 429
    # Every app counts on its own: a fresh one (another test) starts at zero.
    other = _app(world, rate_limit_login="3 per minute").test_client()
    assert _password_step(other, "x@example.nl", "wrong-password").status_code == 401


def test_too_many_uploads_and_token_requests_get_429_problems(world: World, tmp_path: Path) -> None:
    app = _app(world, rate_limit_upload="2 per minute", rate_limit_token="2 per minute",
               cbs_client_id="cbs", cbs_client_secret="cbs-secret-0123456789")  # fmt: skip
    client = app.test_client()
    path, sig = openssl_batch(world, csv_bytes([row()]))
    headers = {"Authorization": f"Bearer {world.token}"}

    def upload() -> Any:
        return client.post(
            "/api/v1/batches",
            headers=headers,
            data={"file": (path.open("rb"), path.name), "signature": (sig.open("rb"), sig.name)},
            content_type="multipart/form-data",
        )

    assert upload().status_code in (200, 202)
    assert upload().status_code == 200  # the identical re-send
    limited = upload()
    assert limited.status_code == 429 and limited.mimetype == "application/problem+json"
    assert limited.get_json()["status"] == 429 and "Retry-After" in limited.headers

    form = {"grant_type": "client_credentials"}
    auth = {"Authorization": "Basic " + base64.b64encode(b"cbs:cbs-secret-0123456789").decode()}
    assert client.post("/gegevens/token", data=form, headers=auth).status_code == 200
    assert client.post("/gegevens/token", data=form).status_code == 401
    token = client.post("/gegevens/token", data=form, headers=auth)
    assert token.status_code == 429 and token.mimetype == "application/problem+json"


def test_too_many_portal_uploads_get_429(world: World) -> None:
    app = _app(world, rate_limit_upload="1 per minute")
    client = app.test_client()
    with unit_of_work(world.runtime.sessions) as session:
        from signals.models import Partner
        from signals.service import add_user

        partner = session.get(Partner, world.partner_id)
        assert partner is not None
        password = add_user(session, "p@example.nl", Role.PARTNER, [], partner).password
    login(client, "p@example.nl", password)
    path, sig = openssl_batch(world, csv_bytes([row()]))

    def upload() -> Any:
        page = client.get("/partner/batches").get_data(as_text=True)
        return client.post(
            "/partner/batches",
            data={"csrf_token": csrf_token(page), "gemeentecode": "0344",
                  "file": (path.open("rb"), path.name), "signature": (sig.open("rb"), sig.name)},
            content_type="multipart/form-data",
        )  # fmt: skip

    assert upload().status_code == 302
    limited = upload()
    assert limited.status_code == 429 and "Te veel pogingen" in limited.get_data(as_text=True)
    assert client.get("/partner/batches").status_code == 200  # the list is not limited


# -- sessions and cookies ----------------------------------------------------------------------
def _session_cookie(response: Any) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert cookies, "no session cookie set"
    return cookies[-1]


def test_log_in_starts_a_fresh_session(client: Any, world: World) -> None:
    created = add_staff(world.runtime, "c@example.nl", Role.COUNSELLOR, [world.municipality_id])
    assert created.totp_secret
    page = client.get("/login")
    before_cookie = _session_cookie(page)
    before_token = csrf_token(page.get_data(as_text=True))
    with client.session_transaction() as session:
        session["planted"] = "by someone else"  # what a fixation attack would leave behind
    first = client.post(
        "/login",
        data={"email": "c@example.nl", "password": created.password, "csrf_token": before_token},
    )
    assert _session_cookie(first) != before_cookie
    with client.session_transaction() as session:
        assert "planted" not in session and "_user_id" not in session  # pending, not logged in
    pending_token = csrf_token(client.get("/login/totp").get_data(as_text=True))
    code = pyotp.TOTP(created.totp_secret).now()
    done = client.post("/login/totp", data={"code": code, "csrf_token": pending_token})
    assert done.status_code == 200
    with client.session_transaction() as session:
        assert session["_user_id"] == str(_user(world, "c@example.nl").id)
        assert "login_pending" not in session
        assert session.get("csrf_token") not in (None, pending_token)
    # The CSRF tokens of the session before are worthless in the new one.
    assert client.post("/logout", data={"csrf_token": before_token}).status_code == 400
    assert client.post("/logout", data={"csrf_token": pending_token}).status_code == 400
    assert _logged_in(client)


def test_an_idle_session_ends(client: Any, world: World) -> None:
    login_as(client, world, Role.COUNSELLOR, "c@example.nl")
    assert client.get("/queue").status_code == 200
    idle = world.runtime.settings.session_idle_minutes * 60
    with client.session_transaction() as session:
        session["seen_at"] -= idle - 60  # used a minute within the limit: still on
    assert client.get("/queue").status_code == 200
    with client.session_transaction() as session:
        assert int(time.time()) - session["seen_at"] < 5  # and the clock starts again
        session["seen_at"] -= idle + 1
    answer = client.get("/queue?filter=1")
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert location.path == "/login" and parse_qs(location.query)["next"] == ["/queue?filter=1"]
    assert "sessie is verlopen" in client.get("/login").get_data(as_text=True)
    assert client.get("/queue").status_code == 302
    with client.session_transaction() as session:
        assert "_user_id" not in session


def test_session_cookie_flags(world: World) -> None:
    created = add_staff(world.runtime, "an@example.nl", Role.ANALYST, [world.municipality_id])
    app = _app(world)
    plain = app.test_client()
    cookie = _session_cookie(_password_step(plain, "an@example.nl", created.password))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # the demo on http://127.0.0.1 must keep working

    tls = app.test_client()
    page = tls.get("/login", base_url="https://vroegsignaal.example")
    assert "Secure" in _session_cookie(page)
    assert "HttpOnly" in _session_cookie(page)

    forced = create_app(runtime=world.runtime, TESTING=True, SESSION_COOKIE_SECURE=True)
    assert "Secure" in _session_cookie(forced.test_client().get("/login"))


# -- CSRF --------------------------------------------------------------------------------------
def test_every_post_form_carries_a_csrf_token() -> None:
    forms = 0
    for template in sorted(TEMPLATES.rglob("*.html")):
        text = template.read_text()
        for form in re.findall(r"<form\b[^>]*>.*?</form>", text, flags=re.S | re.I):
            opening = form[: form.index(">")]
            if re.search(r'method="post"', opening, flags=re.I):
                forms += 1
                assert "csrf_token" in form, f"a POST form in {template.name} has no CSRF token"
    assert forms >= 8


@pytest.mark.parametrize("path", ["/login", "/login/totp", "/logout"])
def test_posts_without_a_csrf_token_are_refused(client: Any, world: World, path: str) -> None:
    assert client.post(path, data={"email": "a@example.nl", "code": "123456"}).status_code == 400
