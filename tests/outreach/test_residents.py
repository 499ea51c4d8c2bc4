"""The resident check: BRP extract import, the Haal Centraal client, lenient name matching."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from outreach.enums import CaseResult, CaseState
from outreach.jobs import check_residents, match
from outreach.models import Case, Resident
from outreach.residents import (
    HaalCentraalRegister,
    Person,
    RegisterUnavailable,
    import_extract,
    names_match,
)
from signals.db import unit_of_work
from signals.models import Signal
from signals.runtime import Runtime
from tests.brp_server import API_KEY, persoon, serving
from tests.conftest import SHARED
from tests.factories import World, row

BRP_SPEC = SHARED / "reference/brp-personen/specificatie/resolved/openapi.json"
TODAY = dt.date(2026, 11, 23)
HEADER = (
    "bsn;voornamen;voorvoegsel;geslachtsnaam;naam_partner;voorvoegsel_partner;geboortedatum;"
    "straat;huisnummer;huisletter;huisnummertoevoeging;postcode;woonplaats\n"
)
EXTRACT = (
    HEADER
    + """111222333;Johanna;de;Vries;;;1990-04-12;Oudegracht;12;;;3511AB;Utrecht
123456782;Aylin;;Öztürk;;;1985-02-01;Kanaalstraat;5;;;3531CA;Utrecht
100000009;Maria;;Jansen;Bakker;;1970-07-07;Biltstraat;80;A;;3572BG;Utrecht
123456789;Fout;;Elfproef;;;1990-01-01;Biltstraat;1;;;3572BG;Utrecht
100000010;Kees;;;;;1980-01-01;Biltstraat;2;;;3572 BG;Utrecht
100000022;Piet;;Smit;;;2099-01-01;Biltstraat;3;;;35 BG;Utrecht
100000009;Dubbel;;Jansen;;;1970-07-07;Biltstraat;80;;;3572BG;Utrecht
"""
)


def _person(name: str, partners: tuple[str, ...] = ()) -> Person:
    return Person(bsn="111222333", geslachtsnaam=name, partner_names=partners)


def test_names_match_leniently() -> None:
    assert names_match("de Vries", _person("Vries"))
    assert names_match("Vries", _person("de Vries"))
    assert names_match("OZTURK", _person("Öztürk"))
    assert names_match("Yilmaz", _person("Yılmaz"))
    assert names_match("El Amrani", _person("Amrani"))
    assert names_match("Jansen-Bakker", _person("Jansen"))  # a double name
    assert names_match("Bakker", _person("Jansen", partners=("Bakker",)))  # married name
    assert names_match("van den Berg", _person("Berg"))
    assert not names_match("de Jong", _person("de Vries"))
    assert not names_match("", _person("de Vries"))
    assert not names_match("Woonstichting BV", _person("Jansen"))


def test_an_extract_with_broken_rows_loads_the_good_ones(world: World) -> None:
    runtime = world.runtime
    with unit_of_work(runtime.sessions) as session:
        report = import_extract(
            session, runtime.protector, world.municipality_id, EXTRACT.encode(), TODAY
        ).as_dict()
    assert report["rows_total"] == 7 and report["rows_loaded"] == 3
    assert {(r["row"], r["field"], r["code"]) for r in report["rejections"]} == {
        (4, "bsn", "bsn_checksum"),
        (5, "geslachtsnaam", "required"),
        (6, "geboortedatum", "date_in_future"),
        (6, "postcode", "postcode_format"),
        (7, "bsn", "duplicate_signal"),
    }
    assert "Elfproef" not in json.dumps(report)  # rows are named by number, never content
    with unit_of_work(runtime.readers) as session:
        stored = session.scalars(select(Resident)).all()
        assert len(stored) == 3 and all(b"Vries" not in r.identity for r in stored)
    # A new extract replaces the old one entirely.
    with unit_of_work(runtime.sessions) as session:
        again = import_extract(
            session, runtime.protector, world.municipality_id, EXTRACT.encode()[:400], TODAY
        )
    with unit_of_work(runtime.readers) as session:
        assert len(session.scalars(select(Resident)).all()) == again.rows_loaded
    with unit_of_work(runtime.sessions) as session, pytest.raises(ValueError, match="misses"):
        import_extract(session, runtime.protector, world.municipality_id, b"bsn;naam\n1;x\n", TODAY)


def _cases(world: World) -> dict[str, Case]:
    with unit_of_work(world.runtime.readers) as session:
        out = {}
        for case in session.scalars(select(Case)):
            for signal in case.signals:
                out[signal.signal_ref] = case
            session.expunge(case)
        return out


SIGNALS = [
    # BSN registered here, the partner writes the name differently.
    row(signaal_id="R1", bsn="111222333", tussenvoegsel="", achternaam="DE VRIES"),
    # Known by her married name.
    row(signaal_id="R2", bsn="100000009", tussenvoegsel="", achternaam="Bakker"),
    # No BSN: the address has a resident of that name (diacritics differ).
    row(signaal_id="R3", bsn="", tussenvoegsel="", achternaam="Ozturk", postcode="3531CA",
        huisnummer="5", geboortedatum="1985-02-01"),
    # No BSN and nobody registered at the address: not a resident.
    row(signaal_id="R4", bsn="", achternaam="Visser", postcode="3581AA", huisnummer="9"),
    # A BSN with a name that does not match: review, not away.
    row(signaal_id="R5", bsn="123456782", tussenvoegsel="", achternaam="Peters"),
    # A BSN the municipality's extract does not hold: not registered here.
    row(signaal_id="R7", bsn="100000034", achternaam="Mulder"),
]  # fmt: skip


def test_the_check_job_with_an_imported_extract(world: World) -> None:
    runtime = world.runtime
    world.ingest(SIGNALS)
    match(runtime)
    assert check_residents(runtime) == {"inwoner": 0, "geen_inwoner": 0, "te_beoordelen": 0}
    with unit_of_work(runtime.sessions) as session:
        import_extract(session, runtime.protector, world.municipality_id, EXTRACT.encode(), TODAY)
    assert check_residents(runtime) == {"inwoner": 3, "geen_inwoner": 2, "te_beoordelen": 1}
    assert check_residents(runtime)["inwoner"] == 0  # each case is checked once
    cases = _cases(world)
    assert {ref: cases[ref].resident_check for ref in ("R1", "R2", "R3")} == dict.fromkeys(
        ("R1", "R2", "R3"), "inwoner"
    )
    assert cases["R4"].state is CaseState.AFGESLOTEN
    assert cases["R4"].result is CaseResult.GEEN_INWONER
    assert cases["R7"].result is CaseResult.GEEN_INWONER
    assert cases["R5"].state is CaseState.TE_BEOORDELEN
    assert cases["R5"].review_reason == "inwonercheck: naam wijkt af van de BRP"
    with unit_of_work(runtime.readers) as session:
        r4 = session.scalars(select(Signal).where(Signal.signal_ref == "R4")).one()
        assert r4.status.value == "Persoon is geen inwoner (meer) in de gemeente"


def _with_brp(runtime: Runtime, url: str, key: str = API_KEY) -> Runtime:
    return Runtime(
        runtime.settings.model_copy(update={"brp_api_url": url, "brp_api_key": key}), runtime.engine
    )


PEOPLE = [
    persoon("111222333", "Vries", "0344", "3511AB", 12, voorvoegsel="de", geboortedatum="1990-04-12"),  # noqa: E501
    persoon("100000009", "Jansen", "0344", "3572BG", 80, partner=("", "Bakker")),
    persoon("123456782", "Öztürk", "0363", "1012AB", 1),  # moved to Amsterdam
    persoon("100000010", "Öztürk", "0344", "3531CA", 5, geboortedatum="1985-02-01"),
]  # fmt: skip


def test_the_check_job_through_the_haal_centraal_api(world: World) -> None:
    world.ingest([*SIGNALS[:4], row(signaal_id="R6", bsn="123456782", achternaam="Öztürk")])
    match(world.runtime)
    with serving(PEOPLE) as (url, api):
        runtime = _with_brp(world.runtime, url)
        assert check_residents(runtime) == {"inwoner": 3, "geen_inwoner": 2, "te_beoordelen": 0}
        assert all(q["fields"] and q["type"] for q in api.requests)
        address = [q for q in api.requests if q["type"] == "ZoekMetPostcodeEnHuisnummer"]
        assert address and all(q["gemeenteVanInschrijving"] == "0344" for q in address)
    cases = _cases(world)
    assert cases["R6"].result is CaseResult.GEEN_INWONER  # registered in another municipality
    assert cases["R1"].resident_check == "inwoner"


def test_an_unreachable_or_refusing_register_postpones_the_check(world: World) -> None:
    world.ingest(SIGNALS[:1])
    match(world.runtime)
    with serving(PEOPLE) as (url, api):
        api.down = True
        assert check_residents(_with_brp(world.runtime, url))["inwoner"] == 0
        api.down = False
        wrong_key = HaalCentraalRegister(url, "0344", api_key="wrong")
        with pytest.raises(RegisterUnavailable, match="401: Unauthorized"):
            wrong_key.by_bsn(["111222333"])
        assert _cases(world)["R1"].resident_check is None  # nothing half-done
        assert check_residents(_with_brp(world.runtime, url))["inwoner"] == 1
    with pytest.raises(RegisterUnavailable, match="not reachable"):
        HaalCentraalRegister(url, "0344", timeout=1).by_bsn(["111222333"])


def test_our_requests_and_the_test_server_follow_the_official_spec(world: World) -> None:
    if not BRP_SPEC.is_file():
        pytest.skip(f"the official BRP API Personen spec is not beside the project ({BRP_SPEC})")
    import jsonschema

    spec = json.loads(BRP_SPEC.read_text())

    def validate(instance: Any, name: str) -> None:
        schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
        jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        ).validate(instance)

    with serving(PEOPLE) as (url, api):
        register = HaalCentraalRegister(url, "0344", api_key=API_KEY)
        assert set(register.by_bsn(["111222333", "100000009"])) == {"111222333", "100000009"}
        people = register.at_address("3531 ca", 5)
        assert [p.geslachtsnaam for p in people] == ["Öztürk"]
        assert people[0].geboortedatum == dt.date(1985, 2, 1)
    for query in api.requests:
        validate(query, query["type"])
    for body in api.responses:
        validate(body, body["type"] + "Response")


def _certificates(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def issue(subject: str, key: Any, issuer: Any, issuer_key: Any, **kinds: Any) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )
        for extension, critical in kinds.values():
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issue("Test CA", ca_key, name("Test CA"), ca_key,
               basic=(x509.BasicConstraints(ca=True, path_length=None), True))  # fmt: skip
    files = {}
    for role in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        extra = {}
        if role == "server":
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            extra["san"] = (san, False)
        cert = issue(f"brp-{role}", key, ca.subject, ca_key, **extra)
        files[f"{role}.pem"] = folder / f"{role}.pem"
        files[f"{role}.pem"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{role}.key"] = folder / f"{role}.key"
        files[f"{role}.key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    files["ca.pem"] = folder / "ca.pem"
    files["ca.pem"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return files


def test_the_brp_client_speaks_mutual_tls_with_the_configured_certificate(
    tmp_path: Path,
) -> None:
    import ssl

    files = _certificates(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files["server.pem"], files["server.key"])
    context.load_verify_locations(files["ca.pem"])
    context.verify_mode = ssl.CERT_REQUIRED  # no client certificate, no answer
    with serving(PEOPLE, ssl_context=context) as (url, api):
        assert url.startswith("https://")
        register = HaalCentraalRegister(
            url,
            "0344",
            api_key=API_KEY,
            client_cert=str(files["client.pem"]),
            client_key=str(files["client.key"]),
            ca_bundle=str(files["ca.pem"]),
        )
        assert register.by_bsn(["111222333"])["111222333"].geslachtsnaam == "Vries"
        without = HaalCentraalRegister(url, "0344", api_key=API_KEY, ca_bundle=str(files["ca.pem"]))
        with pytest.raises(RegisterUnavailable, match="not reachable"):
            without.by_bsn(["111222333"])
        untrusted = HaalCentraalRegister(url, "0344", api_key=API_KEY)  # system CAs only
        with pytest.raises(RegisterUnavailable, match="not reachable"):
            untrusted.by_bsn(["111222333"])
    assert len(api.requests) == 1
    with pytest.raises(RegisterUnavailable, match="cannot be read"):
        HaalCentraalRegister(url, "0344", client_cert=str(tmp_path / "missing.pem"))
