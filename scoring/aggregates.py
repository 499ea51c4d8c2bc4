"""Per-household aggregates of a signal history: the raw input of the feature pipeline.

The scoring job (and the synthetic cohort) reduce the signals a household received in the
12 months up to its scoring moment to one row of floats in the order of :data:`RAW_COLUMNS`.
Everything a model may see is in that row; nothing about the person is (see
``scoring.features.EXCLUDED_INPUTS``).

Time is counted in whole days from an origin (the synthetic cohort uses 2023-01-01).
A signal "``months_back``" months before the scoring moment: 0 is the current matching
month (the case being scored); the *6-month* counts cover months 0-6 (the current month and
the previous six, the window of an *opeenvolgend* signal); the *12-month* counts months
0-11.
"""

from __future__ import annotations

import numpy as np

from signals.enums import PartnerType

#: The partner types that carry their own block of columns, in column order.
PARTNERS: tuple[PartnerType, ...] = (
    PartnerType.HUUR,
    PartnerType.ENERGIE,
    PartnerType.WATER,
    PartnerType.ZORG,
)
#: Short lower-case column prefixes of :data:`PARTNERS`.
PARTNER_KEYS: tuple[str, ...] = ("huur", "energie", "water", "zorg")

#: Per partner type: signals in months 0-6 and 0-11, a signal in the current month (0/1),
#: the latest signal's amount, its monthly amount (``maandbedrag``), the days in arrears at
#: the scoring moment (scoring date minus ``ontstaansdatum`` of the latest signal) and the
#: amount of the earliest signal of that partner type in the 12 months (for growth).
PARTNER_FIELDS: tuple[str, ...] = (
    "signals_6m",
    "signals_12m",
    "current",
    "amount",
    "monthly",
    "days",
    "first_amount",
)

#: Household-wide columns: counts of flagged signals in 12 months, the days from the
#: scoring moment until an announced eviction date (NaN when none is known) and the days
#: since the household's first signal in the 12 months.
HOUSEHOLD_FIELDS: tuple[str, ...] = (
    "crisis_signals",
    "warm_handover_signals",
    "end_of_supply_signals",
    "outside_window_signals",
    "eviction_days",
    "days_since_first_signal",
)

RAW_COLUMNS: tuple[str, ...] = (
    *(f"{p}_{f}" for p in PARTNER_KEYS for f in PARTNER_FIELDS),
    *HOUSEHOLD_FIELDS,
)
COLUMN: dict[str, int] = {name: i for i, name in enumerate(RAW_COLUMNS)}

#: One signal, as the cohort keeps them (days counted from the origin).
SIGNAL_DTYPE = np.dtype(
    [
        ("household", np.int32),
        ("partner", np.int8),  # index into PARTNERS
        ("months_back", np.int8),
        ("signal_day", np.int32),
        ("arrears_start_day", np.int32),
        ("amount", np.float64),
        ("monthly_amount", np.float64),
        ("crisis", np.bool_),
        ("warm_handover", np.bool_),
        ("end_of_supply", np.bool_),
        ("eviction_day", np.int32),  # -1: no eviction date
        ("outside_window", np.bool_),
    ]
)


def outside_window(partner: np.ndarray, days: np.ndarray, end_of_supply: np.ndarray) -> np.ndarray:
    """Vectorised convenant window check (same rules as ``signals.rules.window_flag``).

    Huur, Energie, Water: inside from 30 days of arrears (end-of-supply always inside);
    Zorg: inside from 30 to 100 days.
    """
    zorg = partner == PARTNERS.index(PartnerType.ZORG)
    early = (days < 30) & ~end_of_supply
    late = zorg & (days > 100)
    return early | late


def aggregate(signals: np.ndarray, scoring_day: np.ndarray) -> np.ndarray:
    """Reduce signals (:data:`SIGNAL_DTYPE`) to one raw row per household.

    ``scoring_day[h]`` is household ``h``'s scoring moment; only signals with
    ``months_back`` 0-11 are used. Returns a float array of shape (households, columns).
    """
    n = len(scoring_day)
    raw = np.zeros((n, len(RAW_COLUMNS)))
    s = signals[signals["months_back"] <= 11]
    hh = s["household"].astype(np.int64)
    part = s["partner"].astype(np.int64)
    width = len(PARTNER_FIELDS)

    key = hh * len(PARTNERS) + part
    for field, mask in (("signals_6m", s["months_back"] <= 6), ("signals_12m", None)):
        counts = np.bincount(key if mask is None else key[mask], minlength=n * len(PARTNERS))
        for p in range(len(PARTNERS)):
            raw[:, p * width + PARTNER_FIELDS.index(field)] = counts[p :: len(PARTNERS)]
    # Latest and earliest signal per (household, partner): sort by key, then months back.
    order = np.lexsort((s["months_back"], key))
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    ends = np.r_[starts[1:], len(order)] - 1
    latest, earliest = s[order[starts]], s[order[ends]]
    g_hh = latest["household"].astype(np.int64)
    base = latest["partner"].astype(np.int64) * width
    raw[g_hh, base + PARTNER_FIELDS.index("current")] = latest["months_back"] == 0
    raw[g_hh, base + PARTNER_FIELDS.index("amount")] = latest["amount"]
    raw[g_hh, base + PARTNER_FIELDS.index("monthly")] = latest["monthly_amount"]
    raw[g_hh, base + PARTNER_FIELDS.index("days")] = scoring_day[g_hh] - latest["arrears_start_day"]
    raw[g_hh, base + PARTNER_FIELDS.index("first_amount")] = earliest["amount"]

    for field, flag in (
        ("crisis_signals", "crisis"),
        ("warm_handover_signals", "warm_handover"),
        ("end_of_supply_signals", "end_of_supply"),
        ("outside_window_signals", "outside_window"),
    ):
        raw[:, COLUMN[field]] = np.bincount(hh, weights=s[flag].astype(float), minlength=n)
    eviction = np.full(n, np.inf)
    has_eviction = s["eviction_day"] >= 0
    np.minimum.at(eviction, hh[has_eviction], s["eviction_day"][has_eviction].astype(float))
    days_until = eviction - scoring_day
    raw[:, COLUMN["eviction_days"]] = np.where(np.isfinite(days_until), days_until, np.nan)
    first = np.full(n, np.inf)
    np.minimum.at(first, hh, s["signal_day"].astype(float))
    raw[:, COLUMN["days_since_first_signal"]] = np.where(
        np.isfinite(first), scoring_day - first, 0.0
    )
    return raw
