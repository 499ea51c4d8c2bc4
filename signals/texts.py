"""Texts for people, made below the web layer: Dutch, translated where a page shows them.

A domain package must not import Flask or Flask-Babel, yet some of its texts reach a page:
a refused action's message, a dashboard table's title, a score's reasons. Such a text is a
:class:`Text`: a ``str`` holding the Dutch text, so the CSV export, the API, the logs and the
database get Dutch as before, that also keeps its Dutch message id and its parameters, so
the web layer can render it in the page's language (``webapp.i18n.translate``, the Jinja
filter ``vertaal``).

The message ids are extracted into the catalogue by the keywords of the extract command in
``webapp/i18n.py``: ``Text("...")``, ``Plural("...", "...", n)`` and the no-op markers
``N_("...")`` and ``NP_("...", "...")`` for a template kept in a constant and filled in later
(``Text(TEMPLATE, ...)``, ``Plural(*FORMS, n)``).

Parameters are %-style and named (``%(n)s``), shown with ``str()``; a parameter that is a
:class:`Text` itself is translated too. A :class:`Number` (an amount, a count of days) is
written the Dutch way, "2.400", and by the page in its own language ("2,400" in English); a
plain ``int`` (a case number) is written as it is.
"""

from __future__ import annotations

import re
from typing import Any


def pattern_of(template: str, value: str) -> re.Pattern[str]:
    """A regular expression that reads a text written from ``template`` back: every
    ``%(name)s`` a group ``name`` matching ``value``, the rest as it is."""
    parts = re.split(r"%\((\w+)\)s", template)
    return re.compile(
        "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>{value})" for i, p in enumerate(parts))
    )


def N_(msgid: str) -> str:
    """Mark a Dutch text for the catalogue without translating it (it is used later)."""
    return msgid


def NP_(singular: str, plural: str) -> tuple[str, str]:
    """Mark a Dutch text with a singular and a plural form for the catalogue."""
    return singular, plural


class Number(int):
    """A whole number written with thousands separators: "2.400" in Dutch, "2,400" in
    English (a case number is a plain ``int``: "zaak 2400")."""

    def dutch(self) -> str:
        return f"{self:,}".replace(",", ".")


def _shown(value: Any) -> Any:
    return value.dutch() if isinstance(value, Number) else value


class Text(str):
    """A Dutch text, ``msgid % params``, that remembers its message id and parameters.

    >>> t = Text("zaak %(id)s is al afgesloten", id=12)
    >>> t, t.msgid, t.params
    ('zaak 12 is al afgesloten', 'zaak %(id)s is al afgesloten', {'id': 12})
    """

    msgid: str
    params: dict[str, Any]
    #: The plural message id and the number that chooses between the two (see Plural).
    plural: str | None = None
    num: int | None = None

    def __new__(cls, msgid: str, **params: Any) -> Text:
        shown = msgid % {k: _shown(v) for k, v in params.items()} if params else msgid
        text = super().__new__(cls, shown)
        text.msgid, text.params = msgid, params
        return text

    def __reduce__(self) -> tuple[Any, ...]:  # copy and pickle keep what it is
        return (_rebuild, (self.msgid, self.plural, self.num, self.params))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str.__repr__(self)})"


class Plural(Text):
    """A Dutch text with a singular and a plural form, chosen by ``num`` (also ``%(num)s``).

    >>> Plural("%(num)s maand", "%(num)s maanden", 3)
    Plural('3 maanden')
    """

    def __new__(cls, msgid: str, plural: str, num: int, **params: Any) -> Plural:
        text = Text.__new__(cls, msgid if num == 1 else plural, num=num, **params)
        assert isinstance(text, Plural)
        text.msgid, text.plural, text.num = msgid, plural, num
        return text


def _rebuild(msgid: str, plural: str | None, num: int | None, params: dict[str, Any]) -> Text:
    if plural is None or num is None:
        return Text(msgid, **params)
    rest = {k: v for k, v in params.items() if k != "num"}
    return Plural(msgid, plural, num, **rest)
