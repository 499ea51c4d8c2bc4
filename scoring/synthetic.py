"""A documented synthetic cohort of signalled households, for training and evaluating the score.

Never real people. Each household is observed at one *scoring moment* (the end of the
matching month in which it has at least one signal), with its signal history over the
12 months before and a 12-month outcome: an eviction procedure or the loss of the home.
The cohort keeps each household's TRUE outcome probability, so an evaluation can compare a
model with the oracle. Anchors are from ``DOMAIN.md`` ("National figures" and "Signals,
cases, outcomes"); ``tests/scoring/test_synthetic.py`` checks that the realised figures
land on them.

The generative process, step by step:

1. **Audit attributes** (never model inputs): age band ``18-27`` 22%, ``28-44`` 36%,
   ``45-64`` 30%, ``65+`` 12%; gender ``Vrouw`` 52%, else ``Man``; minor children with a
   probability by age band (18%, 50%, 32%, 3%).
2. **Financial strain**, a latent standard-normal score per household, shifted a little by
   the audit attributes (children +0.10; ``18-27`` +0.08, ``45-64`` -0.02, ``65+`` -0.15).
   Strain shapes the *signal pattern* (how many, how large, how fast growing). The outcome
   never sees strain or an audit attribute directly: both reach it only through observable
   signals, so the subgroups' true-positive rates stay close (ratios near 1).
3. **Scoring date**, uniform over 24 months from 2023-01-01 (so time-based splits work);
   monthly amounts are indexed by 3% a year from that origin.
4. **Partner mix.** Every new partner type is drawn from the national shares of the first
   half of 2024 (Zorg 41%, Energie 20%, Huur 20%, Water 18%; the 1% of other partners is
   left out and the four are renormalised), tilted slightly by the audit attributes
   (young: more Zorg, less Huur; children: more Huur and Energie; 65+: more Water, less
   Zorg).
5. **Current month.** One signal; with probability about 11% (rising with strain) a second
   partner type in the same month (*meervoudig*), and in 15% of those a third.
6. **Repeats.** With probability about 40% (rising with strain) 1-4 signals in distinct
   months of the previous six (*opeenvolgend*); each is from a partner type already
   signalling this month with probability 0.6, else a new draw. With probability about
   18% one or two older signals 7-11 months back. Together about half of the households
   have a single signal and no repeat.
7. **Amounts.** A monthly amount per household and partner type, uniform in its range
   (rent 480-1150, energy 70-260, water 18-45, health premium 135-165 euro a month; larger
   for households with children). The latest signal of a partner type is 1-6 months in
   arrears (1 + a Poisson count rising with strain, capped at 6; Zorg mostly 1-3 months).
   An earlier signal of the same partner type is ``g`` months per two months back lower,
   where the household's growth ``g`` ~ Normal(0.3 + 0.3 strain, 0.8): arrears mostly grow
   between repeats, sometimes shrink. The amount is the months times the monthly amount
   times Uniform(0.9, 1.05); the arrears began that many months (+0-25 days) before the
   signal date. 5% of Huur/Energie/Water signals come before 30 days of arrears (too early
   for the convenant window); Zorg signals after 100 days are too late.
8. **Flags.** About a quarter of energy signals are an end-of-supply signal (rising with
   strain), about 2.5% of signals carry the crisis flag and 6% a warm hand-over. The latest
   rent signal carries an eviction date with probability ``sigmoid(-4.6 + 0.95 months +
   0.2 strain)``, 3-150 days after the scoring date.
9. **True log-odds**, a function of the observable aggregates only
   (:func:`true_log_odds`, on the :data:`~scoring.aggregates.RAW_COLUMNS` row), with
   non-negative weights so that more, older or larger arrears never lower the risk:
   rent arrears weigh most (a rent signal, the months of rent arrears and their growth
   between repeats), an eviction date adds more the nearer it is, then the other partner
   types, counts, amount, duration, crisis and warm hand-over flags, plus three
   interactions a simple rule misses: rent arrears that grow while an energy signal
   arrives this month, and an end-of-supply signal together with rent arrears (a flag and
   a months term). Weights are in :data:`WEIGHTS`; per month of arrears rent weighs more
   than any other partner type, and the eviction terms are rent-only. Besides the levels
   the rules see (rent, amount, counts), risk also sits in what they do not see: the
   duration of arrears, growth between signals, small-euro but long arrears at energy,
   water or health insurers (think private-rent tenants whose landlord is no partner),
   end-of-supply and crisis flags. The intercept puts the base rate near 4%; the oracle
   AUC is about 0.94 (an upper bound, above Spokane's model at 0.81).
10. **Outcome** ~ Bernoulli(true probability).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import numpy as np

from scoring.aggregates import (
    COLUMN,
    PARTNER_KEYS,
    PARTNERS,
    SIGNAL_DTYPE,
    aggregate,
    outside_window,
)
from signals.enums import PartnerType
from signals.synthetic import PROFILES, Population, make_row, spoil

ORIGIN = dt.date(2023, 1, 1)
SPAN_DAYS = 730
AGE_BANDS: tuple[str, ...] = ("18-27", "28-44", "45-64", "65+")
GENDERS: tuple[str, ...] = ("Man", "Vrouw")

_AGE_P = np.array([0.22, 0.36, 0.30, 0.12])
_CHILD_P = np.array([0.18, 0.50, 0.32, 0.03])
_AGE_STRAIN = np.array([0.08, 0.0, -0.02, -0.15])
#: National partner shares in PARTNERS order (Huur, Energie, Water, Zorg), renormalised.
SHARES = np.array([0.20, 0.20, 0.18, 0.41]) / 0.99
#: Log-weight tilts of the partner mix by age band and for children (PARTNERS order).
_AGE_TILT = np.array(
    [
        [-0.12, 0.0, -0.05, 0.12],
        [0.02, 0.0, 0.0, 0.0],
        [0.04, 0.0, 0.0, -0.03],
        [0.0, 0.0, 0.1, -0.1],
    ]
)
_CHILD_TILT = np.array([0.12, 0.08, 0.0, -0.08])
#: Repeats of an already signalling partner type favour the common ones a little less than
#: the shares; this correction brings the realised signal shares back onto the anchors.
_DRAW_CORRECTION = np.array([0.95, 0.95, 0.96, 1.06])
MONTHLY_RANGE = np.array([[480.0, 1150.0], [70.0, 260.0], [18.0, 45.0], [135.0, 165.0]])
MONTH_DAYS = 30.4
INTERCEPT = -7.6
#: Weights of the true log-odds (step 9); all non-negative, so risk is monotone.
WEIGHTS: dict[str, float] = {
    "rent": 0.4,
    "rent_months": 0.5,
    "eviction_date": 2.2,
    "eviction_nearness": 1.5,
    "energie": 0.35,
    "water": 0.12,
    "zorg": 0.05,
    "extra_partners": 0.15,
    "signals_12m": 0.03,
    "log_total_amount": 0.05,
    "other_months": 0.5,
    "days_in_arrears": 1.1,
    "rent_growth": 0.8,
    "log_growth_amount": 0.8,
    "end_of_supply": 1.3,
    "crisis": 1.8,
    "warm_handover": 0.15,
    "months_since_first": 0.02,
    "rent_growth_x_energy_now": 0.8,
    "end_of_supply_x_rent": 1.2,
    "end_of_supply_x_rent_months": 0.2,
}


@dataclasses.dataclass(frozen=True)
class Cohort:
    """A synthetic cohort: one entry per household in every per-household array.

    ``raw`` is the model input (columns :data:`scoring.aggregates.RAW_COLUMNS`);
    ``age_band``, ``gender`` and ``children`` are audit attributes only; ``true_p`` is the
    outcome probability the process used and ``outcome`` the drawn 12-month outcome.
    ``signals`` holds every signal (:data:`scoring.aggregates.SIGNAL_DTYPE`, days counted
    from :data:`ORIGIN`; ``household`` indexes the per-household arrays).
    """

    seed: int
    scoring_day: np.ndarray  # int, days since ORIGIN
    raw: np.ndarray  # float (n, len(RAW_COLUMNS))
    age_band: np.ndarray  # str, one of AGE_BANDS
    gender: np.ndarray  # str, one of GENDERS
    children: np.ndarray | None  # bool: household with minor children (None: not known)
    true_p: np.ndarray  # float: true 12-month outcome probability (NaN: not known)
    outcome: np.ndarray  # bool: eviction procedure or housing loss within 12 months
    signals: np.ndarray  # structured, SIGNAL_DTYPE

    def __len__(self) -> int:
        return len(self.scoring_day)

    @property
    def scoring_date(self) -> np.ndarray:
        """Scoring dates as ``datetime64[D]``."""
        return np.datetime64(ORIGIN, "D") + self.scoring_day.astype("timedelta64[D]")

    def subset(self, index: np.ndarray) -> Cohort:
        """The households at ``index`` (an index or boolean mask), signals renumbered."""
        idx = np.arange(len(self))[index]
        new_id = np.full(len(self), -1, dtype=np.int64)
        new_id[idx] = np.arange(len(idx))
        keep = new_id[self.signals["household"]] >= 0
        signals = self.signals[keep].copy()
        signals["household"] = new_id[signals["household"]]
        return Cohort(
            seed=self.seed,
            scoring_day=self.scoring_day[idx],
            raw=self.raw[idx],
            age_band=self.age_band[idx],
            gender=self.gender[idx],
            children=None if self.children is None else self.children[idx],
            true_p=self.true_p[idx],
            outcome=self.outcome[idx],
            signals=signals,
        )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def true_log_odds(raw: np.ndarray) -> np.ndarray:
    """The true 12-month log-odds of a household, from its raw aggregate row only (step 9)."""
    c = COLUMN

    def col(name: str) -> np.ndarray:
        return raw[:, c[name]]

    months = {}
    for p in PARTNER_KEYS:
        monthly = col(f"{p}_monthly")
        months[p] = np.where(monthly > 0, col(f"{p}_amount") / np.where(monthly > 0, monthly, 1), 0)
    present = {p: col(f"{p}_signals_12m") > 0 for p in PARTNER_KEYS}
    rent = present["huur"].astype(float)
    rent_months = np.minimum(months["huur"], 6.0)
    huur_monthly = np.where(col("huur_monthly") > 0, col("huur_monthly"), 1.0)
    rent_growth = np.clip((col("huur_amount") - col("huur_first_amount")) / huur_monthly, 0, 4)
    eviction_days = col("eviction_days")
    has_eviction = ~np.isnan(eviction_days)
    nearness = np.where(has_eviction, np.clip(1 - np.nan_to_num(eviction_days) / 120, 0, 1), 0)
    n_partners = sum(present[p].astype(float) for p in PARTNER_KEYS)
    n_signals = sum(col(f"{p}_signals_12m") for p in PARTNER_KEYS)
    total = sum(col(f"{p}_amount") for p in PARTNER_KEYS)
    other_months = np.maximum.reduce([months["energie"], months["water"], months["zorg"]])
    max_days = np.maximum.reduce([col(f"{p}_days") for p in PARTNER_KEYS])
    eos = (col("end_of_supply_signals") > 0).astype(float)
    energy_now = col("energie_current")
    growth_amount = np.maximum.reduce(
        [np.maximum(col(f"{p}_amount") - col(f"{p}_first_amount"), 0) for p in PARTNER_KEYS]
    )
    terms = {
        "rent": rent,
        "rent_months": rent_months,
        "eviction_date": has_eviction,
        "eviction_nearness": nearness,
        "energie": present["energie"],
        "water": present["water"],
        "zorg": present["zorg"],
        "extra_partners": n_partners - 1,
        "signals_12m": np.minimum(n_signals, 10),
        "log_total_amount": np.log1p(total / 1000),
        "other_months": np.minimum(other_months, 6),
        "days_in_arrears": np.minimum(max_days, 365) / 180,
        "rent_growth": rent_growth,
        "log_growth_amount": np.log1p(growth_amount / 200),
        "end_of_supply": eos,
        "crisis": col("crisis_signals") > 0,
        "warm_handover": col("warm_handover_signals") > 0,
        "months_since_first": np.minimum(col("days_since_first_signal") / MONTH_DAYS, 12),
        # Interactions a simple rule misses.
        "rent_growth_x_energy_now": np.minimum(rent_growth, 3) * energy_now,
        "end_of_supply_x_rent": eos * rent,
        "end_of_supply_x_rent_months": eos * rent_months,
    }
    return INTERCEPT + sum(WEIGHTS[name] * np.asarray(v, dtype=float) for name, v in terms.items())


def _weighted_order(rng: np.random.Generator, log_w: np.ndarray) -> np.ndarray:
    """Per row, partner indices in a weighted random order without replacement (Gumbel-top-k)."""
    return np.argsort(-(log_w + rng.gumbel(size=log_w.shape)), axis=1)


def generate(n_households: int, seed: int = 0) -> Cohort:
    """Draw a cohort of ``n_households`` households; the same seed gives the same cohort."""
    rng = np.random.default_rng(seed)
    n = n_households
    rows = np.arange(n)

    # 1-3. Audit attributes, strain, scoring date.
    age = rng.choice(len(AGE_BANDS), size=n, p=_AGE_P)
    female = rng.random(n) < 0.52
    children = rng.random(n) < _CHILD_P[age]
    strain = rng.standard_normal(n) + 0.10 * children + _AGE_STRAIN[age]
    scoring_day = rng.integers(0, SPAN_DAYS, size=n)

    # 4. Partner mix per household.
    log_w = (
        np.log(SHARES * _DRAW_CORRECTION)[None, :]
        + _AGE_TILT[age]
        + np.outer(children, _CHILD_TILT)
    )

    # 5-6. Which partner types signal in which months.
    current_order = _weighted_order(rng, log_w)
    multiple = rng.random(n) < _sigmoid(_logit(0.105) + 0.25 * strain)
    n_current = 1 + multiple * (1 + (rng.random(n) < 0.15))
    parts_hh, parts_partner, parts_back = [], [], []
    for j in range(3):
        m = n_current > j
        parts_hh.append(rows[m])
        parts_partner.append(current_order[m, j])
        parts_back.append(np.zeros(m.sum(), dtype=np.int64))

    def earlier(probability: np.ndarray, counts: np.ndarray, months: np.ndarray, same: float):
        month_order = np.argsort(rng.random((n, len(months))), axis=1)
        fresh = _weighted_order(rng, log_w)[:, 0]
        pick = current_order[rows, (rng.random(n) * n_current).astype(np.int64)]
        for j in range(counts.max(initial=0)):
            m = probability & (counts > j)
            fresh_j = _weighted_order(rng, log_w[m])[:, 0] if j else fresh[m]
            partner = np.where(rng.random(m.sum()) < same, pick[m], fresh_j)
            parts_hh.append(rows[m])
            parts_partner.append(partner)
            parts_back.append(months[month_order[m, j]])

    repeat = rng.random(n) < _sigmoid(_logit(0.395) + 0.3 * strain)
    earlier(repeat, 1 + rng.binomial(3, 0.3, size=n), np.arange(1, 7), 0.6)
    old = rng.random(n) < _sigmoid(_logit(0.165) + 0.3 * strain)
    earlier(old, 1 + (rng.random(n) < 0.3), np.arange(7, 12), 0.5)

    hh = np.concatenate(parts_hh)
    partner = np.concatenate(parts_partner)
    back = np.concatenate(parts_back)
    n_sig = len(hh)

    # 7. Amounts and arrears.
    years = scoring_day / 365.0
    u = rng.random((n, len(PARTNERS))) ** (1 - 0.3 * children[:, None])
    lo, hi = MONTHLY_RANGE[:, 0], MONTHLY_RANGE[:, 1]
    monthly = (lo + (hi - lo) * u) * (1 + 0.03 * years)[:, None]
    lam = np.exp(np.log(0.8) + 0.2 * strain)[:, None] * np.array([1.1, 0.9, 0.8, 0.7])
    latest_months = np.minimum(1 + rng.poisson(lam), 6).astype(float)
    zorg = PARTNERS.index(PartnerType.ZORG)
    zorg_late = rng.random(n) < 0.08
    latest_months[:, zorg] = np.where(
        zorg_late, np.minimum(latest_months[:, zorg] + 3, 6), np.minimum(latest_months[:, zorg], 3)
    )
    growth = rng.normal(0.3 + 0.3 * strain, 0.8)
    # Months back of each (household, partner)'s latest signal.
    latest_back = np.full((n, len(PARTNERS)), 99)
    np.minimum.at(latest_back, (hh, partner), back)
    steps = (back - latest_back[hh, partner]) / 2.0
    months = np.clip(latest_months[hh, partner] - growth[hh] * steps, 1, 6)
    months = np.round(months * 2) / 2  # arrears in half months
    early = (partner != zorg) & (rng.random(n_sig) < 0.05)
    months = np.where(early, rng.uniform(0.45, 0.95, n_sig), months)
    amount = np.round(months * monthly[hh, partner] * rng.uniform(0.9, 1.05, n_sig), 2)
    signal_day = scoring_day[hh] - np.floor(back * MONTH_DAYS + rng.uniform(0, 30, n_sig))
    arrears_days = np.floor(months * MONTH_DAYS + np.where(early, 0, rng.uniform(0, 25, n_sig)))

    # 8. Flags.
    s = strain[hh]
    energy = partner == PARTNERS.index(PartnerType.ENERGIE)
    end_of_supply = energy & (rng.random(n_sig) < _sigmoid(_logit(0.22) + 0.2 * s))
    crisis = rng.random(n_sig) < _sigmoid(_logit(0.02) + 0.3 * s)
    warm = rng.random(n_sig) < _sigmoid(_logit(0.06) + 0.2 * s)
    huur = PARTNERS.index(PartnerType.HUUR)
    latest_rent = (partner == huur) & (back == latest_back[hh, huur])
    p_evict = _sigmoid(-4.6 + 0.95 * months + 0.2 * s)
    evicted = latest_rent & (rng.random(n_sig) < p_evict)
    eviction_day = np.where(evicted, scoring_day[hh] + rng.integers(3, 151, n_sig), -1)

    signals = np.empty(n_sig, dtype=SIGNAL_DTYPE)
    signals["household"] = hh
    signals["partner"] = partner
    signals["months_back"] = back
    signals["signal_day"] = signal_day
    signals["arrears_start_day"] = signal_day - arrears_days
    signals["amount"] = amount
    signals["monthly_amount"] = np.round(monthly[hh, partner], 2)
    signals["crisis"] = crisis
    signals["warm_handover"] = warm
    signals["end_of_supply"] = end_of_supply
    signals["eviction_day"] = eviction_day
    signals["outside_window"] = outside_window(partner, arrears_days, end_of_supply)
    signals = signals[np.lexsort((back, hh))]

    # 9-10. Truth and outcome from the observable aggregates.
    raw = aggregate(signals, scoring_day)
    true_p = _sigmoid(true_log_odds(raw))
    outcome = rng.random(n) < true_p
    return Cohort(
        seed=seed,
        scoring_day=scoring_day,
        raw=raw,
        age_band=np.asarray(AGE_BANDS)[age],
        gender=np.where(female, "Vrouw", "Man"),
        children=children,
        true_p=true_p,
        outcome=outcome,
        signals=signals,
    )


def partner_rows(
    n_signals: int,
    until: dt.date,
    months: int,
    population: Population,
    seed: int = 2026,
    invalid_share: float = 0.0,
) -> dict[tuple[PartnerType, dt.date], list[dict[str, str]]]:
    """The cohort's signals of the last ``months`` months as partners' monthly batch rows.

    The cohort's time line is shifted so that its last scoring day is the day before
    ``until``; the households are drawn whole (every signal of theirs in the window) until
    about ``n_signals`` signals, and each gets a person and address from ``population``.
    So the demo's signals carry the cohort's patterns (repeats, growth, multiple partners,
    eviction dates). Keyed by (partner type, first day of the month).
    """
    cohort = generate(max(500, 5 * n_signals), seed=seed)
    shift = (until - dt.timedelta(days=1) - ORIGIN).days - int(cohort.scoring_day.max())
    first_day = (until.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    for _ in range(months - 2):
        first_day = (first_day - dt.timedelta(days=1)).replace(day=1)
    window_start = (first_day - ORIGIN).days - shift
    s = cohort.signals[cohort.signals["signal_day"] >= window_start]
    rng = np.random.default_rng(seed)
    households = rng.permutation(np.unique(s["household"]))
    counts = np.bincount(s["household"], minlength=len(cohort))[households]
    chosen = households[: int(np.searchsorted(np.cumsum(counts), n_signals)) + 1]
    if len(chosen) > len(population.households):
        raise ValueError("the population is smaller than the households drawn")
    person = {int(h): population.households[i] for i, h in enumerate(chosen)}
    picked = s[np.isin(s["household"], chosen)]
    picked = picked[np.argsort(picked["signal_day"], kind="stable")]
    out: dict[tuple[PartnerType, dt.date], list[dict[str, str]]] = {}
    pyrng = random.Random(seed)
    for index, sig in enumerate(picked):
        partner = PARTNERS[int(sig["partner"])]
        day = ORIGIN + dt.timedelta(days=int(sig["signal_day"]) + shift)
        rows = out.setdefault((partner, day.replace(day=1)), [])
        row = make_row(
            pyrng,
            person[int(sig["household"])],
            f"{partner.value[:3].upper()}{day:%Y%m}-{len(rows) + 1:06d}",
            index,
            day,
            ORIGIN + dt.timedelta(days=int(sig["arrears_start_day"]) + shift),
            float(sig["amount"]),
            float(sig["monthly_amount"]),
            PROFILES[partner][2],
            crisis=bool(sig["crisis"]),
            warm_handover=bool(sig["warm_handover"]),
            end_of_supply=bool(sig["end_of_supply"]),
            eviction=ORIGIN + dt.timedelta(days=int(sig["eviction_day"]) + shift)
            if sig["eviction_day"] >= 0
            else None,
        )
        if invalid_share and pyrng.random() < invalid_share:
            spoil(row, pyrng)
        rows.append(row)
    return out
