"""WCAG 2.1 AA on the server-rendered pages, as far as the HTML and the style sheet show it:
one main heading, landmarks, a label for every field, errors tied to their field, tables
with a name and header scopes, unique ids, and text colours of at least 4.5:1.

The browser tests (tests/browser) run axe-core on the rendered pages too; these checks run
with the unit tests, on every page of every role, in Dutch and in English.
"""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from signals.enums import Role
from tests.webapp.conftest import Two, csrf_of, log_in
from tests.webapp.test_access_matrix import app_with_cbs
from webapp.i18n import COOKIE

STYLE = Path(__file__).resolve().parents[2] / "webapp" / "static" / "style.css"
PAGES = {
    Role.COUNSELLOR: ["/", "/queue", "/queue/beoordelen", "{case}", "/team"],
    Role.ADMIN: ["/admin", "/admin/audit", "/ddas", "/team"],
    Role.ANALYST: ["/dashboard"],
}
FIELDS = ("input", "select", "textarea")
NOT_FIELDS = {"hidden", "submit", "button", "reset", "image"}


class Page(HTMLParser):
    """What the checks need of a page: its elements with their attributes, in order, and
    the text of its labels."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.labels: dict[str, str] = {}  # for -> text
        self._label: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.elements.append((tag, a))
        if tag == "label":
            self._label = a.get("for", "")
            self.labels.setdefault(self._label, "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label = None

    def handle_data(self, data: str) -> None:
        if self._label is not None:
            self.labels[self._label] += data

    def all(self, tag: str) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == tag]


def problems(html: str) -> list[str]:
    """What is wrong with the page, in words."""
    page = Page()
    page.feed(html)
    out = []
    ids = [a["id"] for _, a in page.elements if "id" in a]
    out += [f"id {i!r} twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    if len(page.all("h1")) != 1:
        out.append(f"{len(page.all('h1'))} h1 elements")
    if page.all("html")[0].get("lang") not in ("nl", "en"):
        out.append("html without lang")
    for landmark in ("header", "main"):
        if len(page.all(landmark)) != 1:
            out.append(f"not one {landmark}")
    for tag, a in page.elements:
        if tag in FIELDS and a.get("type", "") not in NOT_FIELDS:
            named = a.get("aria-label") or a.get("aria-labelledby")
            if not named and not page.labels.get(a.get("id", "-"), "").strip():
                out.append(f"{tag} {a.get('name')} has no label")
            for described in a.get("aria-describedby", "").split():
                if described not in ids:
                    out.append(f"{a.get('name')} described by missing {described}")
        if tag == "table":
            labelled = a.get("aria-labelledby")
            if not (a.get("aria-label") or (labelled and labelled in ids)):
                out.append("table without aria-label(ledby)")  # or a caption: see below
        if tag == "th" and a.get("scope") not in ("col", "row"):
            out.append("th without scope")
        if "style" in a or (tag == "script" and "src" not in a):
            out.append(f"inline style or script on {tag} (CSP)")
    captions = html.count("<caption")
    unnamed = sum(p.startswith("table without") for p in out)
    if unnamed <= captions:  # every table without a name has a caption
        out = [p for p in out if not p.startswith("table without")]
    return out


def test_the_checks_find_what_they_look_for() -> None:
    bad = """<html><header></header><main><h1>a</h1><h1>b</h1>
      <label>Naam <input name="naam" id="x"></label><select name="s" id="x"></select>
      <input name="e" aria-describedby="nergens" aria-label="E">
      <table><tr><th>kop</th></tr></table><p style="color: red">x</p></main></html>"""
    found = problems(bad)
    assert "2 h1 elements" in found and "id 'x' twice" in found and "html without lang" in found
    assert "input naam has no label" in found and "select s has no label" in found
    assert "e described by missing nergens" in found and "th without scope" in found
    assert "table without aria-label(ledby)" in found
    assert "inline style or script on p (CSP)" in found
    good = """<html lang="nl"><header></header><main><h1>a</h1>
      <label for="n">Naam</label><input name="naam" id="n">
      <table><caption>T</caption><tr><th scope="col">kop</th></tr></table></main></html>"""
    assert problems(good) == []


def _control(html: str, name: str) -> str:
    """The input element named ``name``."""
    match = re.search(rf'<input[^>]*name="{name}"[^>]*>', html)
    assert match, f"no input {name}"
    return match[0]


def _client(two: Two, role: Role | None, language: str) -> Any:
    client = app_with_cbs(two.world.runtime).test_client()
    if role is not None:
        log_in(client, two.a.users[role])
    client.set_cookie(COOKIE, language)
    return client


def test_every_page_of_every_role_in_both_languages(two: Two) -> None:
    wrong = []
    for language in ("nl", "en"):
        pages = {"/login": _client(two, None, language).get("/login")}
        for role, paths in PAGES.items():
            client = _client(two, role, language)
            for path in paths:
                url = path.replace("{case}", f"/cases/{two.a.case_ids[0]}")
                pages[f"{role.value} {url}"] = client.get(url)
        for name, answer in pages.items():
            assert answer.status_code == 200, name
            html = answer.get_data(as_text=True)
            assert f'<html lang="{language}">' in html, name
            wrong += [f"{language} {name}: {p}" for p in problems(html)]
    assert not wrong, "\n".join(wrong)


def test_a_refused_field_names_its_error(two: Two) -> None:
    """The error stands next to the field, which points to it and is marked invalid."""
    client = _client(two, Role.ADMIN, "nl")
    token = csrf_of(client.get("/ddas").get_data(as_text=True))
    answer = client.post("/ddas", data={"csrf_token": token, "van": "", "tot": "",
                                        "gemeente": "alle"})  # fmt: skip
    html = answer.get_data(as_text=True)
    assert answer.status_code == 400 and not problems(html)
    field = _control(html, "van")
    assert 'aria-invalid="true"' in field and 'aria-describedby="van-error"' in field
    assert '<span class="field-error" id="van-error">Vul een datum in.</span>' in html

    counsellor = _client(two, Role.COUNSELLOR, "en")
    case = f"/cases/{two.a.case_ids[0]}"
    page = counsellor.get(case).get_data(as_text=True)
    stamp = re.search(r'<time datetime="([^"]+)">', page)  # the timeline, machine-readable
    assert stamp and dt.datetime.fromisoformat(stamp[1]).tzinfo is not None
    refused = counsellor.post(f"{case}/attempts", data={"csrf_token": csrf_of(page),
                              "kind": "Huisbezoek", "day": "", "time": "10:00"})  # fmt: skip
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422 and not problems(html)
    field = _control(html, "day")
    assert 'aria-invalid="true"' in field and 'aria-describedby="day-error"' in field
    assert "Attempt not recorded: Date:" in html  # the summary at the top, in English
    time_field = _control(html, "time")
    assert 'value="10:00"' in time_field and "aria-invalid" not in time_field  # as typed


def test_the_login_error_is_tied_to_the_fields(client: Any) -> None:
    page = client.get("/login").get_data(as_text=True)
    answer = client.post("/login", data={"csrf_token": csrf_of(page), "email": "a@b.example",
                                         "password": "wrong"})  # fmt: skip
    html = answer.get_data(as_text=True)
    assert answer.status_code == 401 and not problems(html)
    for name in ("email", "password"):
        field = _control(html, name)
        assert 'aria-describedby="login-error"' in field and 'aria-invalid="true"' in field
    assert 'id="login-error"' in html


# -- the style sheet -------------------------------------------------------------------------
def _hex(value: str, variables: dict[str, str]) -> str | None:
    value = value.strip()
    match = re.fullmatch(r"var\((--[\w-]+)\)", value)
    if match:
        value = variables[match[1]]
    return value if re.fullmatch(r"#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}", value) else None


def contrast(one: str, other: str) -> float:
    """The WCAG 2.1 contrast ratio of two colours (#rgb or #rrggbb)."""

    def luminance(colour: str) -> float:
        h = colour.lstrip("#")
        h = "".join(c * 2 for c in h) if len(h) == 3 else h
        channels = [int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)]
        r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast() -> None:
    assert round(contrast("#767676", "#fff"), 2) == 4.54  # the known grey of WCAG examples
    assert round(contrast("#000", "#fff"), 1) == 21.0


def test_every_text_colour_has_a_contrast_of_at_least_4_5() -> None:
    """Each rule's text colour against its own background, or else against the background of
    the rule it sits in (``.top a`` in ``.top``), or else against the page and the white of
    cards and tables; and the ink on every background a rule sets."""
    css = re.sub(r"/\*.*?\*/", "", STYLE.read_text(encoding="utf-8"), flags=re.S)
    rules = [(sel.strip(), body) for sel, body in re.findall(r"([^{}]+)\{([^}]*)\}", css)]
    variables = dict(re.findall(r"(--[\w-]+):\s*([^;]+);", rules[0][1]))
    page_backgrounds = [variables["--bg"], "#fff"]

    def prop(body: str, name: str) -> str | None:
        match = re.search(rf"(?:^|;)\s*{name}\s*:\s*([^;]+)", body)
        return _hex(match[1], variables) if match else None

    backgrounds = {}
    for selectors, body in rules:
        background = prop(body, "background") or prop(body, "background-color")
        for selector in selectors.split(","):
            if background:
                backgrounds[selector.strip()] = background
    pairs: list[tuple[str, str, str]] = []  # selector, text colour, background
    for selectors, body in rules:
        colour = prop(body, "color")
        background = prop(body, "background") or prop(body, "background-color")
        for selector in (s.strip() for s in selectors.split(",")):
            if colour and background:
                pairs.append((selector, colour, background))
            elif colour:
                outer = [backgrounds[p] for p in _ancestors(selector) if p in backgrounds]
                pairs += [(selector, colour, b) for b in (outer[:1] or page_backgrounds)]
            elif background and selector != ":root":
                pairs.append((selector, variables["--ink"], background))  # inherited ink
    checked = len(pairs)
    low = [f"{sel}: {fg} on {bg} {contrast(fg, bg):.2f}" for sel, fg, bg in pairs
           if contrast(fg, bg) < 4.5]  # fmt: skip
    assert checked > 20, "the style sheet was not read"
    assert not low, low


def _ancestors(selector: str) -> list[str]:
    """``.top a`` -> [``.top``]: the selectors of the elements it sits in, nearest first."""
    parts = selector.split()
    return [" ".join(parts[:n]) for n in range(len(parts) - 1, 0, -1)]


def test_the_focus_ring_is_visible_everywhere() -> None:
    css = STYLE.read_text(encoding="utf-8")
    variables = dict(re.findall(r"(--[\w-]+):\s*([^;]+);", css))
    assert re.search(r":focus-visible\s*\{[^}]*outline:\s*3px solid var\(--focus\)", css)
    assert contrast(variables["--focus"], variables["--bg"]) >= 3
    assert contrast(variables["--focus"], "#fff") >= 3
    assert contrast(variables["--focus-on-brand"], variables["--brand"]) >= 3  # in the header
    assert re.search(r"\.skip:focus\s*\{[^}]*left:\s*1rem", css), "the skip link shows on focus"
