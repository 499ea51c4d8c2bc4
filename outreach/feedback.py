"""What a partner may learn back about its own signals (DOMAIN.md, "Signals, cases, outcomes").

Picked up or not; ``herhaalde melding``, ``onterecht signaal``, ``geen inwoner (meer)`` and
``overleden`` are fed back as they are. For ``Niet opgepakt: andere reden`` (and for a
resident already known at debt help, which is nobody else's business) the partner learns
only that the signal was not picked up, never why. After accepted help the partner learns
the end of the 30-day collection pause it must keep.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from outreach.models import Case, CaseSignal
from signals.enums import SignalStatus
from signals.models import Signal

NOT_PICKED_UP = "Niet opgepakt"
#: Statuses fed back verbatim; every other "not picked up" status becomes NOT_PICKED_UP.
VERBATIM = frozenset(
    {
        SignalStatus.NOG_NIET_OPGEPAKT,
        SignalStatus.OPGEPAKT,
        SignalStatus.NIET_OPGEPAKT_HERHAALD,
        SignalStatus.NIET_OPGEPAKT_ONTERECHT,
        SignalStatus.GEEN_INWONER,
        SignalStatus.OVERLEDEN,
    }
)
PAGE = 5_000


def partner_status(status: SignalStatus) -> str:
    return status.value if status in VERBATIM else NOT_PICKED_UP


def feedback(
    session: Session, partner_id: str, since: dt.datetime, limit: int = PAGE
) -> dict[str, Any]:
    """The partner's signals whose case changed after ``since``, oldest change first.

    At most ``limit`` entries; when there are more, ``next_since`` is the moment to ask from
    next (every entry of that moment is in this page).
    """
    query = (
        select(Signal.signal_ref, Signal.status, Case.updated_at, Case.collection_pause_until)
        .join(CaseSignal, CaseSignal.signal_id == Signal.id)
        .join(Case, Case.id == CaseSignal.case_id)
        .where(Signal.partner_id == partner_id)
        .order_by(Case.updated_at, Signal.id)
    )
    rows = session.execute(query.where(Case.updated_at > since).limit(limit + 1)).all()
    more = len(rows) > limit
    if more:
        # Never split one moment over two pages: the last moment goes whole to the next
        # page, or, when it fills this page on its own, whole to this one.
        last = rows[limit].updated_at
        rows = [r for r in rows[:limit] if r.updated_at < last] or list(
            session.execute(query.where(Case.updated_at == last)).all()
        )
    items = []
    for ref, status, updated, pause in rows:
        item: dict[str, Any] = {
            "signaal_id": ref,
            "status": partner_status(status),
            "gewijzigd": updated.isoformat(),
        }
        if pause is not None and status is SignalStatus.OPGEPAKT:
            item["incassopauze_tot"] = pause.isoformat()
        items.append(item)
    return {
        "since": since.isoformat(),
        "feedback": items,
        "next_since": items[-1]["gewijzigd"] if more and items else None,
    }
