"""Security headers on every page for every role, and no inline script or style anywhere.

The Content-Security-Policy allows scripts and styles only from files of this site, so a
page with an inline ``<script>``, ``<style>``, ``style="..."`` or ``onclick="..."`` would
break in the browser: every page every role can reach is parsed and checked, also the
server-drawn SVG charts of the dashboard and the QR code of the second factor.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from signals.enums import Role
from signals.runtime import Runtime
from tests import factories
from tests.webapp.conftest import ROLES, Two, log_in
from tests.webapp.test_access_matrix import ANONYMOUS, app_with_cbs, methods_of, url_of
from webapp.security import CONTENT_SECURITY_POLICY

TEMPLATES = Path(__file__).resolve().parents[2] / "webapp" / "templates"
EXPECTED_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class InlineCode(HTMLParser):
    """Collects what a strict CSP would block: inline script, inline style, event handlers,
    ``javascript:`` URLs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name.lower(): value or "" for name, value in attrs}
        if tag == "style":
            self.found.append("<style> element")
        if tag == "script":
            self._in_script = True
            if "src" not in names:
                self.found.append("<script> without src")
        for name, value in names.items():
            if name == "style":
                self.found.append(f'<{tag} style="{value}">')
            elif name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
            elif name in ("href", "src", "action", "formaction", "xlink:href") and (
                value.strip().lower().startswith("javascript:")
            ):
                self.found.append(f"<{tag} {name}=javascript:...>")

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.found.append("inline script code")


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    parser.close()
    return parser.found


def header_problems(response: Any, static: bool = False) -> list[str]:
    headers = response.headers
    problems = []
    expected = {
        "Content-Security-Policy": EXPECTED_CSP,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
    }
    for name, value in expected.items():
        if headers.get(name) != value:
            problems.append(f"{name}: {headers.get(name)!r}")
    if headers.get("Referrer-Policy") not in ("same-origin", "no-referrer"):
        problems.append(f"Referrer-Policy: {headers.get('Referrer-Policy')!r}")
    if not static and headers.get("Cache-Control") != "no-store":
        problems.append(f"Cache-Control: {headers.get('Cache-Control')!r}")
    if "Strict-Transport-Security" in headers:
        problems.append("HSTS over plain HTTP")
    return problems


def check(response: Any, what: str, wrong: list[str], static: bool = False) -> None:
    problems = header_problems(response, static)
    if response.mimetype == "text/html":
        problems += inline_code(response.get_data(as_text=True))
    response.close()
    wrong += [f"{what} ({response.status_code}): {p}" for p in problems]


def test_the_policy_is_the_strict_one() -> None:
    assert CONTENT_SECURITY_POLICY == EXPECTED_CSP


def test_every_page_of_every_role_has_the_headers_and_no_inline_code(two: Two) -> None:
    app = app_with_cbs(two.world.runtime)
    wrong: list[str] = []
    seen_html = 0
    for who in (*ROLES, ANONYMOUS):
        client = app.test_client()
        if who != ANONYMOUS:
            assert isinstance(who, Role)
            log_in(client, two.a.users[who])
        urls = {url_of(rule, two.a) for rule in app.url_map.iter_rules()
                if "GET" in methods_of(rule) and rule.endpoint != "auth.logout"}  # fmt: skip
        extra = ["/bestaat-niet", "/logout", "/dashboard?periode=maand", "/dashboard?gemeente=0344",
                 "/queue?termijn=week&toegewezen=niemand", f"/cases/{two.a.case_ids[-1]}",
                 f"/cases/{two.b.case_ids[0]}", "/admin/audit"]  # fmt: skip
        for url in sorted(urls) + extra:
            response = client.get(url)
            seen_html += response.mimetype == "text/html" and response.status_code == 200
            check(
                response,
                f"{who} GET {url}",
                wrong,
                static=url.startswith("/static/") or url == "/favicon.ico",
            )
    assert not wrong, "\n".join(wrong)
    assert seen_html > 20  # pages with content were checked, not only redirects


def test_the_second_factor_pages_have_no_inline_code(two: Two) -> None:
    """The enrolment page (QR code drawn as SVG) and the recovery codes page."""
    app = app_with_cbs(two.world.runtime)
    client = app.test_client()
    account = two.a.users[Role.COUNSELLOR]
    page = client.get("/login").get_data(as_text=True)
    answer = client.post("/login", data={"email": account.email, "password": account.password,
                                         "csrf_token": factories.csrf_token(page)})  # fmt: skip
    assert answer.headers["Location"].endswith("/login/totp")
    enrolment = client.get("/login/totp")
    assert "<svg" in enrolment.get_data(as_text=True)
    wrong: list[str] = []
    check(enrolment, "GET /login/totp", wrong)
    codes = factories.login(client, account.email, account.password, account.totp_secret)
    assert codes.status_code == 200 and "herstelcodes" in codes.get_data(as_text=True)
    check(codes, "recovery codes", wrong)
    assert not wrong, "\n".join(wrong)


def test_hsts_only_over_tls_and_no_proxy_header_is_trusted(client: Any) -> None:
    secure = client.get("/login", base_url="https://vroegsignaal.example")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    plain = client.get("/login")
    assert "Strict-Transport-Security" not in plain.headers
    # There is no proxy in front that the app trusts: a forwarded scheme changes nothing.
    spoofed = client.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in spoofed.headers


def test_behind_a_configured_proxy_its_scheme_and_client_address_count(runtime: Runtime) -> None:
    """With ``proxy_count = 1`` (one nginx in front) the forwarded scheme makes HSTS and the
    Secure cookie, and the rate limits count per client, not per proxy."""
    from webapp import create_app

    settings = runtime.settings.model_copy(
        update={"proxy_count": 1, "rate_limit_login": "2 per minute"}
    )
    proxied = Runtime(settings, runtime.engine)
    client = create_app(runtime=proxied, TESTING=True).test_client()
    forwarded = client.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert forwarded.headers["Strict-Transport-Security"].startswith("max-age=")
    session = [c for c in forwarded.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert session and "; Secure" in session[0]
    # (CSRF off here: the limit is what is tested, and it counts before any form is read.)
    app = create_app(runtime=proxied, TESTING=True, WTF_CSRF_ENABLED=False)
    assert app.config["RATELIMIT_STORAGE_URI"] == "memory://"
    client = app.test_client()

    def attempt(address: str) -> int:
        return client.post("/login", data={}, headers={"X-Forwarded-For": address}).status_code

    assert [attempt("192.0.2.1") for _ in range(3)][-1] == 429  # one client over its limit
    assert attempt("192.0.2.2") != 429  # another client behind the same proxy is not


def test_static_files_have_the_headers_and_may_be_cached(client: Any) -> None:
    response = client.get("/static/style.css")
    assert response.status_code == 200 and response.mimetype == "text/css"
    assert not header_problems(response, static=True)
    assert response.headers.get("Cache-Control") != "no-store"
    response.close()


def test_api_answers_have_the_headers_too(client: Any) -> None:
    for response in (client.get("/api/v1/batches/x"), client.get("/api/v1/openapi.json")):
        assert not header_problems(response), response.status_code


def test_no_template_holds_inline_script_or_style() -> None:
    """Also the templates no test renders (error pages, the outage page): the source itself."""
    found = {}
    for template in sorted(TEMPLATES.rglob("*.html")):
        problems = inline_code(template.read_text())
        if problems:
            found[template.name] = problems
    assert not found
    assert any(TEMPLATES.rglob("*.html"))
