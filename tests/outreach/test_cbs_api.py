"""The DDAS pull API for CBS: OAuth2 client credentials, signed pages, FSC and problem errors."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from outreach.models import DdasDelivery
from signals.db import unit_of_work
from signals.rules import today_nl
from signals.runtime import Runtime
from tests.factories import World
from tests.outreach.test_ddas import DDAS, official_violations, paged_data
from webapp import create_app

CLIENT_ID, SECRET = "cbs-ddas", "cbs-secret-0123456789-abcdef"
START = (today_nl() - dt.timedelta(days=40)).isoformat()
END = today_nl().isoformat()


def signing_files(folder: Path, days: int = 30) -> tuple[str, str]:
    """A self-signed RSA key and certificate, as PEM files (the chain of one)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Vroegsignaal DDAS test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    key_file, cert_file = folder / "sign.key", folder / "sign.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(key_file), str(cert_file)


def cbs_client(world: World, tmp_path: Path, signed: bool = True, **extra: Any) -> Any:
    values: dict[str, Any] = {
        "ddas_contact_email": "vroegsignalering@utrecht.example",
        "cbs_client_id": CLIENT_ID,
        "cbs_client_secret": SECRET,
    }
    if signed:
        values["cbs_signing_key"], values["cbs_signing_cert"] = signing_files(tmp_path)
    values.update(extra)
    runtime = Runtime(world.runtime.settings.model_copy(update=values), world.runtime.engine)
    return create_app(runtime=runtime, TESTING=True).test_client()


def bearer(client: Any) -> dict[str, str]:
    answer = client.post("/gegevens/token", data={"grant_type": "client_credentials"},
                         auth=(CLIENT_ID, SECRET))  # fmt: skip
    assert answer.status_code == 200, answer.get_json()
    return {"Authorization": f"Bearer {answer.get_json()['access_token']}"}


def ask(client: Any, headers: dict[str, str], **body: Any) -> Any:
    request = {"aanleverperiodeStartdatum": START, "aanleverperiodeEinddatum": END,
               "aanleverendeOrganisatie": "Gemeente Utrecht", **body}  # fmt: skip
    return client.post("/gegevens", json=request, headers=headers)


def verified(answer: Any) -> dict[str, Any]:
    """The body, after checking Digest and the detached PS256 JWS with the x5c certificate."""
    from joserfc import jws
    from joserfc.jwk import RSAKey

    body = answer.get_data()
    expected = "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert answer.headers["Digest"] == expected
    signature = answer.headers["nlgov-adr-payload-sig"]
    protected, payload, _ = signature.split(".")
    assert payload == ""  # detached
    header = json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))
    assert header["alg"] == "PS256" and header["typ"] == "JOSE" and header["kid"]
    leaf = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    public = leaf.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # x5c makes the header larger than joserfc's default limit, pages the payload.
    registry = jws.JWSRegistry(algorithms=["PS256"])
    registry.max_header_length, registry.max_payload_length = 64 * 1024, 2**30
    key = RSAKey.import_key(public)
    jws.deserialize_compact(signature, key, ["PS256"], registry, payload=body)
    with pytest.raises(jws.BadSignatureError):  # a changed body does not pass
        changed = body.replace(b'"gegevens"', b'"gegevenz"')
        jws.deserialize_compact(signature, key, ["PS256"], registry, payload=changed)
    result: dict[str, Any] = json.loads(body)
    return result


def test_off_without_a_client_id(client: Any) -> None:
    for path in ("/gegevens", "/gegevens/token"):
        answer = client.post(path, json={})
        assert answer.status_code == 404
        assert answer.headers["Fsc-Error-Code"] == "ERROR_CODE_SERVICE_NOT_FOUND"
        assert answer.get_json()["domain"] == "ERROR_DOMAIN_INWAY"


def test_client_credentials_give_a_token_and_nothing_else_does(
    world: World, tmp_path: Path
) -> None:
    client = cbs_client(world, tmp_path)
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET,
            "scope": "read"}  # fmt: skip
    by_form = client.post("/gegevens/token", data=form)
    token = by_form.get_json()
    assert by_form.status_code == 200 and by_form.headers["Cache-Control"] == "no-store"
    assert token["token_type"] == "Bearer" and token["scope"] == "read"
    assert token["expires_in"] == 60 * 60
    assert ask(client, {"Authorization": f"Bearer {token['access_token']}"}).status_code == 200

    wrong = client.post("/gegevens/token", data={"grant_type": "client_credentials"},
                        auth=(CLIENT_ID, SECRET + "x"))  # fmt: skip
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "invalid_client"
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    assert SECRET not in wrong.get_data(as_text=True)
    nobody = client.post("/gegevens/token", data={"grant_type": "client_credentials"})
    assert nobody.status_code == 401
    grant = client.post("/gegevens/token", data={"grant_type": "password"},
                        auth=(CLIENT_ID, SECRET))  # fmt: skip
    assert grant.status_code == 400 and grant.get_json()["error"] == "unsupported_grant_type"
    scope = client.post("/gegevens/token", data={"grant_type": "client_credentials",
                        "scope": "read write"}, auth=(CLIENT_ID, SECRET))  # fmt: skip
    assert scope.status_code == 400 and scope.get_json()["error"] == "invalid_scope"
    method = client.get("/gegevens/token")
    assert method.status_code == 405
    assert method.headers["Fsc-Error-Code"] == "ERROR_CODE_METHOD_UNSUPPORTED"


def test_bearer_token_missing_invalid_or_expired(world: World, tmp_path: Path) -> None:
    import time

    from webapp.cbs import issue_token

    client = cbs_client(world, tmp_path)
    settings = client.application.extensions["vroegsignaal"].settings
    expired, _ = issue_token(settings, now=time.time() - 2 * 60 * 60)
    other = settings.model_copy(update={"cbs_client_secret": "another-secret-0123456789"})
    rotated, _ = issue_token(other)  # signed with a secret that is no longer the client's
    cases = [
        ({}, "ERROR_CODE_ACCESS_TOKEN_MISSING"),
        ({"Authorization": "Bearer"}, "ERROR_CODE_ACCESS_TOKEN_MISSING"),
        ({"Authorization": "Bearer nonsense"}, "ERROR_CODE_ACCESS_TOKEN_INVALID"),
        ({"Authorization": f"Bearer {rotated}"}, "ERROR_CODE_ACCESS_TOKEN_INVALID"),
        ({"Authorization": f"Bearer {expired}"}, "ERROR_CODE_ACCESS_TOKEN_EXPIRED"),
    ]
    for headers, code in cases:
        answer = ask(client, headers)
        assert answer.status_code == 401, code
        assert answer.headers["Fsc-Error-Code"] == code
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert answer.mimetype == "application/problem+json"
        assert answer.get_json() | {"title": "", "detail": ""} == {
            "code": code, "domain": "ERROR_DOMAIN_INWAY", "status": 401, "title": "", "detail": "",
        }  # fmt: skip
    wrong_method = client.get("/gegevens")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Fsc-Error-Code"] == "ERROR_CODE_METHOD_UNSUPPORTED"


def test_signed_pages_of_whole_cases_valid_alone_and_logged(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    paged_data(world)  # a case of two signals, a case of one, two signals without a case
    client = cbs_client(world, tmp_path, cbs_page_size=4)
    headers = bearer(client)
    caplog.set_level(logging.INFO)
    seen: list[str] = []
    bodies = []
    for page in (1, 2):
        answer = ask(client, headers, page=page, pageSize=10)  # 10 is above our 4: 4
        assert answer.status_code == 200, answer.get_json()
        assert answer.mimetype == "application/json"
        body = verified(answer)
        bodies.append(answer.get_data())
        assert body["paginering"] == {"pageSize": 4, "currentPage": page, "totalPages": 2,
                                      "totalRecords": 5}  # fmt: skip
        document = body["gegevens"]
        from outreach.ddas import violations

        assert violations(document) == []
        if (DDAS / "json_schema_Uitwisselmodel.json").is_file():
            assert official_violations(document) == []
        (levering,) = document["leveringen"]
        assert levering["gemeentecode"] == "0344" and len(levering["vroegsignalen"]) <= 4
        seen += [s["ID"] for s in levering["vroegsignalen"]]
    assert len(seen) == len(set(seen)) == 5
    # A smaller page size is honoured; the name may be the code, also CBS's "GM" form.
    small = ask(client, headers, pageSize=2, aanleverendeOrganisatie="GM0344")
    assert verified(small)["paginering"]["totalPages"] == 3
    assert ask(client, headers, aanleverendeOrganisatie=" utrecht ").status_code == 200
    # Every page served is in the delivery log: the body's hash, by the client, no BSN.
    with unit_of_work(world.runtime.readers) as session:
        log = session.scalars(select(DdasDelivery).order_by(DdasDelivery.id)).all()
    assert [d.by for d in log] == [f"cbs:{CLIENT_ID}"] * 4
    assert [d.sha256 for d in log[:2]] == [hashlib.sha256(b).hexdigest() for b in bodies]
    assert [d.signals for d in log[:2]] == [4, 1] and log[0].gemeenten == "0344"
    text = json.dumps([[str(getattr(d, c.name)) for c in DdasDelivery.__table__.columns]
                       for d in log]) + caplog.text  # fmt: skip
    assert "111222333" not in text and "123456782" not in text and "3512PH" not in text


@pytest.mark.parametrize(
    ("body", "status", "code", "names"),
    [
        ({"kleur": "111222333"}, 400, "invalid_request", ["kleur"]),
        ({"aanleverperiodeStartdatum": "01-01-2026"}, 400, "invalid_request",
         ["aanleverperiodeStartdatum"]),
        ({"aanleverperiodeStartdatum": "2026-02-30"}, 400, "invalid_request",
         ["aanleverperiodeStartdatum"]),
        ({"page": 0, "pageSize": "10"}, 400, "invalid_request", ["page", "pageSize"]),
        ({"aanleverendeOrganisatie": None}, 400, "invalid_request", ["aanleverendeOrganisatie"]),
        ({"aanleverperiodeStartdatum": END, "aanleverperiodeEinddatum": START}, 422,
         "period_order", []),
        ({"aanleverendeOrganisatie": "Gemeente Nergenshuizen"}, 422, "unknown_organisation", []),
        ({"page": 3}, 422, "page_out_of_range", []),
        ({"pageSize": 1}, 422, "page_size_too_small", []),
    ],
)  # fmt: skip
def test_bad_requests_are_problems_naming_fields_never_values(
    world: World, tmp_path: Path, body: dict[str, Any], status: int, code: str, names: list[str]
) -> None:
    paged_data(world)
    client = cbs_client(world, tmp_path)
    answer = ask(client, bearer(client), **body)
    assert answer.status_code == status
    assert answer.mimetype == "application/problem+json"
    problem = answer.get_json()
    assert problem["status"] == status and problem["code"] == code and problem["title"]
    assert [p["name"] for p in problem.get("invalidParams", [])] == names
    text = answer.get_data(as_text=True)
    assert "111222333" not in text and "Nergenshuizen" not in text and "01-01-2026" not in text
    with unit_of_work(world.runtime.readers) as session:
        assert session.scalars(select(DdasDelivery)).all() == []  # nothing served, nothing logged


def test_a_body_that_is_not_json_or_does_not_match_its_digest(world: World, tmp_path: Path) -> None:
    client = cbs_client(world, tmp_path)
    headers = bearer(client)
    answer = client.post("/gegevens", data="page=1", headers=headers)
    assert answer.status_code == 400 and answer.get_json()["code"] == "invalid_request"
    payload = json.dumps({"aanleverperiodeStartdatum": START, "aanleverperiodeEinddatum": END,
                          "aanleverendeOrganisatie": "0344"}).encode()  # fmt: skip
    good = "SHA-256=" + base64.b64encode(hashlib.sha256(payload).digest()).decode()
    matching = client.post("/gegevens", data=payload, content_type="application/json",
                           headers={**headers, "Digest": good})  # fmt: skip
    assert matching.status_code == 200
    other = client.post("/gegevens", data=payload, content_type="application/json",
                        headers={**headers, "Digest": "SHA-256=" + "A" * 43 + "="})  # fmt: skip
    assert other.status_code == 400 and other.get_json()["code"] == "digest_mismatch"
    huge = client.post("/gegevens", data=b"{" + b" " * 100_000 + b"}",
                       content_type="application/json", headers=headers)  # fmt: skip
    assert huge.status_code == 413 and huge.mimetype == "application/problem+json"


def test_nothing_is_sent_unsigned(world: World, tmp_path: Path) -> None:
    paged_data(world)
    unsigned = cbs_client(world, tmp_path, signed=False)
    answer = ask(unsigned, bearer(unsigned))
    assert answer.status_code == 503 and answer.get_json()["code"] == "signing_unavailable"
    assert "nlgov-adr-payload-sig" not in answer.headers
    # A key that does not belong to the certificate, or an expired certificate: refused too.
    (tmp_path / "other").mkdir()
    key, _ = signing_files(tmp_path / "other")
    _, cert = signing_files(tmp_path)
    mismatched = cbs_client(world, tmp_path, signed=False, cbs_signing_key=key,
                            cbs_signing_cert=cert)  # fmt: skip
    answer = ask(mismatched, bearer(mismatched))
    assert answer.status_code == 503 and "does not belong" in answer.get_json()["detail"]
    with unit_of_work(world.runtime.readers) as session:
        assert session.scalars(select(DdasDelivery)).all() == []


def test_an_answer_breaking_the_rules_is_not_sent(world: World, tmp_path: Path) -> None:
    from signals.models import Signal

    paged_data(world)
    with unit_of_work(world.runtime.sessions) as session:
        signal = session.scalars(select(Signal).where(Signal.signal_ref == "P1")).one()
        signal.arrears_start_date = signal.signal_date + dt.timedelta(days=3)  # broken
    client = cbs_client(world, tmp_path)
    answer = ask(client, bearer(client))
    assert answer.status_code == 500 and answer.get_json()["code"] == "export_refused"
    assert answer.get_json()["violations"] == [
        "leveringen[0].vroegsignalen[0].ontstaansdatum: after signaaldatum"
    ]
    assert "nlgov-adr-payload-sig" not in answer.headers


def test_the_openapi_document_names_the_ddas_api(client: Any) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    operation = spec["paths"]["/gegevens"]["post"]
    assert operation["security"] == [{"cbs": ["read"]}]
    assert {"200", "400", "401", "422", "503"} <= set(operation["responses"])
    assert spec["components"]["securitySchemes"]["cbs"]["type"] == "oauth2"
