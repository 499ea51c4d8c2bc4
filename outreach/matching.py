"""Matching: signals become cases, one per household per matching period.

Rules (DOMAIN.md, "Matching rules used in practice"):

* Signals are bundled per household (the keyed BSN hash, else the keyed address hash) per
  matching period (``matching_period``: the calendar month by default, or the ISO week).
* *Meervoudig*: two or more signals in the case. *Opeenvolgend*: another signal of the
  household in the previous ``repeat_lookback_months`` months, or a signal on one of its
  addresses deleted by retention in that time (its keyed address hash is kept,
  ``outreach.retention``; without an amount it cannot close a repeat as unchanged).
* A repeat from the same partner whose arrear has not grown gets the DDAS status
  ``Niet opgepakt: herhaalde melding``; a case of nothing but such repeats is closed with
  that result. A grown repeat is picked up like any signal.
* A signal outside its convenant window puts its case on the review list (never away);
  end-of-supply signals are always handled.

Idempotent: a signal is matched once (``case_signals`` has it as primary key).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session, selectinload

from config import Settings
from outreach import timeline
from outreach.enums import CaseResult, CaseState
from outreach.models import Case, CaseSignal
from outreach.service import SYSTEM, Bulk, close, event, transition
from signals.enums import SignalStatus, WindowFlag
from signals.models import RetainedSignal, Signal

OUTSIDE = (WindowFlag.TOO_EARLY, WindowFlag.TOO_LATE)


def period_of(day: dt.date, kind: str) -> str:
    if kind == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day:%Y-%m}"


def period_bounds(period: str) -> tuple[dt.date, dt.date]:
    """First and last day of a matching period ("2026-11" or "2026-W05")."""
    if "-W" in period:
        year, week = period.split("-W")
        first = dt.date.fromisocalendar(int(year), int(week), 1)
        return first, first + dt.timedelta(days=6)
    first = dt.date.fromisoformat(period + "-01")
    return first, (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)


def _household(signal: Signal) -> str:
    return signal.bsn_hash or signal.address_hash


@dataclass
class Matched:
    signals: int = 0
    cases_created: int = 0
    repeats_closed: int = 0
    to_review: int = 0
    #: (signal date, id) of the last signal read: where the next chunk goes on
    last: tuple[dt.date, int] | None = None


def match_signals(
    session: Session,
    settings: Settings,
    municipality_id: int,
    limit: int = 20_000,
    after: tuple[dt.date, int] | None = None,
) -> Matched:
    """Put the unmatched signals of one municipality into their cases (see the module): at
    most ``limit``, in signal date order, after ``after`` (the ``last`` of the previous chunk
    of this run: without it each chunk walked past every signal matched before it, quadratic
    in a large municipality)."""
    out = Matched()
    query = (
        select(Signal)
        .outerjoin(CaseSignal, CaseSignal.signal_id == Signal.id)
        .where(Signal.municipality_id == municipality_id, CaseSignal.signal_id.is_(None))
    )
    if after is not None:
        query = query.where(tuple_(Signal.signal_date, Signal.id) > tuple_(*after))
    unmatched = list(session.scalars(query.order_by(Signal.signal_date, Signal.id).limit(limit)))
    if not unmatched:
        return out
    out.last = (unmatched[-1].signal_date, unmatched[-1].id)
    by_case: dict[tuple[str, str], list[Signal]] = defaultdict(list)
    for signal in unmatched:
        by_case[
            (_household(signal), period_of(signal.signal_date, settings.matching_period))
        ].append(signal)
    existing = _open_cases(session, municipality_id, {h for h, _ in by_case}, by_case)
    lookback = relativedelta(months=settings.repeat_lookback_months)
    firsts = [min(s.signal_date for s in signals) for signals in by_case.values()]
    window = (min(firsts) - lookback, max(firsts))
    earlier_of = _earlier_signals(session, municipality_id, {h for h, _ in by_case}, *window)
    retained_of = _retained(session, municipality_id, {s.address_hash for s in unmatched}, *window)
    # Everything this run needs was read above: no query (and so no autoflush) per case.
    # New cases first, with their first event, written together; then the signals.
    bulk = Bulk()
    cases: dict[tuple[str, str], Case] = {}
    with session.no_autoflush:
        for household, period in by_case:
            case = existing.get((household, period))
            if case is None:
                case = Case(
                    municipality_id=municipality_id,
                    household_key=household,
                    period=period,
                    state=CaseState.NIEUW,
                    signals=[],
                    crisis=False,
                    end_of_supply=False,
                    meervoudig=False,
                    opeenvolgend=False,
                )
                session.add(case)
                created = timeline.text(timeline.CREATED, period=period)
                bulk.event(case, SYSTEM, "aangemaakt", created)
                out.cases_created += 1
            cases[household, period] = case
    bulk.write(session)
    with session.no_autoflush:
        for ((household, period), signals), first_day in zip(by_case.items(), firsts, strict=True):
            _match_case(
                out, cases[household, period], household, signals, first_day, earlier_of,
                retained_of, lookback,
            )  # fmt: skip
    session.flush()
    return out


def _match_case(
    out: Matched,
    case: Case,
    household: str,
    signals: list[Signal],
    first_day: dt.date,
    earlier_of: dict[str, list[Signal]],
    retained_of: dict[str, list[dt.date]],
    lookback: relativedelta,
) -> None:
    """Put one household's signals of one period into its case (new or open)."""
    since = first_day - lookback
    earlier = sorted(
        (s for s in earlier_of.get(household, ()) if since <= s.signal_date < first_day),
        key=lambda s: (s.signal_date, s.id),
    )
    # Deleted signals (retention) leave only a keyed address hash: a repeat, not an amount.
    retained = not earlier and any(
        since <= day < first_day for s in signals for day in retained_of.get(s.address_hash, ())
    )
    fresh = 0
    for signal in signals:
        case.signals.append(signal)
        out.signals += 1
        case.crisis |= signal.crisis
        case.end_of_supply |= signal.end_of_supply
        if signal.eviction_date and (
            case.eviction_date is None or signal.eviction_date < case.eviction_date
        ):
            case.eviction_date = signal.eviction_date
        same_partner = [e for e in earlier if e.partner_id == signal.partner_id]
        if same_partner and signal.amount <= same_partner[-1].amount:
            signal.status = SignalStatus.NIET_OPGEPAKT_HERHAALD
            event(
                case,
                SYSTEM,
                "herhaling",
                timeline.text(timeline.REPEAT_SAME, partner=signal.partner_type.value),
            )
        else:
            fresh += 1
            if same_partner:
                event(
                    case,
                    SYSTEM,
                    "herhaling",
                    timeline.text(timeline.REPEAT_GROWN, partner=signal.partner_type.value),
                )
        if signal.window_flag in OUTSIDE and not signal.end_of_supply:
            reason = timeline.text(timeline.OUTSIDE_WINDOW, partner=signal.partner_type.value)
            case.review_reason = str(reason)
            if case.state is CaseState.NIEUW:
                transition(case, CaseState.TE_BEOORDELEN, SYSTEM, reason)
                out.to_review += 1
    case.meervoudig = len(case.signals) >= 2
    case.opeenvolgend = case.opeenvolgend or bool(earlier) or retained
    if (
        not fresh
        and all(s.status is SignalStatus.NIET_OPGEPAKT_HERHAALD for s in case.signals)
        and case.state in (CaseState.NIEUW, CaseState.TE_BEOORDELEN)
    ):
        close(case, CaseResult.NIET_OPGEPAKT_HERHAALD, SYSTEM, first_day)
        out.repeats_closed += 1
    # A later period of the same household in this run sees these as earlier signals.
    earlier_of.setdefault(household, []).extend(signals)


#: keys per IN list: far below the parameter limits of SQLite (32,766) and PostgreSQL
_IN_CHUNK = 5_000


def _chunks(values: set[str]) -> list[list[str]]:
    ordered = sorted(values)
    return [ordered[i : i + _IN_CHUNK] for i in range(0, len(ordered), _IN_CHUNK)]


def _open_cases(
    session: Session,
    municipality_id: int,
    households: set[str],
    wanted: dict[tuple[str, str], list[Signal]],
) -> dict[tuple[str, str], Case]:
    """The newest case not closed of each (household, period) in ``wanted``, with signals."""
    found: dict[tuple[str, str], Case] = {}
    periods = sorted({period for _, period in wanted})
    for keys in _chunks(households):
        for case in session.scalars(
            select(Case)
            .where(
                Case.municipality_id == municipality_id,
                Case.household_key.in_(keys),
                Case.period.in_(periods),
                Case.state != CaseState.AFGESLOTEN,
            )
            .order_by(Case.id)
            .options(selectinload(Case.signals))
        ):
            if (case.household_key, case.period) in wanted:
                found[case.household_key, case.period] = case  # the newest wins
    return found


def _earlier_signals(
    session: Session, municipality_id: int, households: set[str], since: dt.date, before: dt.date
) -> dict[str, list[Signal]]:
    """The households' signals already in a case, dated in ``[since, before)``, by household
    (the BSN hash, else the address hash, as :func:`_household`)."""
    out: dict[str, list[Signal]] = defaultdict(list)
    for keys in _chunks(households):
        # Two queries, one per hash index. One query with "bsn_hash IN (...) OR (bsn_hash IS
        # NULL AND address_hash IN (...))" made SQLite walk the municipality's whole date range
        # for every chunk: quadratic in a large municipality (bench/README.md). "+ 0" keeps
        # SQLite (which has no statistics here) off the (municipality, date) index, so that it
        # looks the hashes up; the address query's signals with a BSN are the BSN query's.
        for by_bsn in (True, False):
            found = Signal.bsn_hash.in_(keys) if by_bsn else Signal.address_hash.in_(keys)
            for signal in session.scalars(
                select(Signal)
                .join(CaseSignal, CaseSignal.signal_id == Signal.id)
                .where(
                    found,
                    Signal.municipality_id + 0 == municipality_id,
                    Signal.signal_date >= since,
                    Signal.signal_date < before,
                )
            ):
                if by_bsn or signal.bsn_hash is None:
                    out[_household(signal)].append(signal)
    return out


def _retained(
    session: Session,
    municipality_id: int,
    address_hashes: set[str],
    since: dt.date,
    before: dt.date,
) -> dict[str, list[dt.date]]:
    """Dates of deleted signals (retention) on these addresses in ``[since, before)``."""
    out: dict[str, list[dt.date]] = defaultdict(list)
    for hashes in _chunks(address_hashes):
        for address_hash, day in session.execute(
            select(RetainedSignal.address_hash, RetainedSignal.signal_date).where(
                RetainedSignal.municipality_id == municipality_id,
                RetainedSignal.address_hash.in_(hashes),
                RetainedSignal.signal_date >= since,
                RetainedSignal.signal_date < before,
            )
        ):
            out[address_hash].append(day)
    return out


def municipalities_with_unmatched(session: Session) -> list[int]:
    return list(
        session.scalars(
            select(func.distinct(Signal.municipality_id))
            .outerjoin(CaseSignal, CaseSignal.signal_id == Signal.id)
            .where(CaseSignal.signal_id.is_(None))
        )
    )
