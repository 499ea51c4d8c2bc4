"""Dutch first, English second (webapp/i18n.py): the catalogue is complete and compiled, the
pages are Dutch until the user follows the language link, and the formats are babel's."""

from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from flask import Flask

from signals.enums import Role
from tests.factories import World, login_as
from webapp.i18n import COOKIE, format_day, format_euro, format_moment, is_local_path

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "webapp" / "translations"
PO = TRANSLATIONS / "en" / "LC_MESSAGES" / "messages.po"
MO = TRANSLATIONS / "en" / "LC_MESSAGES" / "messages.mo"
#: The keywords of the extract command in webapp/i18n.py.
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None, "N_": None, "NP_": (1, 2),
            "Text": None, "Plural": (1, 2)}  # fmt: skip


def _po() -> Any:
    with PO.open("rb") as f:
        return read_po(f, locale="en")


def _texts(catalog: Any) -> dict[Any, Any]:
    """msgid -> msgstr of the translated entries (the header left out; a plural as tuples)."""

    def plain(value: Any) -> Any:
        return tuple(value) if isinstance(value, list | tuple) else value

    return {plain(m.id): plain(m.string) for m in catalog
            if m.id and m.string and "fuzzy" not in m.flags}  # fmt: skip


# -- the catalogue --------------------------------------------------------------------------
def test_every_text_has_an_english_translation() -> None:
    untranslated = []
    for message in _po():
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if "fuzzy" in message.flags or not all(s and s.strip() for s in strings):
            untranslated.append(message.id)
    assert not untranslated, untranslated
    assert len(_texts(_po())) > 100  # the catalogue is really there


def test_the_catalogue_holds_every_marked_text() -> None:
    """What the extract command would find now is in the .po: nobody marked a text and
    forgot to update the catalogue."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    found = {
        message_id if isinstance(message_id, str) else message_id[0]
        for _, _, message_id, *_ in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=KEYWORDS
        )
    }
    known = {m.id if isinstance(m.id, str) else m.id[0] for m in _po() if m.id}
    assert found, "nothing extracted: the test would prove nothing"
    assert not found - known, "run the extract and update commands of webapp/i18n.py"


def test_the_compiled_catalogue_is_up_to_date() -> None:
    """The committed .mo holds exactly what compiling the .po gives now."""
    fresh = io.BytesIO()
    write_mo(fresh, _po())
    fresh.seek(0)
    with MO.open("rb") as f:
        committed = read_mo(f)
    assert _texts(committed) == _texts(read_mo(fresh)), "run pybabel compile -d webapp/translations"


def test_translations_keep_their_placeholders_and_markup() -> None:
    wrong = []
    for message in _po():
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(re.findall(r"%\(\w+\)\w|<[^>]+>", ids[-1]))
        for text in strings:
            if set(re.findall(r"%\(\w+\)\w|<[^>]+>", text)) != wanted:
                wrong.append((ids[0], text))
    assert not wrong, wrong


# -- the language of the pages ----------------------------------------------------------------
def _switch_link(page: str) -> tuple[str, str, str]:
    """The header's language link: (href, lang, text)."""
    match = re.search(r'<a class="language" href="([^"]+)" lang="(\w+)"[^>]*>([^<]+)</a>', page)
    assert match, "no language link in the page"
    href, lang, text = match.groups()
    return href.replace("&amp;", "&"), lang, text


def test_pages_are_dutch_until_the_user_chooses_english(client: Any, world: World) -> None:
    # The browser prefers English: Dutch all the same.
    login_page = client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9"})
    html = login_page.get_data(as_text=True)
    assert '<html lang="nl">' in html and "<h1>Inloggen</h1>" in html
    assert "Wachtwoord" in html and "Password" not in html
    href, lang, text = _switch_link(html)
    assert (lang, text) == ("en", "English")  # in the header, also for anonymous users
    assert parse_qs(urlsplit(href).query)["next"] == ["/login"]

    switched = client.get(href)
    assert switched.status_code == 302 and switched.headers["Location"] == "/login"
    cookie = switched.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=en;") and "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie and "Max-Age=31536000" in cookie
    assert "Secure" not in cookie  # plain HTTP, as the session cookie

    english = client.get("/login").get_data(as_text=True)
    assert '<html lang="en">' in english and "<h1>Log in</h1>" in english
    assert "Password" in english and "Wachtwoord" not in english
    href, lang, text = _switch_link(english)
    assert (lang, text) == ("nl", "Nederlands")
    client.get(href)
    assert "<h1>Inloggen</h1>" in client.get("/login").get_data(as_text=True)

    # Logged in: the page, its menu and its title switch, and come back on the same page.
    login_as(client, world, Role.ADMIN, "beheer@example.nl")
    dutch = client.get("/admin").get_data(as_text=True)
    assert '<html lang="nl">' in dutch and "<h1>Functioneel beheer</h1>" in dutch
    href, _, _ = _switch_link(dutch)
    assert client.get(href).headers["Location"] == "/admin"
    admin = client.get("/admin").get_data(as_text=True)
    assert '<html lang="en">' in admin and "<h1>Administration</h1>" in admin
    assert "<title>Administration · Vroegsignaal</title>" in admin
    assert "Log out" in admin and "Uitloggen" not in admin
    assert "Audit trail" in client.get("/admin/audit").get_data(as_text=True)
    href, _, _ = _switch_link(admin)
    assert client.get(href).headers["Location"] == "/admin"
    again = client.get("/admin").get_data(as_text=True)
    assert '<html lang="nl">' in again and "<h1>Functioneel beheer</h1>" in again


def test_form_labels_and_errors_follow_the_language(client: Any, world: World) -> None:
    client.get("/taal/en?next=/login")
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
    assert token
    refused = client.post(
        "/login", data={"email": "nobody@example.nl", "password": "x", "csrf_token": token[1]}
    )
    text = refused.get_data(as_text=True)
    assert refused.status_code == 401 and "Log-in failed" in text and "Inloggen is niet" not in text
    assert '<label for="email">E-mail address</label>' in text


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example",
        "http:/evil.example",
        "javascript:alert(1)",
        "/queue\r\nSet-Cookie: x=y",
        "evil.example",
        "",
    ],
)
def test_the_switch_goes_back_to_a_local_path_only(client: Any, target: str) -> None:
    answer = client.get("/taal/en", query_string={"next": target})
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/"  # home, never the other site
    assert answer.headers["Set-Cookie"].startswith(f"{COOKIE}=en;")


def test_the_switch_keeps_the_query_of_the_page(client: Any) -> None:
    answer = client.get("/taal/nl", query_string={"next": "/queue?prioriteit=hoog&pagina=2"})
    assert answer.headers["Location"] == "/queue?prioriteit=hoog&pagina=2"
    assert is_local_path("/cases/12") and not is_local_path("//x.example")


def test_only_dutch_and_english_and_a_strange_cookie_means_dutch(client: Any) -> None:
    assert client.get("/taal/de?next=/login").status_code == 404
    client.set_cookie(COOKIE, "de")
    assert '<html lang="nl">' in client.get("/login").get_data(as_text=True)


def test_the_cookie_is_secure_where_the_session_cookie_is(runtime: Any) -> None:
    from webapp import create_app

    app: Flask = create_app(runtime=runtime, TESTING=True, SESSION_COOKIE_SECURE=True)
    answer = app.test_client().get("/taal/en?next=/login")
    assert "Secure" in answer.headers["Set-Cookie"]
    over_tls = create_app(runtime=runtime, TESTING=True).test_client()
    answer = over_tls.get("/taal/en?next=/login", base_url="https://localhost")
    assert "Secure" in answer.headers["Set-Cookie"]


# -- the formats --------------------------------------------------------------------------------
DAY = dt.date(2026, 12, 7)
MOMENT = dt.datetime(2026, 12, 7, 13, 5, 9, tzinfo=dt.UTC)  # 14:05:09 in Amsterdam


@pytest.mark.parametrize(
    ("language", "short", "long", "moment", "seconds", "amount"),
    [
        ("nl", "07-12-2026", "7 december 2026", "07-12-2026 14:05", "07-12-2026 14:05:09",
         "€\xa01.234,56"),
        ("en", "07/12/2026", "7 December 2026", "07/12/2026 14:05", "07/12/2026 14:05:09",
         "€1,234.56"),
    ],
)  # fmt: skip
def test_dates_times_and_amounts_in_both_languages(
    app: Flask, language: str, short: str, long: str, moment: str, seconds: str, amount: str
) -> None:
    with app.test_request_context("/", headers={"Cookie": f"{COOKIE}={language}"}):
        assert format_day(DAY) == short
        assert format_day(DAY, "long") == long
        assert format_day(MOMENT) == short  # a timestamp counts as its Dutch day
        assert format_moment(MOMENT) == moment
        assert format_moment(MOMENT, seconds=True) == seconds
        assert format_euro(Decimal("1234.56")).replace(" ", "\xa0") == amount
        assert format_euro(1234.56).replace(" ", "\xa0") == amount
        assert format_day(None) == format_moment(None) == format_euro(None) == "—"
        rendered = app.jinja_env.from_string(
            "{{ d|datum('long') }} | {{ m|datumtijd }} | {{ a|euro }}"
        ).render(d=DAY, m=MOMENT, a=Decimal("1234.56"))
        assert rendered.replace(" ", "\xa0") == f"{long} | {moment} | {amount}".replace(" ", "\xa0")


def test_a_timestamp_just_after_midnight_in_amsterdam_is_that_day(app: Flask) -> None:
    late = dt.datetime(2026, 6, 30, 22, 30, tzinfo=dt.UTC)  # 00:30 on 1 July, summer time
    with app.test_request_context("/"):
        assert format_day(late) == "01-07-2026"
        assert format_moment(late) == "01-07-2026 00:30"
