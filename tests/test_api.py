"""The partner API (CONTRACT §4): openssl-made batches through HTTP, problem documents."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from signals.db import unit_of_work
from signals.jobs import process_pending_batches
from signals.models import Batch
from tests.factories import World, csv_bytes, openssl_batch, row


def _post(client: Any, token: str, path: Path, sig: Path | None, **form: str) -> Any:
    data: dict[str, Any] = {"file": (path.open("rb"), path.name), **form}
    if sig is not None:
        data["signature"] = (sig.open("rb"), sig.name)
    return client.post(
        "/api/v1/batches",
        data=data,
        headers={"Authorization": f"Bearer {token}"},
        content_type="multipart/form-data",
    )


def test_upload_then_report(client: Any, world: World) -> None:
    path, sig = openssl_batch(world, csv_bytes([row(), row(signaal_id="S-2", postcode="12")]))
    response = _post(client, world.token, path, sig)
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "received"
    assert body["status_url"].endswith(f"/api/v1/batches/{body['id']}")
    # Nothing is decrypted in the request: the job does it.
    pending = client.get(
        f"/api/v1/batches/{body['id']}", headers={"Authorization": f"Bearer {world.token}"}
    ).get_json()
    assert pending["status"] == "received" and pending["rows_total"] == 0
    assert process_pending_batches(world.runtime) == 1
    report = client.get(
        f"/api/v1/batches/{body['id']}", headers={"Authorization": f"Bearer {world.token}"}
    ).get_json()
    assert report["status"] == "processed"
    assert report["rows_accepted"] == 1
    assert report["rejections"] == [{"row": 2, "field": "postcode", "code": "postcode_format"}]
    # The identical file again: 200 with the first batch.
    again = _post(client, world.token, path, sig)
    assert again.status_code == 200
    assert again.get_json()["id"] == body["id"]


def test_without_or_with_bad_token(client: Any, world: World) -> None:
    path, sig = openssl_batch(world, csv_bytes([row()]))
    for token in ("", "vs_wrong", world.token + "x"):
        response = _post(client, token, path, sig)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        problem = response.get_json()
        assert {"type", "title", "status", "detail"} <= set(problem)
        assert problem["status"] == 401
    assert client.post("/api/v1/batches", headers={"Authorization": "Basic abc"}).status_code == 401
    with unit_of_work(world.runtime.readers) as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 0


def test_other_partner_cannot_read_a_batch(client: Any, world: World) -> None:
    path, sig = openssl_batch(world, csv_bytes([row()]))
    batch_id = _post(client, world.token, path, sig).get_json()["id"]
    _, other_token = world.add_partner("Ander")
    response = client.get(
        f"/api/v1/batches/{batch_id}", headers={"Authorization": f"Bearer {other_token}"}
    )
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    # ...and another partner's token cannot send in this partner's name: its own keys decide.
    refused = _post(client, other_token, path, sig)
    assert refused.status_code == 422
    assert refused.get_json()["code"] == "signature_invalid"


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("tampered", 422, "signature_invalid"),
        ("not_cms", 415, "not_cms"),
        ("no_signature", 400, None),
        ("unknown_gemeente", 422, "unknown_gemeente"),
    ],
)
def test_refusals(client: Any, world: World, case: str, status: int, code: str | None) -> None:
    path, sig = openssl_batch(world, csv_bytes([row()]))
    form = {}
    if case == "tampered":
        data = path.read_bytes()  # the last byte changed (set to 0 it was, 1 time in 256)
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    if case == "not_cms":
        path.write_bytes(csv_bytes([row()]))
        from tests.factories import openssl_sign

        sig = openssl_sign(path, world.files["rsa.key"])
    if case == "unknown_gemeente":
        form["gemeentecode"] = "0363"
    response = _post(client, world.token, path, None if case == "no_signature" else sig, **form)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    if code:
        assert response.get_json()["code"] == code


@pytest.mark.parametrize(
    ("method", "path", "status"), [("GET", "/api/v1/nope", 404), ("DELETE", "/api/v1/batches", 405)]
)
def test_every_api_error_is_a_problem_document(
    client: Any, method: str, path: str, status: int
) -> None:
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["status"] == status


def test_openapi_document(client: Any) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert {"/batches", "/batches/{id}"} <= set(spec["paths"])
    assert "BatchReport" in spec["components"]["schemas"]


def test_health(client: Any) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["database"] == "ok"


@pytest.fixture
def server(app: Any) -> Iterator[tuple[str, int]]:
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1", srv.server_port
    srv.shutdown()


def test_hundred_megabytes_refused_before_the_body_is_read(
    server: tuple[str, int], world: World
) -> None:
    """413 is answered from the headers: the client has sent only a few KB when it arrives."""
    host, port = server
    connection = http.client.HTTPConnection(host, port, timeout=10)
    size = 100 * 1024 * 1024
    connection.putrequest("POST", "/api/v1/batches")
    connection.putheader("Authorization", f"Bearer {world.token}")
    connection.putheader("Content-Type", "multipart/form-data; boundary=xyz")
    connection.putheader("Content-Length", str(size))
    connection.endheaders()
    connection.send(b"--xyz\r\n" + b"\x00" * 4096)  # a little of the random body, no more
    response = connection.getresponse()
    assert response.status == 413
    assert response.getheader("Content-Type") == "application/problem+json"
    assert b"too_large" in response.read()
    connection.close()
