"""A score's reasons are stored as Dutch text and read back into their templates, so that a
page can show them in its own language."""

from __future__ import annotations

import copy
import json

import pytest

from scoring import reasons as r
from signals.texts import Number, Plural, Text


def test_a_text_is_its_dutch_string_and_keeps_its_template() -> None:
    text = Text("zaak %(id)s is al afgesloten", id=12345)
    assert text == "zaak 12345 is al afgesloten" and isinstance(text, str)
    assert (text.msgid, text.params) == ("zaak %(id)s is al afgesloten", {"id": 12345})
    assert Text("totaal € %(n)s", n=Number(2400)) == "totaal € 2.400"  # an amount, Dutch
    assert Plural("%(num)s maand", "%(num)s maanden", 1) == "1 maand"
    assert Plural("%(num)s maand", "%(num)s maanden", 3) == "3 maanden"
    assert json.dumps([text]) == '["zaak 12345 is al afgesloten"]'  # stored as plain text
    kept = copy.deepcopy(text)  # as pickle does, through __reduce__
    assert kept == text and kept.msgid == text.msgid and kept.params == text.params


def _every_reason() -> list[Text]:
    out = [r.text(t, days=30, amount=12_345) for t in r.SINGLE]
    out += [r.plural(forms, n, amount=2400) for forms in r.PLURALS for n in (1, 2, 1500)]
    return out


@pytest.mark.parametrize("reason", _every_reason(), ids=str)
def test_every_reason_reads_back_into_its_template(reason: Text) -> None:
    back = r.parse(str(reason))
    assert back is not None
    assert (back.msgid, back.plural, back == reason) == (reason.msgid, reason.plural, True)
    used = {
        k: v for k, v in reason.params.items() if f"%({k})s" in (reason.plural or "") + reason.msgid
    }
    assert back.params == used


def test_older_texts_and_unknown_ones() -> None:
    # An older version wrote "signalen van 1 partners": still the partners template, with 1.
    older = r.parse("signalen van 1 partners")
    assert older is not None and older.plural == r.PARTNERS[1] and older.num == 1
    assert r.parse("huurachterstand van 3 maanden (totaal € 2.400)") == (
        r.plural(r.RENT_MONTHS, 3, amount=2400)
    )
    assert r.parse("een reden van een ander model") is None
    assert r.parse("ontruimingsdatum binnen 30 dagen en meer") is None  # the whole text only
