"""Journey 2 with the keyboard alone (journey 6): Tab, Enter, Space and typing, no mouse;
every element that takes the focus shows it (a visible outline)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import Site, check_accessibility
from tests.factories import totp_code

pytestmark = pytest.mark.browser

FOCUSED = """() => {
    const e = document.activeElement;
    if (!e || e === document.body) return null;
    const style = getComputedStyle(e);
    const label = (e.labels && e.labels.length) ? e.labels[0].innerText : '';
    return {
        tag: e.tagName.toLowerCase(), type: e.type || '', name: e.name || '',
        text: (e.innerText || e.value || '').trim().slice(0, 80), label: label.trim(),
        href: e.getAttribute('href') || '',
        outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2,
    };
}"""


def tab_to(page: Any, wanted: Any, limit: int = 250) -> dict[str, Any]:
    """Press Tab until the focused element satisfies ``wanted``; its focus must be visible."""
    seen = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused is None:
            continue
        assert focused["outline"], f"no visible focus on {focused}"
        if wanted(focused):
            return dict(focused)
        seen.append(focused["text"] or focused["label"] or focused["name"])
    raise AssertionError(f"not reached with Tab; passed: {seen[:40]}")


def submit(page: Any, key: str = "Enter") -> None:
    """Press ``key`` on the focused link or button and wait for the page it opens."""
    with page.expect_navigation():
        page.keyboard.press(key)


def _button(text: str) -> Any:
    return lambda f: f["tag"] == "button" and f["text"].startswith(text)


def _field(label: str) -> Any:
    return lambda f: f["label"].startswith(label)


def test_counsellor_journey_with_the_keyboard_only(page: Any, site: Site) -> None:
    user = site.logins["counsellor"]
    page.goto("/login")
    tab_to(page, _field("E-mailadres"))
    page.keyboard.type(user["email"])
    tab_to(page, _field("Wachtwoord"))
    page.keyboard.type(user["password"])
    submit(page)
    if "/login/totp" in page.url:
        tab_to(page, _field("Code"))
        page.keyboard.type(totp_code(user["totp_secret"]))
        submit(page)
    if "herstelcodes" in page.url or page.get_by_text("herstelcodes").count():
        tab_to(page, lambda f: f["tag"] == "a" and "bewaard" in f["text"])
        submit(page)
    tab_to(page, lambda f: f["tag"] == "a" and f["text"] == "Werkvoorraad")
    submit(page)
    assert page.url.endswith("/queue")

    case = tab_to(page, lambda f: f["tag"] == "a" and re.fullmatch(r"/cases/\d+", f["href"]))
    submit(page)
    assert page.url.endswith(case["href"])
    if page.get_by_role("button", name="Oppakken").count():
        tab_to(page, _button("Oppakken"))
        submit(page)

    for kind, reached in (("Telefoon", False), ("Huisbezoek", True)):
        tab_to(page, _field("Soort contact"))
        page.keyboard.type(kind)
        assert page.get_by_label("Soort contact").input_value() == kind
        box = tab_to(page, _field("Bereikt"))
        assert box["type"] == "checkbox"
        if reached:
            page.keyboard.press("Space")
        assert page.get_by_label("Bereikt").is_checked() is reached
        tab_to(page, _button("Vastleggen"))
        submit(page)
        assert kind in page.get_by_role("region", name="Tijdlijn").inner_text()

    tab_to(page, _field("Eindresultaat"))
    page.keyboard.type("(Budget)")
    assert page.get_by_label("Eindresultaat").input_value().startswith("(Budget)advies")
    tab_to(page, _button("Afsluiten"))
    submit(page)
    assert "(Budget)advies en/of quick fix" in page.inner_text("main")
    check_accessibility(page)
