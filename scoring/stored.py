"""Stored signals as arrays: what the scoring job and the live training set read.

One query per municipality; the household of a signal is the keyed hash of its BSN, else of
its address (``coalesce(bsn_hash, address_hash)``). Days are counted from :data:`ORIGIN`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scoring.aggregates import PARTNERS, SIGNAL_DTYPE
from signals.enums import WindowFlag
from signals.models import Client, Signal

ORIGIN = dt.date(2000, 1, 1)
_PARTNER_INDEX = {partner: i for i, partner in enumerate(PARTNERS)}
UNKNOWN = "onbekend"


def day_number(day: dt.date) -> int:
    return day.toordinal() - ORIGIN.toordinal()


def month_number(day: dt.date) -> int:
    return day.year * 12 + day.month - 1


@dataclass
class StoredSignals:
    """A municipality's signals: per-signal arrays, and per-household audit attributes.

    ``signals`` uses :data:`SIGNAL_DTYPE` with ``months_back`` unset (see
    :meth:`as_of`); ``month`` is each signal's calendar month and ``ids`` its database id.
    ``age_band`` and ``gender`` (audit dimensions only, never model inputs) come from the
    household's newest signal.
    """

    keys: list[str]
    signals: np.ndarray
    month: np.ndarray
    ids: np.ndarray
    age_band: np.ndarray
    gender: np.ndarray

    def as_of(self, month: int, mask: np.ndarray | None = None) -> np.ndarray:
        """The signals (optionally ``mask``-ed) with ``months_back`` counted from ``month``."""
        out = self.signals if mask is None else self.signals[mask]
        out = out.copy()
        back = month - (self.month if mask is None else self.month[mask])
        out["months_back"] = np.clip(back, -1, 127)
        return out

    def newest_id(self) -> np.ndarray:
        newest = np.zeros(len(self.keys), dtype=np.int64)
        np.maximum.at(newest, self.signals["household"], self.ids)
        return newest


def load_signals(
    session: Session,
    municipality_id: int,
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> StoredSignals:
    """The municipality's signals of the four scored partner types, by signal date."""
    household = func.coalesce(Signal.bsn_hash, Signal.address_hash)
    query = (
        select(
            household,
            Signal.id,
            Signal.partner_type,
            Signal.signal_date,
            Signal.arrears_start_date,
            Signal.amount,
            Signal.monthly_amount,
            Signal.crisis,
            Signal.warm_handover,
            Signal.end_of_supply,
            Signal.eviction_date,
            Signal.window_flag,
            Signal.age_band,
            Client.gender,
        )
        .join(Client, Client.id == Signal.client_id)
        .where(Signal.municipality_id == municipality_id)
        .where(Signal.partner_type.in_(PARTNERS))
        .order_by(Signal.id)
    )
    if since is not None:
        query = query.where(Signal.signal_date >= since)
    if until is not None:
        query = query.where(Signal.signal_date <= until)
    rows = session.execute(query).all()
    keys = sorted({r[0] for r in rows})
    index = {key: i for i, key in enumerate(keys)}
    signals = np.zeros(len(rows), dtype=SIGNAL_DTYPE)
    month = np.zeros(len(rows), dtype=np.int64)
    ids = np.zeros(len(rows), dtype=np.int64)
    age_band = np.full(len(keys), UNKNOWN, dtype=object)
    gender = np.full(len(keys), UNKNOWN, dtype=object)
    outside = (WindowFlag.TOO_EARLY, WindowFlag.TOO_LATE)
    for i, r in enumerate(rows):  # ordered by id: the last one seen is the newest
        h = index[r[0]]
        ids[i] = r.id
        month[i] = month_number(r.signal_date)
        signals[i] = (
            h,
            _PARTNER_INDEX[r.partner_type],
            0,
            day_number(r.signal_date),
            day_number(r.arrears_start_date),
            float(r.amount),
            float(r.monthly_amount or 0),
            r.crisis,
            r.warm_handover,
            r.end_of_supply,
            day_number(r.eviction_date) if r.eviction_date else -1,
            r.window_flag in outside,
        )
        if r.age_band:
            age_band[h] = r.age_band
        if r.gender is not None:
            gender[h] = r.gender.value
    return StoredSignals(keys, signals, month, ids, age_band, gender)
