"""Synthetic signal rows for the demo, tests and benchmarks. Never real people.

Realistic shapes: common Dutch names (with tussenvoegsels), BSNs that pass the elfproef,
postcode shapes ``1234AB``, amounts and arrears per partner type anchored on DOMAIN.md
(partner shares Zorg 41%, Energie 20%, Huur 20%, Water 18%).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from faker.providers.address.nl_NL import Provider as AddressProvider
from faker.providers.person.nl_NL import Provider as PersonProvider

from signals.enums import PartnerType

COLUMNS = [
    "signaal_id",
    "signaaldatum",
    "ontstaansdatum",
    "bedrag",
    "maandbedrag",
    "klantnummer",
    "bsn",
    "voorletters",
    "tussenvoegsel",
    "achternaam",
    "geboortedatum",
    "geslacht",
    "straat",
    "huisnummer",
    "huisnummertoevoeging",
    "postcode",
    "woonplaats",
    "telefoon",
    "email",
    "crisissignaal",
    "warme_overdracht",
    "eindelevering",
    "ontruimingsdatum",
]

SURNAMES = [
    ("", "Jansen"),
    ("de", "Jong"),
    ("de", "Vries"),
    ("van den", "Berg"),
    ("van", "Dijk"),
    ("", "Bakker"),
    ("", "Janssen"),
    ("", "Visser"),
    ("", "Smit"),
    ("", "Meijer"),
    ("de", "Boer"),
    ("", "Mulder"),
    ("de", "Groot"),
    ("", "Bos"),
    ("", "Vos"),
    ("", "Peters"),
    ("", "Hendriks"),
    ("van", "Leeuwen"),
    ("", "Dekker"),
    ("", "Brouwer"),
    ("de", "Wit"),
    ("", "Dijkstra"),
    ("", "Smits"),
    ("de", "Graaf"),
    ("van der", "Meer"),
    ("van der", "Linden"),
    ("", "Kok"),
    ("", "Jacobs"),
    ("de", "Haan"),
    ("", "Vermeulen"),
    ("van den", "Heuvel"),
    ("van der", "Veen"),
    ("van den", "Broek"),
    ("de", "Bruijn"),
    ("van der", "Heijden"),
    ("", "Schouten"),
    ("van", "Beek"),
    ("", "Willems"),
    ("van", "Vliet"),
    ("van de", "Ven"),
    ("", "Hoekstra"),
    ("", "Maas"),
    ("", "Verhoeven"),
    ("", "Koster"),
    ("van", "Dam"),
    ("", "Prins"),
    ("", "Blom"),
    ("", "Huisman"),
    ("", "Kuipers"),
    ("", "Postma"),
    ("", "Yılmaz"),
    ("El", "Amrani"),
    ("", "Öztürk"),
    ("", "Nguyen"),
    ("", "Bakkali"),
    ("", "Kaya"),
    ("", "Şahin"),
    ("", "Boateng"),
    ("", "Pinas"),
    ("", "Rodrigues"),
    ("", "Doğan"),
    ("", "Ramdin"),
    ("", "Sedney"),
    ("", "Kowalski"),
    ("", "Haddou"),
]

#: Monthly amount range and arrears in months, per partner type.
PROFILES: dict[PartnerType, tuple[tuple[int, int], tuple[float, float], float]] = {
    # (monthly amount range, months of arrears range, share with a BSN)
    PartnerType.HUUR: ((480, 1150), (1.0, 4.0), 0.55),
    PartnerType.ENERGIE: ((70, 260), (1.5, 6.0), 0.35),
    PartnerType.WATER: ((18, 45), (2.0, 8.0), 0.30),
    PartnerType.ZORG: ((135, 165), (1.0, 3.2), 1.0),
}

#: National shares by partner type, first half of 2024 (DOMAIN.md).
SHARES = {
    PartnerType.ZORG: 41,
    PartnerType.ENERGIE: 20,
    PartnerType.HUUR: 20,
    PartnerType.WATER: 18,
}


def make_bsn(rng: random.Random) -> str:
    """A random 9-digit number that passes the elfproef."""
    while True:
        digits = [rng.randint(0, 9) for _ in range(8)]
        if digits[0] == 0 and digits[1] == 0:
            continue
        total = sum(d * w for d, w in zip(digits, range(9, 1, -1), strict=True))
        check = total % 11
        if check < 10:
            return "".join(map(str, digits)) + str(check)


@dataclass(frozen=True)
class Household:
    bsn: str | None
    voorletters: str
    tussenvoegsel: str
    achternaam: str
    geboortedatum: dt.date
    geslacht: str
    straat: str
    huisnummer: str
    toevoeging: str
    postcode: str
    woonplaats: str
    telefoon: str
    email: str


class Population:
    """A fixed set of synthetic households in one town, drawn from a seed."""

    def __init__(
        self,
        size: int,
        seed: int = 2026,
        town: str = "Utrecht",
        postcode_areas: tuple[int, int] = (3511, 3585),
    ) -> None:
        rng = random.Random(seed)
        streets = sorted({s for s in AddressProvider.street_suffixes})
        first_f = list(PersonProvider.first_names_female)
        first_m = list(PersonProvider.first_names_male)
        roots = [
            "Eiken",
            "Linden",
            "Beuken",
            "Kastanje",
            "Merel",
            "Zwaluw",
            "Kievit",
            "Rozen",
            "Tulpen",
            "Molen",
            "Kerk",
            "Haven",
            "Vecht",
            "Singel",
            "Dorps",
            "Oranje",
        ]
        self.households: list[Household] = []
        for _ in range(size):
            prefix, surname = rng.choice(SURNAMES)
            female = rng.random() < 0.5
            first = rng.choice(first_f if female else first_m)
            initials = (
                first[0]
                + "."
                + (rng.choice("ABCDEFGHJKLMNPRSTW") + "." if rng.random() < 0.4 else "")
            )
            age_years = rng.choices(
                [
                    rng.randint(18, 27),
                    rng.randint(28, 44),
                    rng.randint(45, 64),
                    rng.randint(65, 90),
                ],
                weights=[18, 38, 32, 12],
            )[0]
            born = dt.date(2026 - age_years, rng.randint(1, 12), rng.randint(1, 28))
            area = rng.randint(*postcode_areas)
            letters = rng.choice("ABCDEGHJKLMNPRTVWXZ") + rng.choice("ABCDEGHJKLMNPRTVWXZ")
            self.households.append(
                Household(
                    bsn=make_bsn(rng),
                    voorletters=initials,
                    tussenvoegsel=prefix,
                    achternaam=surname,
                    geboortedatum=born,
                    geslacht=("V" if female else "M") if rng.random() > 0.02 else "O",
                    straat=rng.choice(roots) + rng.choice(streets),
                    huisnummer=str(rng.randint(1, 250)),
                    toevoeging=rng.choice(["", "", "", "", "A", "B", "1", "2", "bis"]),
                    postcode=f"{area}{letters}",
                    woonplaats=town,
                    telefoon="06" + "".join(str(rng.randint(0, 9)) for _ in range(8)),
                    email=f"{first.lower()}.{surname.lower().replace(' ', '')}{rng.randint(1, 99)}"
                    "@example.nl",
                )
            )


def signal_rows(
    population: Population,
    partner_type: PartnerType,
    count: int,
    month_start: dt.date,
    month_end: dt.date,
    seed: int,
    id_prefix: str,
    invalid_share: float = 0.0,
) -> Iterator[dict[str, str]]:
    """Rows of one partner's monthly batch, as the partner would write them (all strings)."""
    rng = random.Random(seed)
    (low, high), (min_months, max_months), bsn_share = PROFILES.get(
        partner_type, ((50, 500), (1.0, 4.0), 0.5)
    )
    span = max((month_end - month_start).days, 0)
    for index in range(count):
        person = rng.choice(population.households)
        monthly = rng.randint(low, high)
        months = rng.uniform(min_months, max_months)
        amount = round(monthly * months + rng.uniform(-5, 5), 2)
        signal_date = month_start + dt.timedelta(days=rng.randint(0, span))
        arrears_days = max(1, int(months * 30.4) + rng.randint(-10, 10))
        if rng.random() < 0.03:
            arrears_days = rng.randint(5, 25)  # too early: accepted and flagged
        started = signal_date - dt.timedelta(days=arrears_days)
        end_of_supply = partner_type is PartnerType.ENERGIE and rng.random() < 0.25
        eviction = (
            signal_date + dt.timedelta(days=rng.randint(14, 60))
            if partner_type is PartnerType.HUUR and months > 3 and rng.random() < 0.3
            else None
        )
        row = make_row(
            rng,
            person,
            f"{id_prefix}-{index + 1:06d}",
            index,
            signal_date,
            started,
            amount,
            monthly,
            bsn_share,
            crisis=rng.random() < 0.02,
            warm_handover=rng.random() < 0.03,
            end_of_supply=end_of_supply,
            eviction=eviction,
        )
        if invalid_share and rng.random() < invalid_share:
            spoil(row, rng)
        yield row


def make_row(
    rng: random.Random,
    person: Household,
    signal_id: str,
    index: int,
    signal_date: dt.date,
    started: dt.date,
    amount: float,
    monthly: float,
    bsn_share: float,
    crisis: bool,
    warm_handover: bool,
    end_of_supply: bool,
    eviction: dt.date | None,
) -> dict[str, str]:
    """One row as a partner writes it (all strings), in the formats partners vary between:
    both date forms, decimal comma or point, postcode with or without a space, yes/no flags
    as ``ja``/``true``/``1``. ``index`` picks the formats; ``rng`` which fields are known."""
    return {
        "signaal_id": signal_id,
        "signaaldatum": signal_date.isoformat(),
        "ontstaansdatum": started.strftime("%d-%m-%Y") if index % 3 == 0 else started.isoformat(),
        "bedrag": f"{amount:.2f}".replace(".", ",") if index % 2 else f"{amount:.2f}",
        "maandbedrag": f"{monthly:.2f}",
        "klantnummer": f"K{rng.randint(10_000_000, 99_999_999)}",
        "bsn": person.bsn if person.bsn and rng.random() < bsn_share else "",
        "voorletters": person.voorletters,
        "tussenvoegsel": person.tussenvoegsel,
        "achternaam": person.achternaam,
        "geboortedatum": person.geboortedatum.isoformat() if rng.random() < 0.8 else "",
        "geslacht": person.geslacht if rng.random() < 0.9 else "",
        "straat": person.straat,
        "huisnummer": person.huisnummer,
        "huisnummertoevoeging": person.toevoeging,
        "postcode": person.postcode[:4] + " " + person.postcode[4:]
        if index % 4 == 0
        else person.postcode,
        "woonplaats": person.woonplaats,
        "telefoon": person.telefoon if rng.random() < 0.6 else "",
        "email": person.email if rng.random() < 0.4 else "",
        "crisissignaal": "ja" if crisis else "nee",
        "warme_overdracht": "true" if warm_handover else "false",
        "eindelevering": "1" if end_of_supply else "0",
        "ontruimingsdatum": eviction.isoformat() if eviction else "",
    }


def spoil(row: dict[str, Any], rng: random.Random) -> None:
    """Make one realistic mistake, as partners' exports do."""
    choice = rng.randrange(5)
    if choice == 0:
        row["bsn"] = "123456789"  # fails the elfproef
    elif choice == 1:
        row["postcode"] = "351 AB"
    elif choice == 2:
        row["bedrag"] = "1.234,50"  # thousands separator
    elif choice == 3:
        row["achternaam"] = ""
    else:
        row["ontstaansdatum"], row["signaaldatum"] = row["signaaldatum"], "2026-13-01"


def to_csv(rows: Iterator[dict[str, str]] | list[dict[str, str]], delimiter: str = ";") -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")
