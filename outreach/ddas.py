"""The DDAS Vroegsignalering v1.2 delivery to CBS: our statement of the rules, and the export.

**The rules** (:data:`SCHEMA`) are written here from the standard (VNG Realisatie, DDAS
Vroegsignalering v1.2, the *Uitwisselmodel*): closed objects, the value lists (taken from the
project's own enums, which are the DDAS values verbatim), the client identity rule (a BSN
alone, or else postcode and house number with optional addition, birth date and sex) and the
formats. The product never reads the official schema file; the tests check our exports
against it as well.

**Extra rules** for our own exports (:func:`extra_violations`): every BSN passes the
elfproef, ``ontstaansdatum <= signaaldatum``, signal IDs are unique in a levering and every
ID a case references is a signal of the same levering, ``teller`` runs 1..n. (The official
examples use placeholder BSNs that fail the elfproef, so this is not a rule of the standard.)

**Amounts** are whole euros, rounded half up (``bedrag`` 450.50 becomes 451, 450.49 becomes
450): the standard asks for an integer and says nothing of rounding.

**The export** streams: signals and cases are read in chunks, each object is checked as it
is written to a temporary file, and the file replaces the target only when everything
passed. A refusal lists the path of each violation (``leveringen[0].vroegsignalen[12].client``)
and the rule, never the value.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any

import fastjsonschema
import jsonschema
import rfc3339_validator
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, selectinload

from config import Settings
from outreach.enums import CaseResult, ContactKind, Dagdeel
from outreach.matching import period_bounds
from outreach.models import Case, CaseSignal, DdasDelivery
from signals.crypto import DataProtector
from signals.enums import Gender, PartnerType, SignalStatus
from signals.ingest import CONTACT_CONTEXT, IDENTITY_CONTEXT
from signals.models import Municipality, Signal
from signals.rules import NL, bsn_valid

PRODUCT = "Vroegsignaal"
DDAS_VERSION = "1.2"
CHUNK = 2_000


def _enum(values: Any) -> dict[str, Any]:
    return {"type": "string", "enum": [v.value for v in values]}


DEFS: dict[str, Any] = {
    "datum": {"type": "string", "format": "date"},
    "datum-tijd": {"type": "string", "format": "date-time"},
    "email": {"type": "string", "format": "email"},
    "bedrag": {"type": "integer"},
    "geslacht": _enum(Gender),
    "EnumSignaalstatus": _enum(SignalStatus),
    "EnumSignaalpartner": _enum(PartnerType),
    "EnumEindresultaat": _enum(CaseResult),
    "EnumContactsoort": _enum(ContactKind),
    "EnumDagdeel": _enum(Dagdeel),
}

CLIENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "burgerservicenummer": {"type": "string"},
        "geslachtsaanduiding": {"$ref": "#/$defs/geslacht"},
        "geboortedatum": {"$ref": "#/$defs/datum"},
        "postcode": {"type": "string"},
        "huisnummer": {"type": "string"},
        "huisnummertoevoeging": {"type": "string"},
    },
    "additionalProperties": False,
    # The client identity rule: a BSN alone, or else postcode and house number.
    "oneOf": [
        {
            "required": ["burgerservicenummer"],
            "properties": {"burgerservicenummer": {"minLength": 9, "maxLength": 9}},
            "additionalProperties": False,
        },
        {"not": {"required": ["burgerservicenummer"]}, "required": ["huisnummer", "postcode"]},
    ],
}

SIGNAL: dict[str, Any] = {
    "type": "object",
    "properties": {
        "ID": {"type": "string"},
        "crisissignaal": {"type": "boolean"},
        "warmeOverdracht": {"type": "boolean"},
        "bedrag": {"$ref": "#/$defs/bedrag"},
        "ontstaansdatum": {"$ref": "#/$defs/datum"},
        "signaaldatum": {"$ref": "#/$defs/datum"},
        "status": {"$ref": "#/$defs/EnumSignaalstatus"},
        "signaalpartner": {
            "type": "object",
            "properties": {"type": {"$ref": "#/$defs/EnumSignaalpartner"}},
            "additionalProperties": False,
        },
        "client": CLIENT,
    },
    "required": ["ID", "client", "signaalpartner"],
    "additionalProperties": False,
}

CASE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "resultaat": {"$ref": "#/$defs/EnumEindresultaat"},
        "matchingsdatum": {"$ref": "#/$defs/datum"},
        "startdatumMatchingperiode": {"$ref": "#/$defs/datum"},
        "einddatumMatchingperiode": {"$ref": "#/$defs/datum"},
        "datumOpgepakt": {"$ref": "#/$defs/datum"},
        "vroegsignalen": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"ID": {"type": "string"}},
                "required": ["ID"],
                "additionalProperties": False,
            },
            "minItems": 1,
            "uniqueItems": True,
        },
        "contactpogingen": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "soort": {"$ref": "#/$defs/EnumContactsoort"},
                    "bereikt": {"type": "boolean"},
                    "datum": {"$ref": "#/$defs/datum"},
                    "dagdeel": {"$ref": "#/$defs/EnumDagdeel"},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}

ORGANISATION: dict[str, Any] = {
    "type": "object",
    "properties": {
        "naam": {"type": "string"},
        "kvk-nummer": {"type": "string"},
        "contactpersonen": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "naam": {"type": "string"},
                    "telefoonnummer": {"type": "string"},
                    "email": {"$ref": "#/$defs/email"},
                    "functietitel": {"type": "string"},
                },
                "additionalProperties": False,
            },
            "minItems": 1,
            "uniqueItems": True,
        },
    },
    "additionalProperties": False,
}

LEVERING: dict[str, Any] = {
    "type": "object",
    "properties": {
        "teller": {"type": "integer"},
        "gemeentecode": {"type": "string"},
        "aanleverendeOrganisatie": ORGANISATION,
        "vroegsignalen": {"type": "array", "items": SIGNAL},
        "vroegsignaalzaken": {"type": "array", "items": CASE},
    },
    "required": ["aanleverendeOrganisatie", "gemeentecode", "teller"],
    "additionalProperties": False,
}

#: The whole Uitwisselmodel, Draft 2020-12.
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "startdatumLevering": {"$ref": "#/$defs/datum"},
        "einddatumLevering": {"$ref": "#/$defs/datum"},
        "aanleverdatumEnTijd": {"$ref": "#/$defs/datum-tijd"},
        "codeGegevensleverancier": {"type": "string"},
        "leveringen": {"type": "array", "items": LEVERING, "minItems": 1, "uniqueItems": True},
    },
    "required": [
        "aanleverdatumEnTijd",
        "codeGegevensleverancier",
        "einddatumLevering",
        "startdatumLevering",
    ],
    "additionalProperties": False,
    "$defs": DEFS,
}


def _validator(part: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        {**part, "$defs": DEFS}, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


_PARTS = {"document": SCHEMA, "signal": SIGNAL, "case": CASE, "organisation": ORGANISATION}
_VALIDATORS = {kind: _validator(part) for kind, part in _PARTS.items()}


def _is_date(value: str) -> bool:
    try:
        return len(value) == 10 and bool(dt.date.fromisoformat(value))
    except ValueError:
        return False


def _fast(part: dict[str, Any]) -> Any:
    """The same rules compiled to Python (fastjsonschema, Draft 7 spelling): about 100 times
    quicker, for the export's many objects. Only a refusal goes to jsonschema, which then
    names every violation."""
    text = json.dumps({k: v for k, v in part.items() if k != "$schema"})
    schema = json.loads(text.replace("#/$defs/", "#/definitions/"))
    schema.pop("$defs", None)
    schema["definitions"] = DEFS
    return fastjsonschema.compile(
        schema,
        formats={
            "date": _is_date,
            "date-time": rfc3339_validator.validate_rfc3339,
            "email": lambda value: bool(_EMAIL.fullmatch(value)),
        },
    )


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_FAST = {kind: _fast(part) for kind, part in _PARTS.items()}


def _path(prefix: str, parts: Any) -> str:
    out = prefix
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def _schema_violations(kind: str, instance: Any, prefix: str = "") -> list[str]:
    """Violations as "path: rule" — the rule's name and its schema value, never the data."""
    try:
        _FAST[kind](instance)
        return []
    except fastjsonschema.JsonSchemaValueException:
        pass  # name every violation below
    out = []
    for error in _VALIDATORS[kind].iter_errors(instance):
        rule = error.validator
        detail = error.validator_value if rule in {"required", "enum", "format", "type"} else ""
        if rule == "enum":
            detail = "a DDAS value list"
        elif rule == "oneOf":
            detail = "a BSN alone, or postcode and house number"
        elif rule == "additionalProperties":
            names = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            detail = "not allowed: " + ", ".join(names)
        out.append(f"{_path(prefix, error.absolute_path)}: {rule} {detail}".rstrip())
    return out


def violations(document: dict[str, Any], extra: bool = True) -> list[str]:
    """Every violation of the DDAS v1.2 rules (and, with ``extra``, of our export rules)."""
    found = _schema_violations("document", document)
    if extra and not found:
        for i, levering in enumerate(document["leveringen"]):
            found += extra_violations(levering, f"leveringen[{i}]", i + 1)
    return found


def _signal_extra(signal: dict[str, Any], path: str) -> list[str]:
    out = []
    bsn = signal.get("client", {}).get("burgerservicenummer")
    if bsn is not None and not bsn_valid(bsn):
        out.append(f"{path}.client.burgerservicenummer: elfproef")
    start, sent = signal.get("ontstaansdatum"), signal.get("signaaldatum")
    if start and sent and start > sent:
        out.append(f"{path}.ontstaansdatum: after signaaldatum")
    return out


def extra_violations(levering: dict[str, Any], path: str, teller: int) -> list[str]:
    out = [] if levering.get("teller") == teller else [f"{path}.teller: not {teller}"]
    ids: set[str] = set()
    for j, signal in enumerate(levering.get("vroegsignalen", [])):
        out += _signal_extra(signal, f"{path}.vroegsignalen[{j}]")
        if signal["ID"] in ids:
            out.append(f"{path}.vroegsignalen[{j}].ID: not unique in the levering")
        ids.add(signal["ID"])
    for j, case in enumerate(levering.get("vroegsignaalzaken", [])):
        for k, ref in enumerate(case.get("vroegsignalen", [])):
            if ref["ID"] not in ids:
                out.append(
                    f"{path}.vroegsignaalzaken[{j}].vroegsignalen[{k}].ID: "
                    "no such signal in the levering"
                )
    return out


# -- building an export ------------------------------------------------------------------------
def whole_euros(amount: Decimal) -> int:
    """The documented rounding rule: whole euros, half up."""
    return int(Decimal(amount).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def signal_object(signal: Signal, protector: DataProtector) -> dict[str, Any]:
    identity = protector.decrypt_json(signal.client.identity, IDENTITY_CONTEXT)
    if identity.get("bsn"):
        client: dict[str, Any] = {"burgerservicenummer": identity["bsn"]}
    else:
        contact = protector.decrypt_json(signal.contact, CONTACT_CONTEXT)
        client = {"postcode": contact["postcode"], "huisnummer": str(contact["huisnummer"])}
        if contact.get("huisnummertoevoeging"):
            client["huisnummertoevoeging"] = contact["huisnummertoevoeging"]
        if identity.get("geboortedatum"):
            client["geboortedatum"] = identity["geboortedatum"]
        if signal.client.gender is not None:
            client["geslachtsaanduiding"] = signal.client.gender.value
    return {
        "ID": str(signal.id),
        "crisissignaal": signal.crisis,
        "warmeOverdracht": signal.warm_handover,
        "bedrag": whole_euros(signal.amount),
        "ontstaansdatum": signal.arrears_start_date.isoformat(),
        "signaaldatum": signal.signal_date.isoformat(),
        "status": signal.status.value,
        "signaalpartner": {"type": signal.partner_type.value},
        "client": client,
    }


def case_object(case: Case, signal_ids: list[int]) -> dict[str, Any]:
    start, end = period_bounds(case.period)
    out: dict[str, Any] = {}
    if case.result is not None:
        out["resultaat"] = case.result.value
    out["matchingsdatum"] = case.created_at.date().isoformat()
    out["startdatumMatchingperiode"] = start.isoformat()
    out["einddatumMatchingperiode"] = end.isoformat()
    if case.picked_up_on is not None:
        out["datumOpgepakt"] = case.picked_up_on.isoformat()
    out["vroegsignalen"] = [{"ID": str(i)} for i in sorted(signal_ids)]
    out["contactpogingen"] = [
        {
            "soort": a.kind.value,
            "bereikt": a.reached,
            "datum": a.at.astimezone(NL).date().isoformat(),
            "dagdeel": a.dagdeel.value,
        }
        for a in case.attempts
    ]
    return out


class ExportRefused(Exception):
    """The export would break a rule; ``violations`` lists where (paths, never values)."""

    def __init__(self, violations: list[str]) -> None:
        shown = "; ".join(violations[:20]) + (" …" if len(violations) > 20 else "")
        super().__init__(f"DDAS export refused, {len(violations)} violation(s): {shown}")
        self.violations = violations


@dataclass
class Delivery:
    path: Path
    sha256: str
    municipalities: list[str]
    signals: int = 0
    cases: int = 0
    attempts: int = 0
    log_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "gemeenten": self.municipalities,
            "signals": self.signals,
            "cases": self.cases,
            "contact_attempts": self.attempts,
            "delivery_id": self.log_id,
        }


def organisation(settings: Settings, municipality: Municipality) -> dict[str, Any]:
    if not settings.ddas_contact_email:
        raise ExportRefused(
            ["aanleverendeOrganisatie.contactpersonen: no contact e-mail configured "
             "(VROEGSIGNAAL_DDAS_CONTACT_EMAIL)"]
        )  # fmt: skip
    person = {"naam": settings.ddas_contact_name or "Team Vroegsignalering"}
    if settings.ddas_contact_phone:
        person["telefoonnummer"] = settings.ddas_contact_phone
    person["email"] = settings.ddas_contact_email
    if settings.ddas_contact_function:
        person["functietitel"] = settings.ddas_contact_function
    out: dict[str, Any] = {
        "naam": settings.ddas_organisation_name or f"Gemeente {municipality.name}"
    }
    if settings.ddas_kvk:
        out["kvk-nummer"] = settings.ddas_kvk
    out["contactpersonen"] = [person]
    return out


def product_code() -> str:
    try:
        return f"{PRODUCT} {version('vroegsignaal')}"
    except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        return PRODUCT


class _Writer:
    """Writes JSON pieces to a file, hashing as it goes."""

    def __init__(self, handle: IO[str]) -> None:
        self.handle, self.digest = handle, hashlib.sha256()

    def write(self, text: str) -> None:
        self.handle.write(text)
        self.digest.update(text.encode())


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def export(
    session: Session,
    protector: DataProtector,
    settings: Settings,
    municipalities: list[Municipality],
    start: dt.date,
    end: dt.date,
    out: Path,
    by: str,
    now: dt.datetime | None = None,
) -> Delivery:
    """Write the delivery for ``municipalities`` and the period to ``out`` (see the module).

    Every signal dated in the period, and every case active in it (created on or before the
    end, not closed before the start) with all the signals it references.
    """
    if end < start:
        raise ExportRefused(["einddatumLevering: before startdatumLevering"])
    now = now or dt.datetime.now(dt.UTC)
    header = {
        "startdatumLevering": start.isoformat(),
        "einddatumLevering": end.isoformat(),
        "aanleverdatumEnTijd": now.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "codeGegevensleverancier": product_code(),
    }
    found = _schema_violations("document", {**header, "leveringen": [{}]})
    found = [v for v in found if not v.startswith("leveringen")]
    if found:
        raise ExportRefused(found)
    out.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=out.parent, prefix=".ddas-", suffix=".tmp")
    delivery = Delivery(out, "", [m.code for m in municipalities])
    problems: list[str] = []
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            writer = _Writer(handle)
            writer.write(_dumps(header)[:-1] + ',"leveringen":[')
            for teller, municipality in enumerate(municipalities, start=1):
                if teller > 1:
                    writer.write(",")
                problems += _levering(
                    session, protector, settings, municipality, teller, start, end, writer,
                    delivery,
                )  # fmt: skip
                if len(problems) > 1000:
                    break
            writer.write("]}")
        if problems:
            raise ExportRefused(problems)
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    delivery.sha256 = writer.digest.hexdigest()
    record = DdasDelivery(
        period_start=start,
        period_end=end,
        gemeenten=",".join(delivery.municipalities),
        ddas_version=DDAS_VERSION,
        product=header["codeGegevensleverancier"],
        signals=delivery.signals,
        cases=delivery.cases,
        sha256=delivery.sha256,
        by=by,
    )
    session.add(record)
    session.flush()
    delivery.log_id = record.id
    return delivery


def _active_cases(municipality_id: int, start: dt.date, end: dt.date) -> Any:
    """Cases active in the period: created by its end and not closed before its start."""
    end_moment = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=NL)
    return and_(
        Case.municipality_id == municipality_id,
        Case.created_at < end_moment,
        or_(Case.closed_on.is_(None), Case.closed_on >= start),
    )


def _cases_in_period(
    session: Session, municipality_id: int, start: dt.date, end: dt.date
) -> Iterator[tuple[Case, list[int]]]:
    """The active cases with their signal ids, a page at a time (bounded memory)."""
    query = (
        select(Case)
        .where(_active_cases(municipality_id, start, end))
        .order_by(Case.id)
        .options(selectinload(Case.attempts))
    )
    last = 0
    while True:
        page = session.scalars(query.where(Case.id > last).limit(CHUNK)).all()
        if not page:
            return
        links: dict[int, list[int]] = {case.id: [] for case in page}
        for case_id, signal_id in session.execute(
            select(CaseSignal.case_id, CaseSignal.signal_id).where(CaseSignal.case_id.in_(links))
        ):
            links[case_id].append(signal_id)
        for case in page:
            yield case, links[case.id]
        last = page[-1].id
        session.expunge_all()


def _levering(
    session: Session,
    protector: DataProtector,
    settings: Settings,
    municipality: Municipality,
    teller: int,
    start: dt.date,
    end: dt.date,
    writer: _Writer,
    delivery: Delivery,
) -> list[str]:
    path = f"leveringen[{teller - 1}]"
    problems: list[str] = []
    org = organisation(settings, municipality)
    problems += _schema_violations("organisation", org, f"{path}.aanleverendeOrganisatie")
    writer.write(
        _dumps({"teller": teller, "gemeentecode": municipality.code})[:-1]
        + ',"aanleverendeOrganisatie":'
        + _dumps(org)
        + ',"vroegsignalen":['
    )
    # Signals: those dated in the period, then those outside it that a case active in the
    # period references (two keyset scans; one query with "OR id IN (subquery)" made SQLite
    # rebuild the subquery for every chunk).
    in_period = and_(Signal.signal_date >= start, Signal.signal_date <= end)
    dated = select(Signal).where(Signal.municipality_id == municipality.id, in_period)
    referenced = (
        select(Signal)
        .join(CaseSignal, CaseSignal.signal_id == Signal.id)
        .join(Case, Case.id == CaseSignal.case_id)
        .where(
            Signal.municipality_id == municipality.id,
            ~in_period,
            _active_cases(municipality.id, start, end),
        )
    )
    index = 0
    for query in (dated, referenced):
        query = query.order_by(Signal.id).options(selectinload(Signal.client))
        last = 0
        while True:
            page = session.scalars(query.where(Signal.id > last).limit(CHUNK)).all()
            if not page:
                break
            for signal in page:
                item = signal_object(signal, protector)
                where = f"{path}.vroegsignalen[{index}]"
                problems += _schema_violations("signal", item, where)
                problems += _signal_extra(item, where)
                writer.write(("," if index else "") + _dumps(item))
                index += 1
            last = page[-1].id
            session.expunge_all()
    delivery.signals += index
    writer.write('],"vroegsignaalzaken":[')
    index = 0
    for case, signal_ids in _cases_in_period(session, municipality.id, start, end):
        item = case_object(case, signal_ids)
        where = f"{path}.vroegsignaalzaken[{index}]"
        # Every signal a case references is in the levering by construction (the signal
        # query above includes the signals of every active case), so no set of a million
        # IDs is kept to prove it; whole documents are checked by ``extra_violations``.
        problems += _schema_violations("case", item, where)
        writer.write(("," if index else "") + _dumps(item))
        delivery.attempts += len(item["contactpogingen"])
        index += 1
    delivery.cases += index
    writer.write("]}")
    return problems


def last_complete_period(today: dt.date, kind: str) -> tuple[dt.date, dt.date]:
    """The most recent month, quarter or half-year that ended before ``today``."""
    months = {"month": 1, "quarter": 3, "half-year": 6}[kind]
    index = (today.year * 12 + today.month - 1) // months * months - months  # its first month
    start = dt.date(index // 12, index % 12 + 1, 1)
    after = index + months
    end = dt.date(after // 12, after % 12 + 1, 1) - dt.timedelta(days=1)
    return start, end


def deliver_periodically(runtime: Any) -> str | None:
    """Job ``deliver_ddas`` (daily): the last complete period's delivery, once.

    Writes ``ddas-<start>-<end>.json`` for every municipality into ``ddas_dir`` unless the
    delivery log already has that period; returns the file written, if any.
    """
    import logging

    from signals.db import unit_of_work
    from signals.rules import today_nl

    log = logging.getLogger(__name__)
    settings = runtime.settings
    start, end = last_complete_period(today_nl(), settings.ddas_period)
    with unit_of_work(runtime.sessions) as session:
        done = session.scalar(
            select(DdasDelivery.id).where(
                DdasDelivery.period_start == start, DdasDelivery.period_end == end
            )
        )
        municipalities = list(session.scalars(select(Municipality).order_by(Municipality.code)))
        if done is not None or not municipalities:
            return None
        out = Path(settings.ddas_dir) / f"ddas-{start}-{end}.json"
        try:
            export(session, runtime.protector, settings, municipalities, start, end, out, "systeem")
        except ExportRefused as exc:
            log.warning("DDAS delivery %s..%s refused: %s", start, end, exc)
            return None
    return str(out)
