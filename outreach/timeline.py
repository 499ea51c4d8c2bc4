"""The texts of a case's timeline and of its review reason: Dutch templates, read back.

A case's events (``CaseEvent.text``) and its review reason (``Case.review_reason``) are kept
as Dutch text: the AVG access export, the audit and older rows read them as they are. Every
such text is one of the templates below, filled in with values that are data (dates, DDAS
values, a period) or with one of the fixed texts of :data:`INNER` (the BRP check's reasons);
:func:`parse` reads a stored text back into its template and values, so a page can show it in
its own language (``webapp.i18n``, filter ``tijdlijn``). A text that fits no template (written
by an older version) is shown as it is.

The templates are marked for the catalogue (``N_``): changing one means running the extract
and update commands of ``webapp/i18n.py``; rows stored before keep their old Dutch text.
"""

from __future__ import annotations

from typing import Any

from signals.texts import N_, Text, pattern_of

CREATED = N_("zaak aangemaakt voor periode %(period)s")
PLAN = N_("contactplan: %(kinds)s; eerste poging uiterlijk %(day)s")
CLAIMED = N_("zaak toegewezen")
RELEASED = N_("zaak teruggezet in de wachtrij")
PICKED_UP = N_("zaak opgepakt (eerste contactpoging)")
REACHED = N_("%(kind)s, %(dagdeel)s: bereikt")
NOT_REACHED = N_("%(kind)s, %(dagdeel)s: niet bereikt")
CLOSED = N_("zaak afgesloten: %(result)s")
PAUSE = N_("hulp aanvaard: incassopauze en quick-fix-termijn tot %(day)s")
HELP_REQUEST = N_("hulpvraag: eerste gesprek uiterlijk %(day)s")
RESIDENT_CHECK = N_("inwonercheck: %(reason)s")
OVERDUE = N_("termijn verstreken: %(kind)s was uiterlijk %(day)s")
REPEAT_SAME = N_("herhaalde melding (%(partner)s), achterstand niet gegroeid")
REPEAT_GROWN = N_("herhaalde melding (%(partner)s), achterstand gegroeid: opgepakt")
OUTSIDE_WINDOW = N_("signaal buiten het convenantvenster (%(partner)s)")
REVIEWED = N_("na beoordeling: oppakken")

TEMPLATES = (CREATED, PLAN, CLAIMED, RELEASED, PICKED_UP, REACHED, NOT_REACHED, CLOSED, PAUSE,
             HELP_REQUEST, RESIDENT_CHECK, OVERDUE, REPEAT_SAME, REPEAT_GROWN, OUTSIDE_WINDOW,
             REVIEWED)  # fmt: skip

#: The BRP check's reasons (``outreach.residents``): fixed texts inside RESIDENT_CHECK.
INNER = (
    N_("niet ingeschreven in de gemeente (BRP-uittreksel)"),
    N_("BSN niet gevonden in de BRP"),
    N_("volgens de BRP ingeschreven in een andere gemeente"),
    N_("naam wijkt af van de BRP"),
    N_("ingeschreven in de gemeente (BRP)"),
    N_("geen BSN en geen volledig adres"),
    N_("niemand ingeschreven op dit adres (BRP)"),
    N_("ingeschreven op dit adres (BRP)"),
    N_("naam niet gevonden op dit adres (BRP)"),
)


def text(template: str, **values: Any) -> Text:
    """A timeline text; a value that is one of :data:`INNER` is translated with it."""
    return Text(template, **{k: Text(v) if v in INNER else v for k, v in values.items()})


# The longest template first: "…: niet bereikt" before "…: bereikt".
_PATTERNS = [(pattern_of(t, ".+?"), t) for t in sorted(TEMPLATES, key=len, reverse=True)]


def parse(stored: str) -> Text | None:
    """The stored text as its template and values, or None if it fits no template."""
    for pattern, template in _PATTERNS:
        match = pattern.fullmatch(stored)
        if match is not None:
            return text(template, **match.groupdict())
    return None
