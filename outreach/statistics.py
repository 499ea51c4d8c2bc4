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
* the risk band is the one the case had when it was planned.
"""

from __future__ import annotations

import datetime as dt
import statistics as stats
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, and_, extract, func, select
from sqlalchemy.orm import Session

from outreach.enums import HELP_ACCEPTED, CaseResult, ContactKind
from outreach.models import Case, CaseSignal, ContactAttempt
from signals.enums import PartnerType
from signals.models import Municipality, Signal

NATIONAL_SIGNALS_PER_1000_MONTH = 4.4  # 2024 (DOMAIN.md)
SMALL = 5
#: A count hidden only so that another, small one cannot be worked out from the total.
SECONDARY = "(afgeschermd)"


@dataclass
class Table:
    """One table of the dashboard: a title, column names and rows of label + numbers."""

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


def share(part: int | None, whole: int | None) -> str:
    """A percentage, or "—" when either count is too small to show."""
    if part is None or not whole or whole < SMALL or 0 < part < SMALL:
        return "—"
    return f"{100 * part / whole:.1f}%"


def _months(start: dt.date, end: dt.date) -> list[tuple[int, int]]:
    out, year, month = [], start.year, start.month
    while (year, month) <= (end.year, end.month):
        out.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def compute(
    session: Session,
    municipality_ids: list[int],
    start: dt.date,
    end: dt.date,
    population: dict[str, int],
) -> Statistics:
    """The dashboard's tables for these municipalities and this period (raw counts)."""
    codes = list(
        session.scalars(select(Municipality.code).where(Municipality.id.in_(municipality_ids)))
    )
    out = Statistics(sorted(codes), start, end)
    in_period = and_(
        Signal.municipality_id.in_(municipality_ids),
        Signal.signal_date >= start,
        Signal.signal_date <= end,
    )
    start_moment = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    end_moment = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    case_in_period = and_(
        Case.municipality_id.in_(municipality_ids),
        Case.created_at >= start_moment,
        Case.created_at < end_moment,
    )

    # -- signals ---------------------------------------------------------------------------
    by_partner = dict(
        session.execute(
            select(Signal.partner_type, func.count()).where(in_period).group_by(Signal.partner_type)
        ).all()
    )
    total = sum(by_partner.values())
    months = _months(start, end)
    inhabitants = sum(population.get(code, 0) for code in codes)
    per_1000 = f"{1000 * total / inhabitants / len(months):.2f}" if inhabitants and total else "—"
    energy_eos = session.scalar(
        select(func.count()).where(
            in_period, Signal.partner_type == PartnerType.ENERGIE, Signal.end_of_supply.is_(True)
        )
    )
    young = session.scalar(select(func.count()).where(in_period, Signal.age_band == "18-27"))
    in_case = session.scalar(
        select(func.count()).select_from(Signal).join(CaseSignal).where(in_period)
    )
    out.tables.append(
        Table(
            "signalen",
            "Signalen",
            ["", "aantal", "aandeel"],
            [
                ["signalen", total, ""],
                *[
                    [
                        f"partner: {p.value}",
                        by_partner.get(p, 0),
                        share(by_partner.get(p, 0), total),
                    ]
                    for p in PartnerType
                    if by_partner.get(p)
                ],
                [
                    "eindelevering (van energie)",
                    energy_eos,
                    share(energy_eos, by_partner.get(PartnerType.ENERGIE, 0)),
                ],
                ["jongeren 18-27", young, share(young, total)],
                ["in een zaak opgenomen", in_case, share(in_case, total)],
            ],
            note=(
                f"Signalen per 1.000 inwoners per maand: {per_1000} "
                f"(landelijk {NATIONAL_SIGNALS_PER_1000_MONTH} in 2024)."
                if inhabitants
                else "Zet het inwonertal in de configuratie (population) voor het cijfer per "
                "1.000 inwoners."
            ),
        )
    )

    out.tables.append(
        Table(
            "partners",
            "Signalen per partnertype",
            ["partnertype", "signalen", "aandeel"],
            [
                [p.value, by_partner.get(p, 0), share(by_partner.get(p, 0), total)]
                for p in PartnerType
                if by_partner.get(p)
            ],
        )
    )

    # -- per month -------------------------------------------------------------------------
    year, month = extract("year", Signal.signal_date), extract("month", Signal.signal_date)
    monthly = {
        (int(y), int(m)): n
        for y, m, n in session.execute(
            select(year, month, func.count()).where(in_period).group_by(year, month)
        ).all()
    }
    out.tables.append(
        Table(
            "per_maand",
            "Signalen per maand",
            ["maand", "signalen", "per 1.000 inwoners"],
            [
                [
                    f"{y}-{m:02d}",
                    monthly.get((y, m), 0),
                    f"{1000 * monthly.get((y, m), 0) / inhabitants:.2f}" if inhabitants else "—",
                ]
                for y, m in months
            ],
        )
    )

    # -- cases -----------------------------------------------------------------------------
    cases = session.execute(
        select(
            func.count(),
            func.sum(Case.meervoudig.cast(Integer)),
            func.sum(Case.opeenvolgend.cast(Integer)),
        ).where(case_in_period)
    ).one()
    n_cases = cases[0] or 0
    reached_ids = (
        select(ContactAttempt.case_id)
        .where(ContactAttempt.reached.is_(True))
        .distinct()
        .scalar_subquery()
    )
    reached = session.scalar(select(func.count()).where(case_in_period, Case.id.in_(reached_ids)))
    results = dict(
        session.execute(
            select(Case.result, func.count())
            .where(case_in_period, Case.result.is_not(None))
            .group_by(Case.result)
        ).all()
    )
    accepted = sum(n for r, n in results.items() if r in HELP_ACCEPTED)
    accepted_reached = session.scalar(
        select(func.count()).where(
            case_in_period, Case.id.in_(reached_ids), Case.result.in_(list(HELP_ACCEPTED))
        )
    )
    out.tables.append(
        Table(
            "zaken",
            "Zaken en bereik",
            ["", "aantal", "aandeel"],
            [
                ["zaken", n_cases, ""],
                ["meervoudig", cases[1] or 0, share(cases[1] or 0, n_cases)],
                ["opeenvolgend", cases[2] or 0, share(cases[2] or 0, n_cases)],
                ["bereikt", reached, share(reached, n_cases)],
                ["hulp aanvaard (van bereikt)", accepted_reached, share(accepted_reached, reached)],
            ],
            note="Bereikt: minstens één contactpoging waarbij de inwoner is bereikt.",
            partition=False,
        )
    )
    out.tables.append(
        Table(
            "resultaten",
            "Eindresultaten (DDAS)",
            ["resultaat", "zaken", "aandeel"],
            [
                [r.value, results.get(r, 0), share(results.get(r, 0), sum(results.values()))]
                for r in CaseResult
                if results.get(r)
            ],
            note=f"Hulp aanvaard (quick fix of vervolghulp): {accepted} zaken.",
        )
    )

    # -- attempts --------------------------------------------------------------------------
    attempts = session.execute(
        select(ContactAttempt.kind, ContactAttempt.dagdeel, ContactAttempt.reached, func.count())
        .join(Case, Case.id == ContactAttempt.case_id)
        .where(case_in_period)
        .group_by(ContactAttempt.kind, ContactAttempt.dagdeel, ContactAttempt.reached)
    ).all()
    per_kind: Counter[ContactKind] = Counter()
    reached_kind: Counter[ContactKind] = Counter()
    per_part: Counter[str] = Counter()
    for kind, part, hit, n in attempts:
        per_kind[kind] += n
        per_part[part.value] += n
        if hit:
            reached_kind[kind] += n
    out.tables.append(
        Table(
            "pogingen",
            "Contactpogingen per soort en bereik per kanaal",
            ["soort", "pogingen", "bereikt", "bereik"],
            [
                [k.value, per_kind[k], reached_kind[k], share(reached_kind[k], per_kind[k])]
                for k in ContactKind
                if per_kind[k]
            ],
            count_columns=(1, 2),
            share_columns=(3,),
        )
    )
    out.tables.append(
        Table(
            "dagdeel",
            "Contactpogingen per dagdeel",
            ["dagdeel", "pogingen", "aandeel"],
            [[p, n, share(n, sum(per_part.values()))] for p, n in sorted(per_part.items())],
        )
    )

    # -- speed -----------------------------------------------------------------------------
    first_signal = (
        select(CaseSignal.case_id, func.min(Signal.signal_date).label("day"))
        .join(Signal, Signal.id == CaseSignal.signal_id)
        .group_by(CaseSignal.case_id)
        .subquery()
    )
    first_attempt = (
        select(
            ContactAttempt.case_id,
            func.min(ContactAttempt.at).label("any"),
        )
        .group_by(ContactAttempt.case_id)
        .subquery()
    )
    first_reached = (
        select(ContactAttempt.case_id, func.min(ContactAttempt.at).label("at"))
        .where(ContactAttempt.reached.is_(True))
        .group_by(ContactAttempt.case_id)
        .subquery()
    )
    rows = session.execute(
        select(first_signal.c.day, first_attempt.c["any"], first_reached.c.at)
        .select_from(Case)
        .join(first_signal, first_signal.c.case_id == Case.id)
        .join(first_attempt, first_attempt.c.case_id == Case.id)
        .outerjoin(first_reached, first_reached.c.case_id == Case.id)
        .where(case_in_period)
    ).all()
    to_attempt = [(a.date() - d).days for d, a, _ in rows]
    to_talk = [(r.date() - d).days for d, _, r in rows if r is not None]
    out.tables.append(
        Table(
            "snelheid",
            "Snelheid",
            ["", "zaken", "mediaan dagen", "binnen norm"],
            [
                [
                    "signaal → eerste poging",
                    len(to_attempt),
                    _median(to_attempt),
                    share(sum(1 for d in to_attempt if d <= 14), len(to_attempt)),
                ],
                [
                    "signaal → eerste gesprek",
                    len(to_talk),
                    _median(to_talk),
                    share(sum(1 for d in to_talk if d <= 28), len(to_talk)),
                ],
            ],
            note="Normen: eerste poging binnen 14 dagen, eerste gesprek binnen 4 weken.",
            share_columns=(3,),
            partition=False,
        )
    )

    # -- risk bands ------------------------------------------------------------------------
    bands = session.execute(
        select(
            Case.band,
            func.count(),
            func.sum(Case.result.in_(list(HELP_ACCEPTED)).cast(Integer)),
        )
        .where(case_in_period)
        .group_by(Case.band)
    ).all()
    order = {"hoog": 0, "midden": 1, "laag": 2, None: 3}
    out.tables.append(
        Table(
            "risicoband",
            "Risicoband en uitkomst",
            ["band", "zaken", "hulp aanvaard", "aandeel"],
            [
                [band or "geen score", n, a or 0, share(a or 0, n)]
                for band, n, a in sorted(bands, key=lambda b: order.get(b[0], 3))
            ],
            note="De band ordent het werk; ieder huishouden krijgt een aanbod van hulp.",
            count_columns=(1, 2),
            share_columns=(3,),
        )
    )
    return out


def _median(values: list[int]) -> str:
    return f"{stats.median(values):.0f}" if len(values) >= SMALL else "—"


def shown(table: Table) -> list[list[str]]:
    """The table's rows as shown and downloaded: counts suppressed column by column, and
    the shares of a row with a suppressed count hidden too."""
    rows = [list(map(str, r)) for r in table.rows]
    for column in table.count_columns:
        values = [r[column] if isinstance(r[column], int) else None for r in table.rows]
        for row, text in zip(rows, suppress(values, table.partition), strict=True):
            if text != "—":
                row[column] = text
    for row in rows:
        if any(row[c] in ("<5", SECONDARY) for c in table.count_columns):
            for c in table.share_columns:
                if row[c]:
                    row[c] = "—"
    return rows
