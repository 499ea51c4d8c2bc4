"""Business rules of the intake that are not about input shape: elfproef, convenant windows."""

from __future__ import annotations

import calendar
import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from signals.enums import PartnerType, WindowFlag

NL = ZoneInfo("Europe/Amsterdam")


def today_nl() -> dt.date:
    """Today as a Dutch partner means it: a signal sent just after midnight is not future."""
    return dt.datetime.now(NL).date()


def bsn_valid(bsn: str) -> bool:
    """The BSN elfproef: 9 digits, weights 9..2 and -1, sum divisible by 11, not all zeros."""
    if len(bsn) != 9 or not bsn.isdigit() or bsn == "000000000":
        return False
    total = sum(int(d) * w for d, w in zip(bsn[:8], range(9, 1, -1), strict=True))
    return (total - int(bsn[8])) % 11 == 0


def add_months(day: dt.date, months: int) -> dt.date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return day.replace(
        year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1])
    )


def window_flag(
    partner_type: PartnerType,
    arrears_start: dt.date,
    signal_date: dt.date,
    amount: Decimal,
    monthly_amount: Decimal | None,
    end_of_supply: bool,
) -> WindowFlag:
    """Where a signal stands against the convenant window of its partner type (DOMAIN.md).

    A signal outside its window is accepted and flagged for review, never dropped.
    """
    days = (signal_date - arrears_start).days
    match partner_type:
        case PartnerType.HUUR | PartnerType.ENERGIE | PartnerType.WATER:
            if end_of_supply:
                return WindowFlag.INSIDE  # end-of-supply and disconnection: always handled
            return WindowFlag.INSIDE if days >= 30 else WindowFlag.TOO_EARLY
        case PartnerType.ZORG:
            if days < 30:
                return WindowFlag.TOO_EARLY
            return WindowFlag.INSIDE if days <= 100 else WindowFlag.TOO_LATE
        case PartnerType.CAK_ZORGVERZEKERINGEN:
            inside = signal_date >= add_months(arrears_start, 6)
            return WindowFlag.INSIDE if inside else WindowFlag.TOO_EARLY
        case PartnerType.HYPOTHEEK:
            if monthly_amount:
                inside = amount >= 2 * monthly_amount
            else:
                inside = signal_date >= add_months(arrears_start, 2)
            return WindowFlag.INSIDE if inside else WindowFlag.TOO_EARLY
        case PartnerType.CAK_EIGEN_BIJDRAGE:
            inside = amount >= 100 and signal_date >= add_months(arrears_start, 5)
            return WindowFlag.INSIDE if inside else WindowFlag.TOO_EARLY
        case PartnerType.DUO:
            return WindowFlag.INSIDE if amount >= 270 else WindowFlag.TOO_EARLY
        case _:
            return WindowFlag.NO_WINDOW


def age_band(birth_date: dt.date | None, on: dt.date) -> str | None:
    """A coarse age band for statistics and bias audits (never a model input)."""
    if birth_date is None:
        return None
    age = on.year - birth_date.year - ((on.month, on.day) < (birth_date.month, birth_date.day))
    if age < 18:
        return "<18"
    if age <= 27:
        return "18-27"
    if age <= 44:
        return "28-44"
    if age <= 64:
        return "45-64"
    return "65+"
