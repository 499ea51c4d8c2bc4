"""Prevention statistics for a municipality (or several) over a period: counts only.

Everything here is an aggregate computed in the database (``GROUP BY``); no row about a
person leaves this module. Small counts are suppressed before anything is shown or
downloaded (:func:`suppress`): 1-4 becomes "<5", and when a table would then let a
suppressed cell be worked out from its total, the next smallest cell is suppressed too.

Definitions (the dashboard states them under each table):

* a *signal* counts in the period of its ``signaaldatum``; a *case* in the period it was
  created (matched);
* *reached*: a case with at least one attempt marked reached; *help accepted*: a case closed
  with ``(Budget)advies en/of quick fix`` or one of the ``Vervolghulp`` results;
* *days to first attempt*: from the earliest signal of the case to its first attempt;
  *days to first conversation*: to its first reached attempt (norm: 4 weeks);
* the risk band is the one the case had when it was planned;
* *young*: a signal of the case gives age 18-27; *children*: someone under 18 is registered
  at the resident's address (BRP, at the resident check).

Every figure is a sum of counts per municipality and month (:func:`count_direct`). The
``count_statistics`` job keeps them in ``statistics_counts`` (:func:`refresh`); every change
that moves a figure leaves a :class:`~signals.models.StatisticsMark` for its month in the
same transaction, and :func:`count_months` counts marked or partial months directly, so the
dashboard always equals a direct count, quickly.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, String, and_, case, delete, extract, func, select, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from outreach.enums import HELP_ACCEPTED, CaseResult, ContactKind
from outreach.models import Case, CaseSignal, ContactAttempt, StatisticsCount, StatisticsState
from signals.enums import PartnerType
from signals.models import Municipality, Signal, StatisticsMark, first_of_month
from signals.rules import today_nl
from signals.texts import Text

NATIONAL_SIGNALS_PER_1000_MONTH = 4.4  # 2024 (DOMAIN.md)
SMALL = 5
#: A count hidden only so that another, small one cannot be worked out from the total.
SECONDARY = Text("(afgeschermd)")


@dataclass
class Table:
    """One table of the dashboard: a title, column names and rows of label + numbers.

    The title, the column names, the notes and the row labels that are words of ours are
    :class:`~signals.texts.Text` (Dutch, shown in the page's language); DDAS values, such as
    a partner type or an end result, are plain strings, verbatim in every language.
    """

    key: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""
    #: Columns holding counts that must be suppressed (indexes into each row), and the
    #: share columns hidden in a row whose count is suppressed.
    count_columns: tuple[int, ...] = (1,)
    share_columns: tuple[int, ...] = (2,)
    #: Whether the rows split one whole (a distribution), so that a hidden cell could be
    #: worked out from the others and the total: then a second cell is hidden as well.
    partition: bool = True
    #: Or which groups of rows each split a whole shown elsewhere (row indexes); overrides
    #: ``partition``.
    partitions: tuple[tuple[int, ...], ...] | None = None

    def groups(self) -> list[tuple[int, ...]]:
        if self.partitions is not None:
            return list(self.partitions)
        return [tuple(range(len(self.rows)))] if self.partition else []


@dataclass
class Statistics:
    municipalities: list[str]
    start: dt.date
    end: dt.date
    tables: list[Table] = field(default_factory=list)

    def table(self, key: str) -> Table:
        return next(t for t in self.tables if t.key == key)


def suppress(values: list[int | None], partition: bool = True) -> list[str]:
    """Counts as shown: 1-4 as "<5"; in a distribution (``partition``), if exactly one cell
    would be hidden, the next smallest non-zero cell is hidden as well, so the total cannot
    give it away. 0 stays 0: an absence identifies nobody."""
    shown = ["—" if v is None else str(v) for v in values]
    small = [i for i, v in enumerate(values) if v is not None and 0 < v < SMALL]
    for i in small:
        shown[i] = "<5"
    if partition and len(small) == 1:
        others = [(v, i) for i, v in enumerate(values) if v is not None and v >= SMALL]
        if others:
            _, i = min(others)
            shown[i] = SECONDARY
    return shown


class Figure(str):
    """A figure as the downloads write it (``FORMAT``) that keeps its value, so that a page
    writes it in its own language."""

    FORMAT = "{:.2f}"
    value: float

    def __new__(cls, value: float) -> Figure:
        text = super().__new__(cls, cls.FORMAT.format(value))
        text.value = value
        return text


class Share(Figure):
    """A percentage: "12.5%" in the downloads, "12,5%" on a Dutch page."""

    FORMAT = "{:.1f}%"


class Ratio(Figure):
    """A figure with two decimals: "1.50" in the downloads, "1,50" on a Dutch page."""


def share(part: int | None, whole: int | None) -> str:
    """A percentage, or "—" when either count is too small to show."""
    if part is None or not whole or whole < SMALL or 0 < part < SMALL:
        return "—"
    return Share(100 * part / whole)


def _months(start: dt.date, end: dt.date) -> list[tuple[int, int]]:
    out, year, month = [], start.year, start.month
    while (year, month) <= (end.year, end.month):
        out.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _month_end(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)


# -- counting ------------------------------------------------------------------------------------
#: Every statistic is a sum of these counts, kept per municipality and month (a signal in the
#: month of its ``signaaldatum``, a case and its attempts in the month it was created), so
#: that a period's figures are the sum of its months and medians come from day histograms.
YOUNG = "18-27"
Counts = Counter[tuple[str, str]]
MonthKey = tuple[int, dt.date]  # (municipality id, first day of the month)


def _day_range(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    return (
        dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC),
        dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC),
    )


class utc_month(FunctionElement[str]):
    """The UTC month of a timestamp column as text, ``YYYY-MM``."""

    type = String()
    inherit_cache = True


@compiles(utc_month, "sqlite")
def _utc_month_sqlite(element: utc_month, compiler: Any, **kw: Any) -> str:
    # SQLite keeps the UTC timestamp as text, "YYYY-MM-DD HH:MM:SS.ffffff".
    return f"substr({compiler.process(next(iter(element.clauses)), **kw)}, 1, 7)"


@compiles(utc_month, "postgresql")
def _utc_month_postgresql(element: utc_month, compiler: Any, **kw: Any) -> str:
    column = compiler.process(next(iter(element.clauses)), **kw)
    return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM')"


class days_between(FunctionElement[int]):
    """Whole days from a date to the UTC date of a later timestamp (NULL if either is)."""

    type = Integer()
    inherit_cache = True


@compiles(days_between, "sqlite")
def _days_between_sqlite(element: days_between, compiler: Any, **kw: Any) -> str:
    moment, day = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(julianday(substr({moment}, 1, 10)) - julianday({day}) AS INTEGER)"


@compiles(days_between, "postgresql")
def _days_between_postgresql(element: days_between, compiler: Any, **kw: Any) -> str:
    moment, day = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST({moment} AT TIME ZONE 'UTC' AS DATE) - {day})"


def _month_of(text: str) -> dt.date:
    return dt.date(int(text[:4]), int(text[5:7]), 1)


def count_direct(
    session: Session, municipality_ids: list[int], start: dt.date, end: dt.date
) -> dict[MonthKey, Counts]:
    """Count everything of these municipalities between ``start`` and ``end`` (inclusive)
    straight from the signals, cases and attempts, per municipality and month."""
    out: dict[MonthKey, Counts] = defaultdict(Counter)
    if not municipality_ids:
        return out
    in_period = and_(
        Signal.municipality_id.in_(municipality_ids),
        Signal.signal_date >= start,
        Signal.signal_date <= end,
    )
    year, month = extract("year", Signal.signal_date), extract("month", Signal.signal_date)
    # Grouped by labels: one expression each, so PostgreSQL sees the same bound values.
    in_case = (
        select(CaseSignal.signal_id).where(CaseSignal.signal_id == Signal.id).exists()
    ).label("in_case")
    young_signal = (Signal.age_band == YOUNG).label("young")
    keys = (Signal.municipality_id, year.label("y"), month.label("m"), Signal.partner_type,
            Signal.end_of_supply, young_signal, in_case)  # fmt: skip
    for mid, y, m, partner, eos, young, linked, n in session.execute(
        select(*keys, func.count()).where(in_period).group_by(*keys)
    ):
        counts = out[(mid, dt.date(int(y), int(m), 1))]
        counts["signalen", partner.value] += n
        if eos and partner is PartnerType.ENERGIE:
            counts["eindelevering", ""] += n
        if young:
            counts["signalen_jong", ""] += n
        if linked:
            counts["in_zaak", ""] += n

    first, after = _day_range(start, end)
    case_in_period = and_(
        Case.municipality_id.in_(municipality_ids),
        Case.created_at >= first,
        Case.created_at < after,
    )
    # Per case: its first signal day and whether a signal names a young person, its first
    # attempt and first conversation; grouped in the database, per month of the case.
    signal_side = (
        select(
            CaseSignal.case_id.label("case_id"),
            func.min(Signal.signal_date).label("first_day"),
            func.max(case((Signal.age_band == YOUNG, 1), else_=0)).label("young"),
        )
        .select_from(Case)
        .join(CaseSignal, CaseSignal.case_id == Case.id)
        .join(Signal, Signal.id == CaseSignal.signal_id)
        .where(case_in_period)
        .group_by(CaseSignal.case_id)
        .subquery("signal_side")
    )
    attempt_side = (
        select(
            ContactAttempt.case_id.label("case_id"),
            func.min(ContactAttempt.at).label("first_at"),
            func.min(case((ContactAttempt.reached.is_(True), ContactAttempt.at))).label(
                "talked_at"
            ),
        )
        .select_from(Case)
        .join(ContactAttempt, ContactAttempt.case_id == Case.id)
        .where(case_in_period)
        .group_by(ContactAttempt.case_id)
        .subquery("attempt_side")
    )
    keys = (
        Case.municipality_id, utc_month(Case.created_at).label("g_month"), Case.meervoudig,
        Case.opeenvolgend, Case.result, Case.band, Case.children,
        signal_side.c.young.label("g_young"),
        attempt_side.c.talked_at.is_not(None).label("g_reached"),
        days_between(attempt_side.c.first_at, signal_side.c.first_day).label("g_attempt"),
        days_between(attempt_side.c.talked_at, signal_side.c.first_day).label("g_talk"),
    )  # fmt: skip
    for row in session.execute(
        select(*keys, func.count())
        .select_from(Case)
        .outerjoin(signal_side, signal_side.c.case_id == Case.id)
        .outerjoin(attempt_side, attempt_side.c.case_id == Case.id)
        .where(case_in_period)
        .group_by(*keys)
    ):
        mid, month_text, multiple, repeated, result, band, children = row[:7]
        young, reached, to_attempt, to_talk, n = row[7:]
        counts = out[(mid, _month_of(month_text))]
        reached = bool(reached)
        accepted = result in HELP_ACCEPTED
        counts["zaken", ""] += n
        counts["meervoudig", ""] += n * bool(multiple)
        counts["opeenvolgend", ""] += n * bool(repeated)
        counts["bereikt", ""] += n * reached
        counts["aanvaard", ""] += n * accepted
        counts["aanvaard_bereikt", ""] += n * (accepted and reached)
        if result is not None:
            counts["resultaat", result.value] += n
        counts["band", band or ""] += n
        counts["band_aanvaard", band or ""] += n * accepted
        groups = ["alle", *(["jong"] if young else [])]
        groups.append(
            {True: "kinderen", False: "zonder_kinderen", None: "kinderen_onbekend"}[
                None if children is None else bool(children)
            ]
        )
        for group in groups:
            counts["groep_zaken", group] += n
            counts["groep_bereikt", group] += n * reached
            counts["groep_aanvaard", group] += n * accepted
            counts["groep_aanvaard_bereikt", group] += n * (accepted and reached)
        if to_attempt is not None:
            counts["dagen_poging", str(int(to_attempt))] += n
            if to_talk is not None:
                counts["dagen_gesprek", str(int(to_talk))] += n

    attempt_keys = (
        Case.municipality_id, utc_month(Case.created_at).label("g_month"), ContactAttempt.kind,
        ContactAttempt.dagdeel, ContactAttempt.reached,
    )  # fmt: skip
    for mid, month_text, kind, part, hit, n in session.execute(
        select(*attempt_keys, func.count())
        .select_from(ContactAttempt)
        .join(Case, Case.id == ContactAttempt.case_id)
        .where(case_in_period)
        .group_by(*attempt_keys)
    ):
        out[(mid, _month_of(month_text))]["poging", f"{kind.value}|{part.value}|{int(hit)}"] += n
    for counts in out.values():  # keep only what is there: zero counts are not stored
        for key in [k for k, v in counts.items() if not v]:
            del counts[key]
    return out


def refresh(session: Session, limit_months: int = 240) -> dict[str, int]:
    """Bring the pre-counted figures up to date: every municipality counted once in full,
    then only the months with a mark. The only writer of ``statistics_counts``."""
    done = {"gemeenten": 0, "maanden": 0}
    if session.get_bind().dialect.name == "postgresql":
        # One recount at a time, however many scheduler processes run (SQLite: one writer).
        session.execute(text("SELECT pg_advisory_xact_lock(5664735)"))
    newest = session.scalar(select(func.max(StatisticsMark.id)))
    counted = set(session.scalars(select(StatisticsState.municipality_id)))
    new = [m for m in session.scalars(select(Municipality.id)) if m not in counted]
    for municipality_id in new:
        months = count_direct(
            session, [municipality_id], dt.date(1900, 1, 1), dt.date(9998, 12, 31)
        )
        session.execute(
            delete(StatisticsCount).where(StatisticsCount.municipality_id == municipality_id)
        )
        _store(session, months)
        session.add(StatisticsState(municipality_id=municipality_id))
        done["gemeenten"] += 1
    if newest is not None:
        marked = session.execute(
            select(StatisticsMark.municipality_id, StatisticsMark.month)
            .where(StatisticsMark.id <= newest, StatisticsMark.municipality_id.in_(counted))
            .distinct()
            .order_by(StatisticsMark.month)
            .limit(limit_months * 100)
        ).all()
        by_month: dict[dt.date, list[int]] = defaultdict(list)
        for municipality_id, month in marked:
            by_month[month].append(municipality_id)
        for month, municipality_ids in by_month.items():
            session.execute(
                delete(StatisticsCount).where(
                    StatisticsCount.month == month,
                    StatisticsCount.municipality_id.in_(municipality_ids),
                )
            )
            _store(session, count_direct(session, municipality_ids, month, _month_end(month)))
            done["maanden"] += len(municipality_ids)
        session.execute(delete(StatisticsMark).where(StatisticsMark.id <= newest))
    session.flush()
    return done


def _store(session: Session, months: dict[MonthKey, Counts]) -> None:
    rows = [
        {"municipality_id": mid, "month": month, "figure": figure, "key": key, "n": n}
        for (mid, month), counts in months.items()
        for (figure, key), n in counts.items()
    ]
    for start in range(0, len(rows), 5_000):
        session.execute(StatisticsCount.__table__.insert(), rows[start : start + 5_000])


def count_months(
    session: Session,
    municipality_ids: list[int],
    start: dt.date,
    end: dt.date,
    today: dt.date,
    stored: bool = True,
) -> dict[dt.date, Counts]:
    """The counts per month of the period for these municipalities together.

    With ``stored``, a month comes from the pre-counted figures when it lies wholly in the
    period (or runs to ``today``: nothing is dated later) and the job has counted it since
    its last change (no mark); anything else is counted directly. Either way the numbers
    equal a direct count.
    """
    out: dict[dt.date, Counts] = defaultdict(Counter)
    if not stored:
        for (_, month), counts in count_direct(session, municipality_ids, start, end).items():
            out[month].update(counts)
        return out
    counted = set(
        session.scalars(
            select(StatisticsState.municipality_id).where(
                StatisticsState.municipality_id.in_(municipality_ids)
            )
        )
    )
    marked = set(
        session.execute(
            select(StatisticsMark.municipality_id, StatisticsMark.month)
            .where(
                StatisticsMark.municipality_id.in_(municipality_ids),
                StatisticsMark.month >= first_of_month(start),
                StatisticsMark.month <= end,
            )
            .distinct()
        ).all()
    )
    from_store: dict[dt.date, list[int]] = defaultdict(list)
    for year, number in _months(start, end):
        month = dt.date(year, number, 1)
        piece = (max(start, month), min(end, _month_end(month)))
        whole = piece[0] == month and piece[1] >= min(_month_end(month), today)
        direct = []
        for municipality_id in municipality_ids:
            if whole and municipality_id in counted and (municipality_id, month) not in marked:
                from_store[month].append(municipality_id)
            else:
                direct.append(municipality_id)
        for (_, m), counts in count_direct(session, direct, *piece).items():
            out[m].update(counts)
    if from_store:
        months = list(from_store)
        wanted = {(i, m) for m, group in from_store.items() for i in group}
        ids = sorted({i for i, _ in wanted})
        for mid, month, figure, key, n in session.execute(
            select(
                StatisticsCount.municipality_id,
                StatisticsCount.month,
                StatisticsCount.figure,
                StatisticsCount.key,
                StatisticsCount.n,
            ).where(
                StatisticsCount.municipality_id.in_(ids),
                StatisticsCount.month >= min(months),
                StatisticsCount.month <= max(months),
            )
        ):
            if (mid, month) in wanted:
                out[month][figure, key] += n
    return out


def _days(counts: Counts, figure: str) -> list[tuple[int, int]]:
    return sorted((int(k), n) for (f, k), n in counts.items() if f == figure)


def _median_of(histogram: list[tuple[int, int]]) -> str:
    """The median of a sorted histogram of (value, count), or "—" below the small count."""
    total = sum(n for _, n in histogram)
    if total < SMALL:
        return "—"
    # The middle value(s) from the cumulative counts: positions (total - 1) // 2 and total // 2.
    seen, low = 0, None
    for day, n in histogram:
        if low is None and seen + n > (total - 1) // 2:
            low = day
        if seen + n > total // 2:
            return f"{(low + day) / 2:.0f}"
        seen += n
    raise AssertionError("unreachable: the counts add up to total")


def _per_case(part: int, cases: int) -> str:
    """An average per case, or "—" when either count is too small to show."""
    if cases < SMALL or 0 < part < SMALL:
        return "—"
    return Ratio(part / cases)


def _sum(counts: Counts, figure: str) -> int:
    return sum(n for (f, _), n in counts.items() if f == figure)


def compute(
    session: Session,
    municipality_ids: list[int],
    start: dt.date,
    end: dt.date,
    population: dict[str, int],
    today: dt.date | None = None,
    stored: bool = True,
) -> Statistics:
    """The dashboard's tables for these municipalities and this period (raw counts)."""
    today = today or today_nl()
    codes = list(
        session.scalars(select(Municipality.code).where(Municipality.id.in_(municipality_ids)))
    )
    out = Statistics(sorted(codes), start, end)
    per_month = count_months(session, municipality_ids, start, end, today, stored)
    c: Counts = Counter()
    for counts in per_month.values():
        c.update(counts)

    # -- signals ---------------------------------------------------------------------------
    by_partner = {p: c["signalen", p.value] for p in PartnerType}
    total = sum(by_partner.values())
    months = _months(start, end)
    inhabitants = sum(population.get(code, 0) for code in codes)
    per_1000 = Ratio(1000 * total / inhabitants / len(months)) if inhabitants and total else "—"
    energy_eos = c["eindelevering", ""]
    young = c["signalen_jong", ""]
    in_case = c["in_zaak", ""]
    out.tables.append(
        Table(
            "signalen",
            Text("Signalen"),
            ["", Text("aantal"), Text("aandeel")],
            [
                [Text("signalen"), total, ""],
                *[
                    [
                        Text("partner: %(partner)s", partner=p.value),
                        by_partner[p],
                        share(by_partner[p], total),
                    ]
                    for p in PartnerType
                    if by_partner[p]
                ],
                [
                    Text("eindelevering (van energie)"),
                    energy_eos,
                    share(energy_eos, by_partner[PartnerType.ENERGIE]),
                ],
                [Text("jongeren 18-27"), young, share(young, total)],
                [Text("in een zaak opgenomen"), in_case, share(in_case, total)],
            ],
            # The partner rows split the total.
            partitions=(tuple(range(1, 1 + sum(1 for p in PartnerType if by_partner[p]))),),
            note=(
                Text(
                    "Signalen per 1.000 inwoners per maand: %(figure)s "
                    "(landelijk %(national)s in 2024).",
                    figure=per_1000,
                    national=NATIONAL_SIGNALS_PER_1000_MONTH,
                )
                if inhabitants
                else Text(
                    "Zet het inwonertal in de configuratie (population) voor het cijfer per "
                    "1.000 inwoners."
                )
            ),
        )
    )
    out.tables.append(
        Table(
            "partners",
            Text("Signalen per partnertype"),
            [Text("partnertype"), Text("signalen"), Text("aandeel")],
            [
                [p.value, by_partner[p], share(by_partner[p], total)]
                for p in PartnerType
                if by_partner[p]
            ],
        )
    )

    # -- cases -----------------------------------------------------------------------------
    n_cases, reached = c["zaken", ""], c["bereikt", ""]
    accepted_reached = c["aanvaard_bereikt", ""]
    out.tables.append(
        Table(
            "zaken",
            Text("Zaken en bereik"),
            ["", Text("aantal"), Text("aandeel")],
            [
                [Text("zaken"), n_cases, ""],
                [Text("meervoudig"), c["meervoudig", ""], share(c["meervoudig", ""], n_cases)],
                [
                    Text("opeenvolgend"),
                    c["opeenvolgend", ""],
                    share(c["opeenvolgend", ""], n_cases),
                ],
                [Text("bereikt"), reached, share(reached, n_cases)],
                [
                    Text("hulp aanvaard (van bereikt)"),
                    accepted_reached,
                    share(accepted_reached, reached),
                ],
            ],
            note=Text("Bereikt: minstens één contactpoging waarbij de inwoner is bereikt."),
            partition=False,
        )
    )
    results = {r: c["resultaat", r.value] for r in CaseResult}
    closed = sum(results.values())
    out.tables.append(
        Table(
            "resultaten",
            Text("Eindresultaten (DDAS)"),
            [Text("resultaat"), Text("zaken"), Text("aandeel")],
            [[r.value, n, share(n, closed)] for r, n in results.items() if n],
            note=Text(
                "Hulp aanvaard (quick fix of vervolghulp): %(n)s zaken.", n=c["aanvaard", ""]
            ),
        )
    )
    kinds = [
        (Text("quick fix: (budget)advies"), [CaseResult.ADVIES_QUICK_FIX]),
        (Text("vervolghulp financieel"), [CaseResult.VERVOLGHULP_FINANCIEEL]),
        (Text("vervolghulp niet financieel"), [CaseResult.VERVOLGHULP_NIET_FINANCIEEL]),
        (Text("vervolghulp (soort niet vastgelegd)"), [CaseResult.VERVOLGHULP]),
    ]
    out.tables.append(
        Table(
            "hulpsoort",
            Text("Aanvaarde hulp: quick fix of vervolghulp, financieel of niet"),
            [Text("soort"), Text("zaken"), Text("aandeel")],
            [
                [
                    label,
                    sum(results[r] for r in members),
                    share(sum(results[r] for r in members), c["aanvaard", ""]),
                ]
                for label, members in kinds
            ],
        )
    )

    # -- young people and households with children ----------------------------------------
    groups = [
        (Text("alle zaken"), "alle"),
        (Text("jongeren 18-27"), "jong"),
        (Text("huishoudens met minderjarige kinderen"), "kinderen"),
        (Text("huishoudens zonder minderjarige kinderen"), "zonder_kinderen"),
        (Text("kinderen onbekend (nog geen inwonercheck)"), "kinderen_onbekend"),
    ]
    out.tables.append(
        Table(
            "groepen",
            Text("Jongeren en gezinnen met kinderen"),
            [
                Text("groep"),
                Text("zaken"),
                Text("bereikt"),
                Text("hulp aanvaard"),
                Text("bereik"),
                Text("aanvaard (van bereikt)"),
            ],
            [
                [
                    label,
                    c["groep_zaken", g],
                    c["groep_bereikt", g],
                    c["groep_aanvaard", g],
                    share(c["groep_bereikt", g], c["groep_zaken", g]),
                    share(c["groep_aanvaard_bereikt", g], c["groep_bereikt", g]),
                ]
                for label, g in groups
            ],
            note=Text(
                "Jongeren: een signaal van de zaak noemt leeftijd 18-27. Kinderen: bij de "
                "inwonercheck staat iemand jonger dan 18 op het adres ingeschreven (BRP)."
            ),
            count_columns=(1, 2, 3),
            share_columns=(4, 5),
            # With, without and not known split all cases ("alle zaken"); young people do not
            # split anything shown.
            partitions=((2, 3, 4),),
        )
    )

    # -- attempts --------------------------------------------------------------------------
    per_kind: Counter[str] = Counter()
    reached_kind: Counter[str] = Counter()
    per_part: Counter[str] = Counter()
    for (figure, key), n in c.items():
        if figure != "poging":
            continue
        kind, part, hit = key.split("|")
        per_kind[kind] += n
        per_part[part] += n
        if hit == "1":
            reached_kind[kind] += n
    out.tables.append(
        Table(
            "pogingen",
            Text("Contactpogingen per soort en bereik per kanaal"),
            [Text("soort"), Text("pogingen"), Text("bereikt"), Text("bereik"), Text("per zaak")],
            [
                [
                    k.value,
                    per_kind[k.value],
                    reached_kind[k.value],
                    share(reached_kind[k.value], per_kind[k.value]),
                    _per_case(per_kind[k.value], n_cases),
                ]
                for k in ContactKind
                if per_kind[k.value]
            ],
            count_columns=(1, 2),
            share_columns=(3, 4),
        )
    )
    out.tables.append(
        Table(
            "pogingen_per_zaak",
            Text("Contactpogingen per zaak"),
            ["", Text("pogingen"), Text("per zaak")],
            [
                [
                    Text("alle soorten"),
                    sum(per_kind.values()),
                    _per_case(sum(per_kind.values()), n_cases),
                ]
            ],
            partition=False,
        )
    )
    out.tables.append(
        Table(
            "dagdeel",
            Text("Contactpogingen per dagdeel"),
            [Text("dagdeel"), Text("pogingen"), Text("aandeel")],
            [[p, n, share(n, sum(per_part.values()))] for p, n in sorted(per_part.items())],
        )
    )

    # -- speed -----------------------------------------------------------------------------
    to_attempt, to_talk = _days(c, "dagen_poging"), _days(c, "dagen_gesprek")
    n_attempt, n_talk = sum(n for _, n in to_attempt), sum(n for _, n in to_talk)
    out.tables.append(
        Table(
            "snelheid",
            Text("Snelheid"),
            ["", Text("zaken"), Text("mediaan dagen"), Text("binnen norm")],
            [
                [
                    Text("signaal → eerste poging"),
                    n_attempt,
                    _median_of(to_attempt),
                    share(sum(n for d, n in to_attempt if d <= 14), n_attempt),
                ],
                [
                    Text("signaal → eerste gesprek"),
                    n_talk,
                    _median_of(to_talk),
                    share(sum(n for d, n in to_talk if d <= 28), n_talk),
                ],
            ],
            note=Text("Normen: eerste poging binnen 14 dagen, eerste gesprek binnen 4 weken."),
            share_columns=(3,),
            partition=False,
        )
    )

    # -- risk bands ------------------------------------------------------------------------
    order = {"hoog": 0, "midden": 1, "laag": 2, "": 3}
    band_labels = {"hoog": Text("hoog"), "midden": Text("midden"), "laag": Text("laag"),
                   "": Text("geen score")}  # fmt: skip
    bands = sorted({k for (f, k) in c if f == "band"}, key=lambda b: order.get(b, 3))
    out.tables.append(
        Table(
            "risicoband",
            Text("Risicoband en uitkomst"),
            [Text("band"), Text("zaken"), Text("hulp aanvaard"), Text("aandeel")],
            [
                [
                    band_labels.get(b, b),
                    c["band", b],
                    c["band_aanvaard", b],
                    share(c["band_aanvaard", b], c["band", b]),
                ]
                for b in bands
            ],
            note=Text("De band ordent het werk; ieder huishouden krijgt een aanbod van hulp."),
            count_columns=(1, 2),
            share_columns=(3,),
        )
    )

    # -- trends by month -------------------------------------------------------------------
    rows = []
    for y, m in months:
        mc = per_month.get(dt.date(y, m, 1), Counter())
        signals = _sum(mc, "signalen")
        cases, hit = mc["zaken", ""], mc["bereikt", ""]
        rows.append(
            [
                f"{y}-{m:02d}",
                signals,
                Ratio(1000 * signals / inhabitants) if inhabitants else "—",
                cases,
                hit,
                share(hit, cases),
                share(mc["aanvaard_bereikt", ""], hit),
                _median_of(_days(mc, "dagen_poging")),
            ]
        )
    out.tables.append(
        Table(
            "per_maand",
            Text("Per maand"),
            [
                Text("maand"),
                Text("signalen"),
                Text("per 1.000 inwoners"),
                Text("zaken"),
                Text("bereikt"),
                Text("bereik"),
                Text("aanvaard (van bereikt)"),
                Text("mediaan dagen tot eerste poging"),
            ],
            rows,
            note=Text(
                "Landelijk: %(national)s signalen per 1.000 inwoners per maand (2024). Norm "
                "eerste poging: 14 dagen.",
                national=NATIONAL_SIGNALS_PER_1000_MONTH,
            ),
            count_columns=(1, 3, 4),
            share_columns=(2, 5, 6, 7),
            # Each month's count is part of the period's total shown above.
            partition=True,
        )
    )
    return out


def shown(table: Table) -> list[list[str]]:
    """The table's rows as shown and downloaded: counts suppressed column by column, and
    the shares of a row with a suppressed count hidden too."""
    rows = [[c if isinstance(c, str) else str(c) for c in r] for r in table.rows]  # Text stays
    for column in table.count_columns:
        values = [r[column] if isinstance(r[column], int) else None for r in table.rows]
        cells = suppress(values, partition=False)
        for group in table.groups():  # each distribution: no hidden cell from its total
            for i, cell in zip(group, suppress([values[i] for i in group]), strict=True):
                if cell == SECONDARY:
                    cells[i] = cell
        for row, cell in zip(rows, cells, strict=True):
            if cell != "—":
                row[column] = cell
    for row in rows:
        if any(row[c] in ("<5", SECONDARY) for c in table.count_columns):
            for c in table.share_columns:
                if row[c]:
                    row[c] = "—"
    return rows
