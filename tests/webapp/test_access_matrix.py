"""Authorisation in one place: every cell of the role x endpoint matrix against the app.

Each role (and an anonymous visitor) asks every endpoint of ``app.url_map`` with every
method it serves, with ids of its own municipality: a role in the cell gets the page (200,
a redirect that is not the log-in page, 422 for a refused delivery), a logged-in user
outside it 403, an anonymous visitor the log-in page; machine APIs answer 401 to a browser
session; a method an endpoint does not serve is 405 for everybody.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from flask import Flask

from outreach.enums import CaseResult
from signals.db import unit_of_work
from signals.enums import Role
from signals.models import Municipality
from signals.rules import today_nl
from signals.runtime import Runtime
from signals.service import add_user
from tests.factories import World
from tests.webapp.conftest import ROLES, Account, Side, Two, log_in, token_of
from webapp import create_app
from webapp.access import EVERY_ROLE, MATRIX, PUBLIC, TOKEN

ANONYMOUS = "anonymous"
TODAY = today_nl()
#: Form fields that make an allowed POST do its work (others need none beyond CSRF).
FORMS: dict[str, dict[str, str]] = {
    "outreach.close_case": {"result": CaseResult.GEEN_CONTACT.value},
    "outreach.review_case": {"besluit": "oppakken"},
    "ddas_pages.request_export": {
        "van": (TODAY - dt.timedelta(days=60)).isoformat(),
        "tot": TODAY.isoformat(),
        "gemeente": "alle",
    },
}


def app_with_cbs(runtime: Runtime) -> Flask:
    """The app with the DDAS API for CBS and ``/metrics`` switched on (off, they answer 404
    to everybody)."""
    settings = runtime.settings.model_copy(
        update={
            "cbs_client_id": "cbs-ddas",
            "cbs_client_secret": "cbs-secret-0123456789-abcdef",
            "metrics_token": "metrics-token-0123456789-0123456789",
        }
    )
    return create_app(runtime=Runtime(settings, runtime.engine), TESTING=True)


def staff(world: World, email: str, main: Role, *extra: Role) -> Account:
    """A user of the world's municipality holding ``main`` and ``extra`` roles."""
    runtime = world.runtime
    with unit_of_work(runtime.sessions) as session:
        municipality = session.get(Municipality, world.municipality_id)
        assert municipality is not None
        created = add_user(session, email, main, [municipality], extra_roles=extra,
                           protector=runtime.protector,
                           totp_roles=runtime.settings.totp_roles)  # fmt: skip
    return Account(email, created.password, frozenset({main, *extra}), created.totp_secret)


def url_of(rule: Any, side: Side) -> str:
    values = {"case_id": side.case_ids[0], "batch_id": side.batch_id, "filename": "style.css",
              "code": "nl", "export_id": side.export_id}  # fmt: skip
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: str(values[m.group(1)]), rule.rule)


def methods_of(rule: Any) -> list[str]:
    return sorted(rule.methods - {"HEAD", "OPTIONS"})


def is_login_redirect(response: Any) -> bool:
    return response.status_code == 302 and "/login" in response.headers.get("Location", "")


def client_for(app: Flask, who: Role | str, side: Side) -> Any:
    client = app.test_client()
    if who != ANONYMOUS:
        assert isinstance(who, Role)
        log_in(client, side.users[who])
    return client


def ask(client: Any, method: str, url: str, endpoint: str, token: str) -> Any:
    if method == "GET":
        answer = client.get(url)
    else:
        answer = client.post(url, data={"csrf_token": token, **FORMS.get(endpoint, {})})
    answer.get_data()  # read, then close: a static file stays open otherwise
    answer.close()
    return answer


def test_every_endpoint_is_in_the_matrix_and_nothing_else(runtime: Runtime) -> None:
    app = app_with_cbs(runtime)
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert not endpoints - MATRIX.keys(), "endpoints missing from webapp/access.py"
    assert not MATRIX.keys() - endpoints, "the matrix names endpoints that do not exist"


def test_every_cell_of_the_matrix(two: Two) -> None:
    app = app_with_cbs(two.world.runtime)
    wrong: list[str] = []
    for who in (*ROLES, ANONYMOUS):
        client = client_for(app, who, two.a)
        token = token_of(client)
        # Log-out last: it ends the session the other cells need.
        rules = sorted(
            app.url_map.iter_rules(), key=lambda r: (r.endpoint == "auth.logout", r.endpoint)
        )
        for rule in rules:
            cell = MATRIX[rule.endpoint]
            url = url_of(rule, two.a)
            for method in methods_of(rule):
                answer = ask(client, method, url, rule.endpoint, token)
                status = answer.status_code
                if cell == TOKEN:
                    ok = status == 401  # a browser session is no credential
                elif cell == PUBLIC:  # the log-in steps may send one back to the log-in page
                    ok = status < 500 and status != 403
                elif who == ANONYMOUS:
                    ok = is_login_redirect(answer)
                elif who in cell:
                    ok = status in (200, 302, 303, 422) and not is_login_redirect(answer)
                else:
                    ok = status == 403
                if not ok:
                    wrong.append(f"{who} {method} {url} ({rule.endpoint}): {status}")
    assert not wrong, "\n".join(wrong)


def test_a_method_an_endpoint_does_not_serve_is_405_for_everybody(two: Two) -> None:
    app = app_with_cbs(two.world.runtime)
    served: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        served.setdefault(url_of(rule, two.a), set()).update(methods_of(rule))
    assert "GET" not in served["/logout"] and "GET" not in served["/gegevens"]
    wrong = []
    for who in (*ROLES, ANONYMOUS):
        client = client_for(app, who, two.a)
        for url, methods in sorted(served.items()):
            for method in {"GET", "POST"} - methods:
                answer = client.open(url, method=method)
                answer.close()
                if answer.status_code != 405:
                    wrong.append(f"{who} {method} {url}: {answer.status_code}")
    assert not wrong, "\n".join(wrong)


def test_the_matrix_keeps_personal_data_to_counsellors_and_admins() -> None:
    """Independent of how the matrix is written: what CONTRACT §5 and the privacy rules say."""
    personal = [e for e in MATRIX if e.startswith(("outreach.", "ddas_pages."))]
    personal.remove("outreach.team")  # counts per counsellor only
    for endpoint in personal:
        cell = MATRIX[endpoint]
        assert isinstance(cell, frozenset) and not cell & {Role.ANALYST, Role.PARTNER}, endpoint
    for endpoint, cell in MATRIX.items():
        if isinstance(cell, frozenset) and Role.PARTNER in cell:
            assert endpoint.startswith("portal.") or cell == EVERY_ROLE, endpoint
        if endpoint.startswith(("dashboard.", "ddas_pages.", "outreach.", "portal.")):
            assert isinstance(cell, frozenset), f"{endpoint} must not be public"
        if endpoint.startswith("admin."):
            assert cell == {Role.ADMIN}, endpoint
    assert MATRIX["outreach.case"] == {Role.COUNSELLOR}
    assert MATRIX["dashboard.dashboard"] == {Role.ANALYST, Role.ADMIN}
    assert MATRIX["ddas_pages.request_export"] == {Role.ADMIN}
    assert MATRIX["ddas_pages.export_file"] == {Role.ADMIN}
    assert MATRIX["portal.batch"] == {Role.PARTNER}


def test_roles_required_on_a_view_repeats_its_cell(runtime: Runtime) -> None:
    app = app_with_cbs(runtime)
    decorated = 0
    for endpoint, view in app.view_functions.items():
        roles = getattr(view, "required_roles", None)
        if roles is not None:
            decorated += 1
            assert MATRIX[endpoint] == roles, endpoint
    assert decorated, "no view carries roles_required: the test would prove nothing"


def test_an_endpoint_missing_from_the_matrix_is_refused_to_everybody(world: World) -> None:
    app = app_with_cbs(world.runtime)
    app.add_url_rule("/nieuw", "nieuw", lambda: "geheim")
    assert app.test_client().get("/nieuw").status_code == 403
    admin = app.test_client()
    log_in(admin, staff(world, "beheer@gemeente.example", Role.ADMIN))
    answer = admin.get("/nieuw")
    assert answer.status_code == 403 and "geheim" not in answer.get_data(as_text=True)


@pytest.mark.parametrize(
    ("main", "extra", "opens", "refused"),
    [
        (Role.COUNSELLOR, Role.ANALYST, ["/queue", "/dashboard", "/team"], ["/ddas"]),
        (Role.ADMIN, Role.COUNSELLOR, ["/queue", "/dashboard", "/ddas"], ["/partner/batches"]),
        (Role.ANALYST, None, ["/dashboard"], ["/queue", "/team", "/ddas"]),
    ],
)
def test_one_role_of_several_suffices(
    world: World, main: Role, extra: Role | None, opens: list[str], refused: list[str]
) -> None:
    client = app_with_cbs(world.runtime).test_client()
    log_in(client, staff(world, "twee@gemeente.example", main, *([extra] if extra else [])))
    home = client.get("/").get_data(as_text=True)
    for path in opens:
        assert client.get(path).status_code == 200, path
        assert f'href="{path}"' in home, f"{path} not in the menu"
    for path in refused:
        assert client.get(path).status_code == 403, path
        assert f'href="{path}"' not in home, f"{path} in the menu"
