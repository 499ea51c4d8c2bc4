"""The partner API (``/api/v1``): JSON in and out, RFC 9457 problem documents for errors."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, Response, current_app, g, jsonify, request, url_for
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from outreach.feedback import feedback
from signals.enums import BatchCode, BatchSource
from signals.errors import BatchRefused
from signals.ingest import UnknownMunicipality, receive_batch, report
from signals.models import Batch, Partner
from signals.service import partner_by_token
from webapp.db import commit_even_on_error, get_session

bp = Blueprint("api", __name__, url_prefix="/api/v1")
log = logging.getLogger(__name__)

PROBLEM_BASE = "https://vroegsignaal.nl/problems/"
_STATUS_BY_CODE = {
    BatchCode.SIGNATURE_INVALID: 422,
    BatchCode.NOT_CMS: 415,
    BatchCode.EMPTY: 422,
    BatchCode.TOO_LARGE: 413,
    BatchCode.UNKNOWN_PARTNER: 401,
}


def problem(
    status: int, title: str, detail: str, code: str | None = None, **extra: Any
) -> Response:
    """An ``application/problem+json`` response (RFC 9457)."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (code or str(status)),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if code:
        body["code"] = code
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def fsc_error(status: int, code: str, title: str, detail: str, **headers: str) -> Response:
    """An FSC error (Logius FSC Core, as DDAS-VS.yaml asks): ``FscError`` body, problem+json,
    the code also in the ``Fsc-Error-Code`` header."""
    response = jsonify(
        {"code": code, "domain": "ERROR_DOMAIN_INWAY", "title": title, "detail": detail,
         "status": status}
    )  # fmt: skip
    response.status_code = status
    response.mimetype = "application/problem+json"
    response.headers["Fsc-Error-Code"] = code
    response.headers.update(headers)
    return response


def _documented(path: str) -> bool:
    """Paths whose errors are documents: the partner API and the DDAS API for CBS."""
    return path.startswith("/api/") or path == "/gegevens" or path.startswith("/gegevens/")


def init_app(app: Flask) -> None:
    """Every error under ``/api/`` is a problem document, also routing errors and crashes;
    under ``/gegevens`` (the DDAS API) routing errors are FSC errors."""

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if not _documented(request.path):
            return exc
        if request.path.startswith("/gegevens"):
            if exc.code == 404:
                return fsc_error(404, "ERROR_CODE_SERVICE_NOT_FOUND", "Niet gevonden",
                                 "no such service")  # fmt: skip
            if exc.code == 405:
                return fsc_error(405, "ERROR_CODE_METHOD_UNSUPPORTED",
                                 "Methode niet ondersteund", "use POST", Allow="POST")  # fmt: skip
            if exc.code == 413:
                return problem(413, "Verzoek te groot", "the request body is too large")
        elif isinstance(exc, RequestEntityTooLarge):
            return problem(
                413,
                "Batch too large",
                "the file is larger than the batch size limit",
                BatchCode.TOO_LARGE.value,
            )
        return problem(exc.code or 500, exc.name, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _crash(exc: Exception) -> Any:
        # Log the type only: a message could quote what was submitted.
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.path)
        if _documented(request.path):
            return problem(500, "Internal Server Error", "the request could not be completed")
        return InternalServerError()


def _partner() -> Partner | Response:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return problem(401, "Unauthorized", "send the partner's API token as a Bearer token")
    partner = partner_by_token(get_session(), token.strip())
    if partner is None:
        return problem(401, "Unauthorized", "the API token is not valid")
    g.partner = partner
    return partner


def _batch_links(batch: Batch) -> dict[str, Any]:
    return {
        "id": batch.id,
        "status": batch.status.value,
        "status_url": url_for("api.get_batch", batch_id=batch.id, _external=True),
    }


@bp.post("/batches")
def post_batch() -> Any:
    partner = _partner()
    if isinstance(partner, Response):
        return partner
    file = request.files.get("file")
    signature = request.files.get("signature")
    if file is None:
        return problem(400, "Bad request", "multipart field 'file' (the .p7m) is required")
    if signature is None:
        return problem(400, "Bad request", "multipart field 'signature' (the .sig) is required")
    gemeentecode = (request.form.get("gemeentecode") or "").strip() or None
    session = get_session()
    try:
        received = receive_batch(
            session,
            current_app.extensions["vroegsignaal"].settings,
            partner=partner,
            ciphertext=file.stream,
            signature=signature.read(),
            source=BatchSource.API,
            filename=file.filename,
            gemeentecode=gemeentecode,
        )
    except UnknownMunicipality as exc:
        return problem(422, "Unknown municipality", str(exc), "unknown_gemeente")
    except BatchRefused as exc:
        return problem(
            _STATUS_BY_CODE.get(exc.code, 422), "Batch refused", exc.detail, exc.code.value
        )
    batch = received.batch
    if batch.refusal_code is not None and received.created:
        commit_even_on_error()  # the refusal itself is kept, nothing else
        code = batch.refusal_code
        return problem(
            _STATUS_BY_CODE.get(code, 422), "Batch refused", code.value, code.value, id=batch.id
        )
    status = 202 if received.created else 200
    response = jsonify(_batch_links(batch))
    response.status_code = status
    response.headers["Location"] = url_for("api.get_batch", batch_id=batch.id)
    return response


@bp.get("/batches/<batch_id>")
def get_batch(batch_id: str) -> Any:
    partner = _partner()
    if isinstance(partner, Response):
        return partner
    session = get_session()
    batch = session.get(Batch, batch_id) if len(batch_id) <= 36 else None
    if batch is None or batch.partner_id != partner.id:
        return problem(404, "Not found", "no batch with that id")
    return jsonify(report(session, batch))


@bp.get("/feedback")
def get_feedback() -> Any:
    partner = _partner()
    if isinstance(partner, Response):
        return partner
    raw = (request.args.get("since") or "").strip()
    if not raw:
        return problem(
            400, "Bad request", "query parameter 'since' (ISO 8601 date-time) is required"
        )
    try:
        since = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return problem(400, "Bad request", "'since' is not an ISO 8601 date-time")
    if since.tzinfo is None:
        return problem(400, "Bad request", "'since' needs a time zone, e.g. 2026-11-01T00:00:00Z")
    return jsonify(feedback(get_session(), partner.id, since))


# -- OpenAPI -----------------------------------------------------------------------------------
class BatchAcceptedSchema(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True)
    status_url = fields.Url(required=True)


class RejectionSchema(Schema):
    row = fields.Integer(required=True, metadata={"description": "data row, counted from 1"})
    field = fields.String(required=True)
    code = fields.String(required=True)


class BatchReportSchema(Schema):
    id = fields.String(required=True)
    status = fields.String(
        required=True, metadata={"enum": ["received", "processing", "processed", "failed"]}
    )
    code = fields.String(metadata={"description": "batch refusal code, when failed"})
    rows_total = fields.Integer(required=True)
    rows_accepted = fields.Integer(required=True)
    rows_rejected = fields.Integer(required=True)
    rows_outside_window = fields.Integer()
    rejections = fields.List(fields.Nested(RejectionSchema), required=True)
    unknown_columns = fields.List(fields.String())
    received_at = fields.DateTime()
    finished_at = fields.DateTime()


class FeedbackItemSchema(Schema):
    signaal_id = fields.String(required=True)
    status = fields.String(
        required=True,
        metadata={
            "description": "DDAS signal status; 'Niet opgepakt' without a reason where the "
            "partner may not know why"
        },
    )
    gewijzigd = fields.DateTime(required=True)
    incassopauze_tot = fields.Date(metadata={"description": "after accepted help"})


class FeedbackSchema(Schema):
    since = fields.DateTime(required=True)
    feedback = fields.List(fields.Nested(FeedbackItemSchema), required=True)
    next_since = fields.DateTime(
        allow_none=True, metadata={"description": "ask again from here: more entries wait"}
    )


class ProblemSchema(Schema):
    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    code = fields.String()


def build_spec() -> dict[str, Any]:
    spec = APISpec(
        title="Vroegsignaal partner API",
        version="1.0.0",
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        servers=[{"url": "/api/v1"}],
        components={
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cbs": {
                    "type": "oauth2",
                    "description": "the DDAS API for CBS: OAuth2 client credentials",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": "/gegevens/token",
                            "scopes": {"read": "Toegang om VS-gegevens op te halen"},
                        }
                    },
                },
            }
        },
    )
    for schema in (BatchAcceptedSchema, BatchReportSchema, FeedbackSchema, ProblemSchema):
        spec.components.schema(schema.__name__.removesuffix("Schema"), schema=schema)
    problem_ref = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}

    def errors(*codes: int) -> dict[str, Any]:
        return {str(c): {"description": "problem", "content": problem_ref} for c in codes}

    spec.path(
        path="/batches",
        operations={
            "post": {
                "summary": "Send a signed, encrypted batch",
                "security": [{"bearer": []}],
                "requestBody": {
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file", "signature"],
                                "properties": {
                                    "file": {"type": "string", "format": "binary"},
                                    "signature": {"type": "string", "format": "binary"},
                                    "gemeentecode": {"type": "string", "pattern": "^[0-9]{4}$"},
                                },
                            }
                        }
                    }
                },
                "responses": {
                    "202": {
                        "description": "received",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/BatchAccepted"}
                            }
                        },
                    },
                    "200": {
                        "description": "the identical file was sent before: the first batch",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/BatchAccepted"}
                            }
                        },
                    },
                    **errors(400, 401, 413, 415, 422, 429),
                },
            }
        },
    )
    spec.path(
        path="/batches/{id}",
        parameters=[{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
        operations={
            "get": {
                "summary": "The report of one of the partner's own batches",
                "security": [{"bearer": []}],
                "responses": {
                    "200": {
                        "description": "report",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/BatchReport"}
                            }
                        },
                    },
                    **errors(401, 404),
                },
            }
        },
    )
    spec.path(
        path="/feedback",
        parameters=[
            {
                "name": "since",
                "in": "query",
                "required": True,
                "schema": {"type": "string", "format": "date-time"},
            }
        ],
        operations={
            "get": {
                "summary": "What the partner may know of its signals, changed since a moment",
                "security": [{"bearer": []}],
                "responses": {
                    "200": {
                        "description": "feedback",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Feedback"}
                            }
                        },
                    },
                    **errors(400, 401),
                },
            }
        },
    )
    _ddas_paths(spec, errors)
    return spec.to_dict()


def _ddas_paths(spec: APISpec, errors: Any) -> None:
    """The DDAS API for CBS (DDAS-VS.yaml), served from the root rather than ``/api/v1``."""
    root = [{"url": "/"}]
    fsc = {
        "description": "FSC error (header Fsc-Error-Code)",
        "headers": {"Fsc-Error-Code": {"schema": {"type": "string"}}},
        "content": {"application/problem+json": {"schema": {"type": "object",
                    "required": ["code", "domain"]}}},
    }  # fmt: skip
    date = {"type": "string", "format": "date"}
    spec.path(
        path="/gegevens",
        servers=root,
        operations={
            "post": {
                "summary": "DDAS Vroegsignalering v1.2 data of one municipality and period, "
                "a page at a time (at most cbs_page_size signals, each case whole on one page)",
                "operationId": "postGegevens",
                "security": [{"cbs": ["read"]}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": [
                                    "aanleverperiodeStartdatum",
                                    "aanleverperiodeEinddatum",
                                    "aanleverendeOrganisatie",
                                ],
                                "properties": {
                                    "aanleverperiodeStartdatum": date,
                                    "aanleverperiodeEinddatum": date,
                                    "aanleverendeOrganisatie": {
                                        "type": "string",
                                        "description": "name, 'Gemeente <name>' or CBS code",
                                    },
                                    "page": {"type": "integer", "minimum": 1},
                                    "pageSize": {"type": "integer", "minimum": 1},
                                },
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "signed with Digest and nlgov-adr-payload-sig (a "
                        "detached PS256 JWS over the body)",
                        "headers": {
                            "Digest": {"schema": {"type": "string"}},
                            "nlgov-adr-payload-sig": {"schema": {"type": "string"}},
                        },
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["gegevens", "paginering"],
                                    "properties": {
                                        "gegevens": {
                                            "description": "a DDAS Uitwisselmodel v1.2 document",
                                            "type": "object",
                                        },
                                        "paginering": {"type": "object"},
                                    },
                                }
                            }
                        },
                    },
                    "401": fsc,
                    "404": fsc,
                    "405": fsc,
                    **errors(400, 422, 500, 503),
                },
            }
        },
    )
    spec.path(
        path="/gegevens/token",
        servers=root,
        operations={
            "post": {
                "summary": "OAuth2 client credentials (HTTP Basic or form): a bearer token",
                "requestBody": {
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "required": ["grant_type"],
                                "properties": {
                                    "grant_type": {"const": "client_credentials"},
                                    "scope": {"type": "string"},
                                    "client_id": {"type": "string"},
                                    "client_secret": {"type": "string"},
                                },
                            }
                        }
                    }
                },
                "responses": {
                    "200": {"description": "access_token, token_type Bearer, expires_in"},
                    "400": {"description": "RFC 6749 error"},
                    "401": {"description": "invalid_client"},
                },
            }
        },
    )


@bp.get("/openapi.json")
def openapi() -> Any:
    return jsonify(build_spec())
