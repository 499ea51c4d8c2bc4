"""Dutch first, English second: Flask-Babel, the language switch and Dutch formats.

The texts in the code and the templates are Dutch and are the message ids;
``webapp/translations/en/LC_MESSAGES/messages.po`` holds their English. The language is the
cookie ``taal`` ("nl" or "en") when it is set, otherwise Dutch: the browser's
Accept-Language is deliberately not followed. ``GET /taal/<nl|en>?next=/path`` (the link in
every page's header) sets the cookie for a year and goes back to ``next``, a path on this
site only.

Dates, times and amounts go through babel in the page's language (filters ``datum``,
``datumtijd`` and ``euro``): "7 december 2026" or "07-12-2026" and "€ 1.234,56" in Dutch;
British English formats ("7 December 2026", "07/12/2026", "€1,234.56") in English, since
the readers are in the Netherlands.

Texts made below the web layer (a refused action's message, the dashboard's tables) are
:class:`signals.texts.Text` values: Dutch strings that keep their message id, translated here
by :func:`translate` (filter ``vertaal``). A score's reasons are stored as Dutch text and read
back into their templates (:func:`scoring.reasons.parse`, filter ``reden``); so are a case's
timeline and review reason (:func:`outreach.timeline.parse`, filter ``tijdlijn``).

A due date shows how many Dutch working days away it is (filter ``werkdagen``): "vandaag",
"over 3 werkdagen", "2 werkdagen te laat", counted from the Dutch date today with
:func:`outreach.rules.working_days_between` (weekends and Dutch public holidays are not
working days). A due date on a weekend or holiday is due on the working day before it:
on Friday, a task due on Saturday or Sunday is due "vandaag"; on Saturday, a task due that
Friday is "0 werkdagen te laat" (late, but no working day lost yet).

After changing a text, from the repository root::

    .venv/bin/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k N_ -k NP_:1,2 -k Text \\
        -k Plural:1,2 --add-location=file --sort-by-file --project=Vroegsignaal \\
        --copyright-holder=Vroegsignaal -o webapp/translations/messages.pot .
    .venv/bin/pybabel update -i webapp/translations/messages.pot -d webapp/translations \\
        --no-fuzzy-matching --ignore-obsolete
    (translate the new and changed entries in webapp/translations/en/LC_MESSAGES/messages.po)
    .venv/bin/pybabel compile -d webapp/translations

The compiled ``messages.mo`` is committed; ``tests/webapp/test_i18n.py`` fails when it is
older than the ``.po`` or when a text has no English.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from babel import dates, numbers
from flask import Blueprint, Flask, current_app, redirect, request, url_for
from flask_babel import Babel, get_locale, get_translations, gettext, ngettext

from outreach.rules import working_days_between
from outreach.statistics import Ratio, Share
from outreach.timeline import parse as parse_timeline
from scoring.reasons import parse as parse_reason
from signals.rules import NL, today_nl
from signals.texts import Number, Text

COOKIE = "taal"
LANGUAGES = ("nl", "en")
DEFAULT = "nl"
COOKIE_SECONDS = 365 * 24 * 60 * 60
#: The babel locale behind each language's formats: English for readers in the Netherlands
#: writes day-month-year and a 24-hour clock.
FORMATS = {"nl": "nl_NL", "en": "en_GB"}
#: The switch shows the other language, in that language.
SWITCH = {"nl": ("en", "English"), "en": ("nl", "Nederlands")}
EMPTY = "—"

bp = Blueprint("i18n", __name__)
babel = Babel()


def select_locale() -> str:
    """The cookie's language if it names one we have, else Dutch (Accept-Language is not
    followed: the service speaks Dutch first)."""
    chosen = request.cookies.get(COOKIE, "")
    return chosen if chosen in LANGUAGES else DEFAULT


def language() -> str:
    """The language of the current request ("nl" or "en"); Dutch outside a request."""
    locale = get_locale()
    return locale.language if locale is not None and locale.language in LANGUAGES else DEFAULT


def is_local_path(target: str) -> bool:
    """Whether ``target`` is a path on this site: no scheme, no host, nothing a browser would
    repair into another site (``//host``, backslashes, control characters)."""
    parts = urlsplit(target)
    return (
        target.startswith("/")
        and not target.startswith("//")
        and not parts.scheme
        and not parts.netloc
        and not any(c == "\\" or ord(c) < 0x20 or ord(c) == 0x7F for c in target)
    )


@bp.get("/taal/<any(nl, en):code>")
def switch(code: str) -> Any:
    """Remember the language in a cookie and go back where the user was."""
    target = request.args.get("next", "")
    response = redirect(target if is_local_path(target) else url_for("views.home"))
    response.set_cookie(
        COOKIE,
        code,
        max_age=COOKIE_SECONDS,
        samesite="Lax",
        httponly=True,
        secure=current_app.session_interface.get_cookie_secure(current_app),
    )
    return response


def _switch_link() -> dict[str, str]:
    """The header's link to the other language, back to this page."""
    other, label = SWITCH[language()]
    here = request.full_path.rstrip("?") if request.method == "GET" else request.path
    return {"href": url_for("i18n.switch", code=other, next=here), "lang": other, "label": label}


# -- formats ----------------------------------------------------------------------------------
def _format_locale() -> str:
    return FORMATS[language()]


def _local(moment: dt.datetime) -> dt.datetime:
    """A stored timestamp in Dutch time (a naive one is taken as UTC, as it is stored)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(NL)


def format_day(value: dt.date | dt.datetime | None, length: str = "short") -> str:
    """Filter ``datum``: a date in the page's language; ``length`` is babel's "short"
    ("07-12-2026"), "medium" ("7 dec 2026") or "long" ("7 december 2026"). A timestamp counts
    as its day in Dutch time."""
    if value is None:
        return EMPTY
    if isinstance(value, dt.datetime):
        value = _local(value).date()
    return dates.format_date(value, format=length, locale=_format_locale())


def format_moment(value: dt.datetime | None, seconds: bool = False) -> str:
    """Filter ``datumtijd``: a stored timestamp as Dutch users read it, in Europe/Amsterdam
    time: "07-12-2026 14:05" (with ``seconds``: "07-12-2026 14:05:09")."""
    if value is None:
        return EMPTY
    local = _local(value)
    locale = _format_locale()
    day = dates.format_date(local.date(), format="short", locale=locale)
    clock = dates.format_time(local, format="medium" if seconds else "short", locale=locale)
    return f"{day} {clock}"


def format_euro(amount: Decimal | float | int | None) -> str:
    """Filter ``euro``: an amount in euros, "€ 1.234,56" in Dutch, "€1,234.56" in English."""
    if amount is None:
        return EMPTY
    return numbers.format_currency(amount, "EUR", locale=_format_locale())


# -- texts made below the web layer -----------------------------------------------------------
def _param(value: Any) -> Any:
    if isinstance(value, Text):
        return translate(value)
    if isinstance(value, Number):
        return numbers.format_decimal(value, locale=_format_locale())
    return value


def translate(value: Any) -> Any:
    """Filter ``vertaal``: a :class:`~signals.texts.Text` in the page's language (its
    parameters too, where they are Text or Number); anything else as it is (a DDAS value,
    a name: data, not a text of ours)."""
    if not isinstance(value, Text):
        return value
    translations = get_translations()
    if value.plural is not None and value.num is not None:
        template = translations.ngettext(value.msgid, value.plural, value.num)
    else:
        template = translations.gettext(value.msgid)
    if not value.params:
        return template
    return template % {k: _param(v) for k, v in value.params.items()}


def message_of(error: BaseException) -> str:
    """A refused action's message for the user, in the page's language."""
    if len(error.args) == 1 and isinstance(error.args[0], Text):
        return str(translate(error.args[0]))
    return str(error)


def translate_reason(stored: str) -> str:
    """Filter ``reden``: a score's stored Dutch reason in the page's language; a text that
    fits none of the templates of :mod:`scoring.reasons` as it is."""
    reason = parse_reason(stored)
    return stored if reason is None else str(translate(reason))


def format_cell(value: Any) -> Any:
    """Filter ``cijfer``: a dashboard cell in the page's language: a count with its
    thousands separator ("12.345", "12,345"), a share or a ratio with its decimal sign
    ("12,5%", "1,50"; "12.5%", "1.50"), a text translated (:func:`translate`), "<5" and "—"
    as they are."""
    if isinstance(value, Share):
        return numbers.format_percent(value.value / 100, "#,##0.0%", locale=_format_locale())
    if isinstance(value, Ratio):
        return numbers.format_decimal(value.value, "#,##0.00", locale=_format_locale())
    if isinstance(value, str) and value.isdigit():
        return numbers.format_decimal(int(value), locale=_format_locale())
    return translate(value)


def translate_timeline(stored: str | None) -> str:
    """Filter ``tijdlijn``: a case's stored timeline text or review reason in the page's
    language; a text that fits none of the templates of :mod:`outreach.timeline` as it is."""
    if not stored:
        return ""
    text = parse_timeline(stored)
    return stored if text is None else str(translate(text))


def working_days_away(due: dt.date | None, today: dt.date | None = None) -> str:
    """Filter ``werkdagen``: how many Dutch working days a due date is from today (the
    Dutch date): "vandaag", "over 1 werkdag", "3 werkdagen te laat" (see the docstring of
    this module for a due date on a weekend or holiday)."""
    if due is None:
        return ""
    today = today or today_nl()
    days = working_days_between(today, due)
    if days > 0:
        return ngettext("over %(num)d werkdag", "over %(num)d werkdagen", days)
    if days < 0 or due < today:
        return ngettext("%(num)d werkdag te laat", "%(num)d werkdagen te laat", -days)
    return gettext("vandaag")


def init_app(app: Flask) -> None:
    """Flask-Babel with the cookie's language, the switch route and the format filters."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", "Europe/Amsterdam")
    babel.init_app(app, locale_selector=select_locale)
    app.register_blueprint(bp)
    app.jinja_env.filters.update(
        datum=format_day,
        datumtijd=format_moment,
        euro=format_euro,
        vertaal=translate,
        reden=translate_reason,
        tijdlijn=translate_timeline,
        cijfer=format_cell,
        werkdagen=working_days_away,
    )

    @app.context_processor
    def _language() -> dict[str, Any]:
        return {"language": language(), "language_switch": _switch_link}
