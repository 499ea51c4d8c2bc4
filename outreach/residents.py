"""The resident check: is the signalled person registered in the municipality (BRP)?

Two registers behind one interface (:class:`Register`):

* :class:`LocalRegister` — a BRP extract (CSV) imported with :func:`import_extract`, stored
  per person with keyed hashes of BSN and address and the rest encrypted.
* :class:`HaalCentraalRegister` — the Haal Centraal *BRP API Personen* (``POST /personen``,
  ``RaadpleegMetBurgerservicenummer`` and ``ZoekMetPostcodeEnHuisnummer``), with a
  configurable URL, API key, client certificate and CA bundle.

:func:`check` decides per case (DOMAIN.md, "Matching rules used in practice"):

* the BSN is registered in this municipality and a name matches: **inwoner** (a move within
  the municipality is still an inwoner);
* the BSN is registered elsewhere (or, with an extract of the municipality's residents, not
  in it), or nobody lives at the address: **geen inwoner**;
* anything else (BSN unknown, names that do not match, no BSN and nobody of that name at the
  address): the **review list**, never dropped.

Names match leniently: diacritics, case, punctuation and tussenvoegsels are ignored, a
double name matches either part, and the names of partners count (a married name).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import ssl
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import httpx
from marshmallow import EXCLUDE, Schema, ValidationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from outreach.models import Resident
from signals.crypto import DataProtector
from signals.enums import RowCode
from signals.schemas import Bsn, Date, HouseNumber, Postcode, Text, row_errors

IDENTITY_CONTEXT = b"resident.identity"
#: Words that are tussenvoegsels, ignored when names are compared.
PARTICLES = frozenset(
    {
        "van", "de", "der", "den", "het", "ten", "ter", "te", "t", "d", "da", "das", "del",
        "della", "di", "do", "dos", "du", "el", "al", "la", "le", "les", "op", "in", "aan",
        "uit", "bij",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Person:
    """What the resident check needs of one registered person."""

    bsn: str
    geslachtsnaam: str
    voorvoegsel: str = ""
    voornamen: str = ""
    partner_names: tuple[str, ...] = ()
    geboortedatum: dt.date | None = None
    postcode: str = ""
    huisnummer: int = 0
    toevoeging: str = ""
    gemeente: str = ""


@dataclass(frozen=True)
class Verdict:
    outcome: str  # "inwoner", "geen_inwoner", "te_beoordelen"
    reason: str  # plain Dutch, no personal data
    #: Where the BRP registers a resident (postcode, house number), for the household.
    address: tuple[str, int] | None = None


class Register(Protocol):
    #: True when the register holds exactly the municipality's residents (an extract), so a
    #: BSN it does not know is not a resident; False for the national BRP API, where an
    #: unknown BSN is a question for a person.
    complete: bool

    def by_bsn(self, bsns: list[str]) -> dict[str, Person]: ...

    def at_address(self, postcode: str, huisnummer: int) -> list[Person]: ...


class RegisterUnavailable(Exception):
    """The register could not answer (network, 5xx, refused): try again later."""


# -- names -------------------------------------------------------------------------------------
def name_parts(*names: str) -> frozenset[str]:
    """The comparable parts of names: no diacritics, case, punctuation or tussenvoegsels."""
    parts = set()
    for name in names:
        plain = unicodedata.normalize("NFKD", name or "")
        plain = "".join(c for c in plain if not unicodedata.combining(c)).lower()
        plain = plain.replace("ı", "i").replace("ß", "ss")
        for word in re.split(r"[^a-z]+", plain):
            if word and word not in PARTICLES:
                parts.add(word)
    return frozenset(parts)


def names_match(surname: str, person: Person) -> bool:
    """Does a partner's surname belong to this person (own or a partner's name)?"""
    wanted = name_parts(surname)
    if not wanted:
        return False
    for name in (person.geslachtsnaam, *person.partner_names):
        known = name_parts(name)
        if known and (wanted <= known or known <= wanted):
            return True
    return False


# -- the decision ------------------------------------------------------------------------------
def check(
    identity: dict[str, Any], contact: dict[str, Any], register: Register, gemeente: str
) -> Verdict:
    """Decide one person of a case (``identity`` and ``contact`` as stored with the signal)."""
    surname = identity.get("achternaam", "")
    bsn = identity.get("bsn")
    if bsn:
        person = register.by_bsn([bsn]).get(bsn)
        if person is None and register.complete:
            return Verdict("geen_inwoner", "niet ingeschreven in de gemeente (BRP-uittreksel)")
        if person is None:
            return Verdict("te_beoordelen", "BSN niet gevonden in de BRP")
        if person.gemeente and person.gemeente != gemeente:
            return Verdict("geen_inwoner", "volgens de BRP ingeschreven in een andere gemeente")
        if not names_match(surname, person):
            return Verdict("te_beoordelen", "naam wijkt af van de BRP")
        address = (person.postcode, person.huisnummer) if person.postcode else None
        return Verdict("inwoner", "ingeschreven in de gemeente (BRP)", address)
    postcode, number = contact.get("postcode", ""), contact.get("huisnummer", "")
    if not postcode or not str(number).isdigit():
        return Verdict("te_beoordelen", "geen BSN en geen volledig adres")
    people = register.at_address(postcode, int(number))
    if not people:
        return Verdict("geen_inwoner", "niemand ingeschreven op dit adres (BRP)")
    born = identity.get("geboortedatum")
    for person in people:
        if names_match(surname, person) and (
            not born or person.geboortedatum is None or str(person.geboortedatum) == str(born)
        ):
            return Verdict("inwoner", "ingeschreven op dit adres (BRP)", (postcode, int(number)))
    return Verdict("te_beoordelen", "naam niet gevonden op dit adres (BRP)")


def minors_at(register: Register, address: tuple[str, int], today: dt.date) -> bool | None:
    """Is someone under 18 registered at this address (a household with children)? None
    when the register gives no birth dates there."""
    births = [p.geboortedatum for p in register.at_address(*address) if p.geboortedatum]
    if not births:
        return None
    try:
        adult = today.replace(year=today.year - 18)
    except ValueError:  # 29 February
        adult = today.replace(year=today.year - 18, day=28)
    return any(born > adult for born in births)


# -- the imported extract ----------------------------------------------------------------------
class ResidentRowSchema(Schema):
    """One row of a BRP extract (CSV with a header; ``;`` or ``,``)."""

    class Meta:
        unknown = EXCLUDE

    bsn = Bsn(required=True)
    voornamen = Text(max_length=200)
    voorvoegsel = Text(max_length=20)
    geslachtsnaam = Text(required=True, max_length=200)
    naam_partner = Text(max_length=200)
    voorvoegsel_partner = Text(max_length=20)
    geboortedatum = Date(past_only=True)
    straat = Text(max_length=200)
    huisnummer = HouseNumber(required=True)
    huisletter = Text(max_length=1)
    huisnummertoevoeging = Text(max_length=4)
    postcode = Postcode(required=True)
    woonplaats = Text(max_length=100)

    def __init__(self, today: dt.date, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context_today = today


@dataclass
class ImportReport:
    rows_total: int = 0
    rows_loaded: int = 0
    rejections: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows_rejected": len({r["row"] for r in self.rejections})}


def import_extract(
    session: Session,
    protector: DataProtector,
    municipality_id: int,
    data: bytes,
    today: dt.date,
) -> ImportReport:
    """Replace the municipality's register with the good rows of ``data``; report the rest.

    Broken rows are reported by row number, field and code (never their content); every
    good row loads. A file without the required columns loads nothing and says so.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("the extract is not UTF-8") from None
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") >= first.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    missing = [c for c in ("bsn", "geslachtsnaam", "huisnummer", "postcode") if c not in columns]
    if missing:
        raise ValueError("the extract misses columns: " + ", ".join(missing))
    reader.fieldnames = columns
    schema = ResidentRowSchema(today)
    report = ImportReport()
    rows = []
    seen: set[str] = set()
    for number, raw in enumerate(reader, start=1):
        report.rows_total += 1
        values = {k: v.strip() for k, v in raw.items() if k and isinstance(v, str) and v.strip()}
        try:
            row = schema.load(values)
        except ValidationError as exc:
            for name, code in row_errors(exc.messages):
                report.rejections.append({"row": number, "field": name, "code": code})
            continue
        if row["bsn"] in seen:
            report.rejections.append(
                {"row": number, "field": "bsn", "code": RowCode.DUPLICATE_SIGNAL.value}
            )
            continue
        seen.add(row["bsn"])
        partner = " ".join(
            p for p in (row.get("voorvoegsel_partner"), row.get("naam_partner")) if p
        )
        identity = {
            "bsn": row["bsn"],
            "voornamen": row.get("voornamen", ""),
            "voorvoegsel": row.get("voorvoegsel", ""),
            "geslachtsnaam": row["geslachtsnaam"],
            "partner_names": [partner] if partner else [],
            "geboortedatum": row["geboortedatum"].isoformat() if row.get("geboortedatum") else None,
            "postcode": row["postcode"],
            "huisnummer": int(row["huisnummer"]),
            "toevoeging": (row.get("huisletter", "") + row.get("huisnummertoevoeging", "")),
        }
        rows.append(
            {
                "municipality_id": municipality_id,
                "bsn_hash": protector.bsn_hash(row["bsn"]),
                "building_hash": protector.address_hash(row["postcode"], row["huisnummer"], None),
                "identity": protector.encrypt_json(identity, IDENTITY_CONTEXT),
            }
        )
    session.execute(delete(Resident).where(Resident.municipality_id == municipality_id))
    for start in range(0, len(rows), 2000):
        session.execute(Resident.__table__.insert(), rows[start : start + 2000])
    report.rows_loaded = len(rows)
    session.flush()
    return report


class LocalRegister:
    """The imported extract of one municipality."""

    complete = True

    def __init__(
        self, session: Session, protector: DataProtector, municipality_id: int, gemeente: str
    ) -> None:
        self.session, self.protector = session, protector
        self.municipality_id, self.gemeente = municipality_id, gemeente

    def _people(self, where: Any) -> list[Person]:
        blobs = self.session.scalars(
            select(Resident.identity).where(Resident.municipality_id == self.municipality_id, where)
        )
        out = []
        for blob in blobs:
            d = self.protector.decrypt_json(blob, IDENTITY_CONTEXT)
            out.append(
                Person(
                    bsn=d["bsn"],
                    geslachtsnaam=d["geslachtsnaam"],
                    voorvoegsel=d.get("voorvoegsel", ""),
                    voornamen=d.get("voornamen", ""),
                    partner_names=tuple(d.get("partner_names", [])),
                    geboortedatum=dt.date.fromisoformat(d["geboortedatum"])
                    if d.get("geboortedatum")
                    else None,
                    postcode=d["postcode"],
                    huisnummer=int(d["huisnummer"]),
                    toevoeging=d.get("toevoeging", ""),
                    gemeente=self.gemeente,
                )
            )
        return out

    def by_bsn(self, bsns: list[str]) -> dict[str, Person]:
        hashes = [self.protector.bsn_hash(b) for b in bsns]
        return {p.bsn: p for p in self._people(Resident.bsn_hash.in_(hashes))}

    def at_address(self, postcode: str, huisnummer: int) -> list[Person]:
        key = self.protector.address_hash(postcode.replace(" ", "").upper(), str(huisnummer), None)
        return self._people(Resident.building_hash == key)


# -- Haal Centraal BRP API Personen ------------------------------------------------------------
FIELDS = [
    "burgerservicenummer",
    "naam",
    "geboorte.datum",
    "verblijfplaats",
    "gemeenteVanInschrijving",
    "partners.naam",
]


def person_from_brp(data: dict[str, Any]) -> Person:
    """A :class:`Person` from one ``Persoon`` of a ``PersonenQueryResponse``."""
    naam = data.get("naam") or {}
    born = ((data.get("geboorte") or {}).get("datum") or {}).get("datum")
    place = data.get("verblijfplaats") or {}
    address = place.get("verblijfadres") or {}
    partners = tuple(
        " ".join(
            x
            for x in (
                (p.get("naam") or {}).get("voorvoegsel"),
                (p.get("naam") or {}).get("geslachtsnaam"),
            )
            if x
        )
        for p in data.get("partners") or []
    )
    return Person(
        bsn=data.get("burgerservicenummer", ""),
        geslachtsnaam=naam.get("geslachtsnaam", ""),
        voorvoegsel=naam.get("voorvoegsel", ""),
        voornamen=naam.get("voornamen", ""),
        partner_names=tuple(p for p in partners if p),
        geboortedatum=dt.date.fromisoformat(born) if born else None,
        postcode=str(address.get("postcode", "")).replace(" ", "").upper(),
        huisnummer=int(address.get("huisnummer") or 0),
        toevoeging=(address.get("huisletter") or "") + (address.get("huisnummertoevoeging") or ""),
        gemeente=str((data.get("gemeenteVanInschrijving") or {}).get("code", "")),
    )


class HaalCentraalRegister:
    """A client of the BRP API Personen (Haal Centraal), version 2."""

    complete = False

    def __init__(
        self,
        url: str,
        gemeente: str,
        api_key: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        ca_bundle: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.gemeente = gemeente
        headers = {"Accept": "application/json"}
        if api_key:
            headers["X-API-KEY"] = api_key
        try:
            tls = ssl.create_default_context(cafile=ca_bundle)  # else the system's CAs
            if client_cert:  # mutual TLS, as the BRP API requires of municipalities
                tls.load_cert_chain(client_cert, client_key)
        except (OSError, ssl.SSLError) as exc:
            raise RegisterUnavailable(
                f"BRP client certificate, key or CA bundle cannot be read ({type(exc).__name__})"
            ) from None
        self.client = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, verify=tls, timeout=timeout
        )

    def _personen(self, query: dict[str, Any]) -> list[Person]:
        try:
            response = self.client.post(
                "/personen",
                json={**query, "fields": FIELDS},
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
        except httpx.HTTPError as exc:
            raise RegisterUnavailable(f"BRP API not reachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            problem = _problem_title(response)
            raise RegisterUnavailable(f"BRP API answered {response.status_code}{problem}")
        return [person_from_brp(p) for p in response.json().get("personen", [])]

    def by_bsn(self, bsns: list[str]) -> dict[str, Person]:
        out: dict[str, Person] = {}
        for start in range(0, len(bsns), 20):  # the API takes at most 20 at once
            query = {
                "type": "RaadpleegMetBurgerservicenummer",
                "burgerservicenummer": bsns[start : start + 20],
            }
            out.update({p.bsn: p for p in self._personen(query)})
        return out

    def at_address(self, postcode: str, huisnummer: int) -> list[Person]:
        return self._personen(
            {
                "type": "ZoekMetPostcodeEnHuisnummer",
                "postcode": postcode.replace(" ", "").upper(),
                "huisnummer": huisnummer,
                "gemeenteVanInschrijving": self.gemeente,
            }
        )


def _problem_title(response: httpx.Response) -> str:
    """The problem document's title (RFC 9457), which carries no personal data."""
    try:
        title = response.json().get("title")
    except ValueError:
        return ""
    return f": {str(title)[:120]}" if title else ""
