"""Analysts see no personal data anywhere: a crawl of everything an analyst can reach.

An analyst logs in and follows every link and every choice of every GET form from the home
page (the dashboard for each municipality, region and period, its CSV and Excel downloads),
and asks every GET endpoint of the app directly too. No answer may hold a BSN, name,
street, postcode, phone number, e-mail address, birth date or amount of a seeded person.
"""

from __future__ import annotations

import io
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from openpyxl import load_workbook

from signals.enums import Role
from tests.webapp.conftest import PEOPLE_A, PEOPLE_B, Two, log_in, personal_strings
from tests.webapp.test_access_matrix import app_with_cbs, methods_of, url_of

MAX_REQUESTS = 400


class Links(HTMLParser):
    """The links of a page and the URLs its GET forms can ask for (each option of each
    select, the other fields as they are)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.forms: list[dict[str, Any]] = []
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "form":
            method = a.get("method", "get").lower()
            self.forms.append({"get": method == "get", "action": a.get("action", ""),
                               "fields": {}, "selects": {}})  # fmt: skip
        elif self.forms and tag == "input" and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")
        elif self.forms and tag == "select" and a.get("name"):
            self._select = a["name"]
            self.forms[-1]["selects"][self._select] = []
        elif self.forms and tag == "option" and self._select:
            self.forms[-1]["selects"][self._select].append(a.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None

    def targets(self, base: str) -> list[str]:
        out = [urljoin(base, link) for link in self.links]
        for form in self.forms:
            if not form["get"]:
                continue
            action = urljoin(base, form["action"] or urlsplit(base).path)
            defaults = {**form["fields"], **{k: v[0] for k, v in form["selects"].items() if v}}
            for name, options in form["selects"].items():
                for option in options:
                    out.append(f"{action}?{urlencode({**defaults, name: option})}")
        return out


def readable(response: Any) -> str:
    """The answer as text: an Excel workbook as the values of all its cells."""
    if response.mimetype.endswith("spreadsheetml.sheet"):
        book = load_workbook(io.BytesIO(response.get_data()), read_only=True)
        cells = [str(c) for sheet in book for row in sheet.iter_rows(values_only=True)
                 for c in row if c is not None]  # fmt: skip
        book.close()
        return "\n".join(cells)
    return response.get_data(as_text=True)


def crawl(client: Any, starts: list[str]) -> dict[str, tuple[int, str]]:
    """Every same-site URL reachable from ``starts`` by GET: its status and text."""
    seen: dict[str, tuple[int, str]] = {}
    todo = list(starts)
    while todo and len(seen) < MAX_REQUESTS:
        url = todo.pop(0)
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or parts.path.startswith("/static/"):
            continue
        url = parts.path + (f"?{parts.query}" if parts.query else "")
        if url in seen:
            continue
        response = client.get(url)
        text = readable(response)
        response.close()
        seen[url] = (response.status_code, text)
        if response.mimetype == "text/html":
            parser = Links()
            parser.feed(text)
            todo += parser.targets("http://localhost" + url)
        if response.status_code in (301, 302, 303) and "Location" in response.headers:
            todo.append(response.headers["Location"])
    assert len(seen) < MAX_REQUESTS, "the crawl did not finish"
    return seen


def test_an_analyst_sees_no_personal_data_anywhere(two: Two) -> None:
    app = app_with_cbs(two.world.runtime)
    secrets = personal_strings(PEOPLE_A + PEOPLE_B)
    # The strings are there to be found: the counsellor's case page shows them.
    counsellor = app.test_client()
    log_in(counsellor, two.a.users[Role.COUNSELLOR])
    case_page = counsellor.get(f"/cases/{two.a.case_ids[0]}").get_data(as_text=True)
    assert any(s in case_page for s in personal_strings(PEOPLE_A[:1]))

    analyst = app.test_client()
    log_in(analyst, two.a.users[Role.ANALYST])
    direct = [url_of(rule, two.a) for rule in app.url_map.iter_rules()
              if "GET" in methods_of(rule) and rule.endpoint != "static"]  # fmt: skip
    pages = crawl(analyst, ["/", *direct])
    reached = {url.split("?")[0] for url, (status, _) in pages.items() if status == 200}
    assert {"/", "/dashboard", "/dashboard.csv", "/dashboard.xlsx"} <= reached
    assert sum(url.startswith("/dashboard") for url in pages) > 10  # every choice of the form
    leaks = [f"{url}: {secret}" for url, (_, text) in pages.items()
             for secret in secrets if secret in text]  # fmt: skip
    assert not leaks, "\n".join(leaks)
    for url in direct:  # pages with personal data are refused, not emptied
        if url.startswith(("/cases/", "/queue", "/ddas", "/partner/", "/admin")):
            assert pages[url][0] == 403, url
