"""Our statement of the DDAS Vroegsignalering v1.2 rules, and the extra rules of our exports.

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

A violation is named by its path (``leveringen[0].vroegsignalen[12].client``) and the rule,
never by the value.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import fastjsonschema
import jsonschema
import rfc3339_validator

from outreach.enums import CaseResult, ContactKind, Dagdeel
from signals.enums import Gender, PartnerType, SignalStatus
from signals.rules import bsn_valid


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


def schema_violations(kind: str, instance: Any, prefix: str = "") -> list[str]:
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
    found = schema_violations("document", document)
    if extra and not found:
        for i, levering in enumerate(document["leveringen"]):
            found += extra_violations(levering, f"leveringen[{i}]", i + 1)
    return found


def signal_violations(signal: dict[str, Any], path: str) -> list[str]:
    """Our export rules for one signal: the elfproef and the order of its dates."""
    out = []
    bsn = signal.get("client", {}).get("burgerservicenummer")
    if bsn is not None and not bsn_valid(bsn):
        out.append(f"{path}.client.burgerservicenummer: elfproef")
    start, sent = signal.get("ontstaansdatum"), signal.get("signaaldatum")
    if start and sent and start > sent:
        out.append(f"{path}.ontstaansdatum: after signaaldatum")
    return out


def extra_violations(levering: dict[str, Any], path: str, teller: int) -> list[str]:
    """Our export rules for a whole levering: its signals, unique IDs, references, teller."""
    out = [] if levering.get("teller") == teller else [f"{path}.teller: not {teller}"]
    ids: set[str] = set()
    for j, signal in enumerate(levering.get("vroegsignalen", [])):
        out += signal_violations(signal, f"{path}.vroegsignalen[{j}]")
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
