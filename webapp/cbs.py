"""The DDAS pull API for CBS (DDAS-VS.yaml v1.0, Uitwisselmodel v1.2): ``POST /gegevens``.

- **Off** unless ``cbs_client_id`` is set: then every path here answers 404.
- **OAuth2 client credentials**: ``POST /gegevens/token`` (form ``grant_type=client_credentials``,
  optional ``scope=read``; the client id and secret by HTTP Basic or in the form, compared in
  constant time) returns a bearer token of ``cbs_token_minutes``, signed with the app's secret
  and the client secret (changing either ends every token).
- **The data**: one municipality (``aanleverendeOrganisatie``: its name, "Gemeente <name>", or
  its CBS code "0344"/"GM0344") and period per request, in pages of at most
  ``cbs_page_size`` signals (a smaller ``pageSize`` is honoured); built by the same builder as
  the file export (:mod:`outreach.ddas`), each page checked object by object and valid alone.
- **Signed**: ``Digest`` and ``nlgov-adr-payload-sig`` over the exact body
  (:mod:`webapp.payload_signing`); without a usable signing key nothing is sent (503).
- **Errors**: 401/404/405 as FSC errors with ``Fsc-Error-Code``; 400 and 422 as problem
  documents naming fields and rules, never a value. Every page served is in the delivery log
  (``by`` = ``cbs:<client id>``, the hash of the body).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import unquote_plus

from flask import Blueprint, Response, current_app, jsonify, request
from itsdangerous import BadSignature, URLSafeSerializer
from marshmallow import RAISE, Schema, ValidationError, fields
from marshmallow.validate import Length, Range
from sqlalchemy import select
from sqlalchemy.orm import Session

from config import Settings
from outreach.ddas import (
    ExportRefused,
    PageNotFound,
    PageSizeTooSmall,
    Pagination,
    Tally,
    Writer,
    log_delivery,
    paginate,
    write_document,
)
from signals.models import Municipality
from webapp.api import fsc_error, problem
from webapp.db import get_session
from webapp.payload_signing import PayloadSigner, SigningUnavailable, digest_header

bp = Blueprint("cbs", __name__)
log = logging.getLogger(__name__)

SCOPE = "read"
#: The salt of the access tokens (not a secret: it keeps them apart from other signed values).
TOKEN_PURPOSE = "vroegsignaal.cbs-access-token"  # noqa: S105
MAX_REQUEST_BYTES = 64 * 1024


def _settings() -> Settings:
    settings: Settings = current_app.extensions["vroegsignaal"].settings
    return settings


@bp.before_request
def _only_when_configured() -> Response | None:
    if not _settings().cbs_client_id:
        return fsc_error(404, "ERROR_CODE_SERVICE_NOT_FOUND", "Niet gevonden",
                         "the DDAS API is not enabled here")  # fmt: skip
    request.max_content_length = MAX_REQUEST_BYTES
    return None


# -- tokens ------------------------------------------------------------------------------------
def _serializer(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(
        f"{settings.secret_key}\x00{settings.cbs_client_secret or ''}",
        salt=TOKEN_PURPOSE,
        signer_kwargs={"digest_method": hashlib.sha256},
    )


def issue_token(settings: Settings, now: float | None = None) -> tuple[str, int]:
    """A bearer token for the configured client and its lifetime in seconds."""
    lifetime = settings.cbs_token_minutes * 60
    expires = int(time.time() if now is None else now) + lifetime
    claims = {"sub": settings.cbs_client_id, "scope": SCOPE, "exp": expires}
    return str(_serializer(settings).dumps(claims)), lifetime


def token_problem(settings: Settings, token: str, now: float | None = None) -> str | None:
    """Why ``token`` is not good now (an FSC error code), or None when it is."""
    try:
        claims = _serializer(settings).loads(token)
    except BadSignature:
        return "ERROR_CODE_ACCESS_TOKEN_INVALID"
    if not isinstance(claims, dict) or claims.get("sub") != settings.cbs_client_id:
        return "ERROR_CODE_ACCESS_TOKEN_INVALID"
    if SCOPE not in str(claims.get("scope", "")).split():
        return "ERROR_CODE_ACCESS_TOKEN_INVALID"
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= (now or time.time()):
        return "ERROR_CODE_ACCESS_TOKEN_EXPIRED"
    return None


def _same(given: str | None, expected: str | None) -> bool:
    if given is None or not expected:
        hmac.compare_digest(b"", b"-")  # the same work whatever is missing
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def _client_is_known(settings: Settings) -> tuple[bool, bool]:
    """Whether the request names the configured client with its secret, and whether it
    used HTTP Basic (client_secret_basic, RFC 6749 2.3.1) rather than the form."""
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        pairs = [(auth.username, auth.password)]
        # RFC 6749 asks clients to form-encode both before Basic; not all do.
        pairs.append((unquote_plus(auth.username or ""), unquote_plus(auth.password or "")))
        basic = True
    else:
        pairs = [(request.form.get("client_id"), request.form.get("client_secret"))]
        basic = False
    known = False
    for client_id, secret in pairs:
        # Both comparisons always run: no early exit tells which part was wrong.
        same_id = _same(client_id, settings.cbs_client_id)
        same_secret = _same(secret, settings.cbs_client_secret)
        known |= same_id & same_secret
    return known, basic


def _oauth_error(status: int, error: str, description: str, basic: bool = False) -> Response:
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    if status == 401:
        scheme = "Basic" if basic else "Bearer"
        response.headers["WWW-Authenticate"] = f'{scheme} realm="vroegsignaal-ddas"'
    return response


@bp.post("/gegevens/token")
def token() -> Response:
    """OAuth2 client credentials grant (RFC 6749 4.4)."""
    settings = _settings()
    known, basic = _client_is_known(settings)
    if not known:
        log.warning("DDAS API: token refused, unknown client or wrong secret")
        return _oauth_error(401, "invalid_client", "client authentication failed", basic)
    grant = request.form.get("grant_type")
    if not grant:
        return _oauth_error(400, "invalid_request", "grant_type is required")
    if grant != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "only client_credentials")
    scopes = set((request.form.get("scope") or SCOPE).split())
    if not scopes or scopes - {SCOPE}:
        return _oauth_error(400, "invalid_scope", "the only scope is 'read'")
    access_token, lifetime = issue_token(settings)
    response = jsonify({"access_token": access_token, "token_type": "Bearer",
                        "expires_in": lifetime, "scope": SCOPE})  # fmt: skip
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _unauthorised(settings: Settings) -> Response | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return fsc_error(401, "ERROR_CODE_ACCESS_TOKEN_MISSING", "Geen access token",
                         "send a bearer token from POST /gegevens/token",
                         **{"WWW-Authenticate": 'Bearer realm="vroegsignaal-ddas"'})  # fmt: skip
    code = token_problem(settings, value.strip())
    if code is None:
        return None
    expired = code == "ERROR_CODE_ACCESS_TOKEN_EXPIRED"
    return fsc_error(
        401, code, "Verlopen access token" if expired else "Ongeldige access token",
        "the access token has expired" if expired else "the access token is not valid",
        **{"WWW-Authenticate": 'Bearer realm="vroegsignaal-ddas", error="invalid_token"'},
    )  # fmt: skip


# -- the request -------------------------------------------------------------------------------
class FullDate(fields.Date):
    """An RFC 3339 full-date, ``YYYY-MM-DD`` and nothing else."""

    _SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}")

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dt.date:
        if not isinstance(value, str) or not self._SHAPE.fullmatch(value):
            raise ValidationError("Not a date (YYYY-MM-DD).")
        result: dt.date = super()._deserialize(value, attr, data, **kwargs)
        return result


class GegevensRequestSchema(Schema):
    """DDAS-VS ``GegevensRequest`` (additionalProperties false)."""

    class Meta:
        unknown = RAISE

    aanleverperiodeStartdatum = FullDate(required=True)
    aanleverperiodeEinddatum = FullDate(required=True)
    aanleverendeOrganisatie = fields.String(required=True, validate=Length(min=1, max=200))
    page = fields.Integer(strict=True, validate=Range(min=1), load_default=1)
    pageSize = fields.Integer(strict=True, validate=Range(min=1), load_default=None)


def _invalid(messages: dict[str, Any]) -> Response:
    params = []
    for name, reasons in sorted(messages.items()):
        reason = reasons[0] if isinstance(reasons, list) and reasons else str(reasons)
        params.append({"name": str(name)[:60], "reason": str(reason)})
    detail = "; ".join(f"{p['name']}: {p['reason']}" for p in params)
    return problem(400, "Ongeldig verzoek", detail, "invalid_request", invalidParams=params)


def municipality_named(session: Session, name: str) -> Municipality | None:
    """The municipality by its name (optionally "Gemeente <name>") or CBS code ("0344" or
    "GM0344"), ignoring case and extra spaces."""
    wanted = " ".join(name.split()).casefold()
    code = wanted.removeprefix("gm")
    if len(code) == 4 and code.isdigit():
        return session.scalar(select(Municipality).where(Municipality.code == code))
    wanted = wanted.removeprefix("gemeente ")
    for municipality in session.scalars(select(Municipality)):
        if " ".join(municipality.name.split()).casefold() == wanted:
            return municipality
    return None


def stream_and_close(handle: IO[bytes]) -> Iterator[bytes]:
    """A file's bytes from the start, closing it at the end (also when the client leaves)."""
    try:
        handle.seek(0)
        while chunk := handle.read(256 * 1024):
            yield chunk
    finally:
        handle.close()


@bp.post("/gegevens")
def gegevens() -> Response:
    """One page of the DDAS delivery of one municipality and period, signed."""
    settings = _settings()
    refused = _unauthorised(settings)
    if refused is not None:
        return refused
    try:
        signer = PayloadSigner.from_files(settings.cbs_signing_key, settings.cbs_signing_cert)
    except SigningUnavailable as exc:
        log.error("DDAS API: cannot sign answers: %s", exc)
        return problem(503, "Ondertekenen niet mogelijk",
                       f"answers are only sent signed; {exc}", "signing_unavailable")  # fmt: skip
    raw = request.get_data(cache=True)
    sent_digest = request.headers.get("Digest")
    if sent_digest and sent_digest != digest_header(hashlib.sha256(raw).digest()):
        return problem(400, "Ongeldig verzoek", "the Digest header does not match the body",
                       "digest_mismatch")  # fmt: skip
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return problem(400, "Ongeldig verzoek", "send a GegevensRequest as a JSON object "
                       "(Content-Type: application/json)", "invalid_request")  # fmt: skip
    try:
        asked = GegevensRequestSchema().load(body)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_": exc.messages}
        return _invalid(messages)
    start, end = asked["aanleverperiodeStartdatum"], asked["aanleverperiodeEinddatum"]
    if end < start:
        return problem(422, "Onverwerkbaar verzoek", "aanleverperiodeEinddatum is before "
                       "aanleverperiodeStartdatum", "period_order")  # fmt: skip
    session = get_session()
    municipality = municipality_named(session, asked["aanleverendeOrganisatie"])
    if municipality is None:
        return problem(422, "Onverwerkbaar verzoek", "aanleverendeOrganisatie is not a "
                       "municipality served here", "unknown_organisation")  # fmt: skip
    code = municipality.code
    size = min(asked["pageSize"] or settings.cbs_page_size, settings.cbs_page_size)
    try:
        pagination = paginate(session, municipality.id, start, end, size, asked["page"])
    except PageSizeTooSmall as exc:
        return problem(422, "Onverwerkbaar verzoek", f"pageSize: {exc}", "page_size_too_small",
                       minimum=exc.minimum)  # fmt: skip
    except PageNotFound as exc:
        return problem(422, "Onverwerkbaar verzoek", f"page: {exc}", "page_out_of_range",
                       totalPages=exc.pages)  # fmt: skip
    try:
        body = _signed_page(session, settings, signer, municipality, start, end, pagination)
    except ExportRefused as exc:
        log.error("DDAS API: page refused for %s %s..%s: %d violation(s)",
                  code, start, end, len(exc.violations))  # fmt: skip
        return problem(500, "Levering afgekeurd", "the delivery breaks the DDAS rules; "
                       "the paths are listed (no values)", "export_refused",
                       violations=exc.violations[:100])  # fmt: skip
    by = f"cbs:{settings.cbs_client_id}"[:254]
    log_delivery(session, start, end, [code], body.tally, body.sha256.hex(), by)
    log.info(
        "DDAS API: page %d/%d for %s %s..%s: %d signals, %d cases",
        *(pagination.page, pagination.pages, code, start, end, body.tally.signals,
          body.tally.cases),
    )  # fmt: skip
    response = Response(stream_and_close(body.handle), mimetype="application/json")
    response.call_on_close(body.handle.close)
    response.headers["Content-Length"] = str(body.length)
    response.headers["Digest"] = digest_header(body.sha256)
    response.headers["nlgov-adr-payload-sig"] = body.signature
    response.headers["Cache-Control"] = "no-store"
    return response


@dataclass
class SignedBody:
    """An answer's body in a temporary file, with its hash and signature."""

    handle: IO[bytes]
    length: int
    sha256: bytes
    signature: str
    tally: Tally


def _signed_page(
    session: Session,
    settings: Settings,
    signer: PayloadSigner,
    municipality: Municipality,
    start: dt.date,
    end: dt.date,
    pagination: Pagination,
) -> SignedBody:
    """``{"gegevens": <the page>, "paginering": {...}}`` written to a temporary file (in
    memory up to 1 MiB), hashed and signed as it is written; raises ExportRefused."""
    spool = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115 (returned)
    try:
        signing = signer.start()
        writer = Writer(spool, signing)
        writer.write('{"gegevens":')
        protector = current_app.extensions["vroegsignaal"].protector
        part = [(municipality, pagination.part)]
        tally = write_document(session, protector, settings, part, start, end, writer)
        paging = json.dumps(pagination.as_dict(), separators=(",", ":"))
        writer.write(f',"paginering":{paging}}}')
        signature = signer.finish(signing)
    except BaseException:
        spool.close()
        raise
    return SignedBody(spool, spool.tell(), writer.sha256.digest(), signature, tally)
