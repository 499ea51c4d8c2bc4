"""A BRP API Personen server on loopback for tests, answering as the published spec says.

It serves ``POST /personen`` for ``RaadpleegMetBurgerservicenummer`` and
``ZoekMetPostcodeEnHuisnummer`` from a list of ``Persoon`` objects, checks the API key,
answers problem documents on errors, and records every request body so tests can check them
against the official schema (``../shared/reference/brp-personen``).
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

API_KEY = "test-brp-key"


def persoon(
    bsn: str,
    geslachtsnaam: str,
    gemeente: str,
    postcode: str,
    huisnummer: int,
    voorvoegsel: str = "",
    geboortedatum: str | None = None,
    partner: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """One ``Persoon`` as the API returns it with our ``fields``."""
    naam: dict[str, Any] = {"geslachtsnaam": geslachtsnaam, "voornamen": "Johanna"}
    if voorvoegsel:
        naam["voorvoegsel"] = voorvoegsel
    data: dict[str, Any] = {
        "burgerservicenummer": bsn,
        "naam": naam,
        "gemeenteVanInschrijving": {"code": gemeente, "omschrijving": "Gemeente " + gemeente},
        "verblijfplaats": {
            "type": "Adres",
            "verblijfadres": {
                "officieleStraatnaam": "Oudegracht",
                "huisnummer": huisnummer,
                "postcode": postcode,
                "woonplaats": "Utrecht",
            },
        },
    }
    if geboortedatum:
        data["geboorte"] = {
            "datum": {"type": "Datum", "datum": geboortedatum, "langFormaat": "12 april 1990"}
        }
    if partner:
        partner_naam = {"geslachtsnaam": partner[1]}
        if partner[0]:
            partner_naam["voorvoegsel"] = partner[0]
        data["partners"] = [{"naam": partner_naam}]
    return data


def _problem(status: int, title: str) -> Response:
    body = {"type": "https://example.nl/problem", "title": title, "status": status}
    return Response(json.dumps(body), status=status, content_type="application/problem+json")


class BrpServer:
    def __init__(self, people: list[dict[str, Any]]) -> None:
        self.people = people
        self.requests: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        self.down = False

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.app(Request(environ))(environ, start_response)

    def app(self, request: Request) -> Response:
        if self.down:
            return _problem(503, "Service Unavailable")
        if request.method != "POST" or request.path != "/personen":
            return _problem(404, "Not Found")
        if request.headers.get("X-API-KEY") != API_KEY:
            return _problem(401, "Unauthorized")
        if not request.content_type.startswith("application/json"):
            return _problem(415, "Unsupported Media Type")
        query = json.loads(request.get_data())
        self.requests.append(query)
        kind = query.get("type")
        if kind == "RaadpleegMetBurgerservicenummer":
            found = [
                p for p in self.people if p["burgerservicenummer"] in query["burgerservicenummer"]
            ]
        elif kind == "ZoekMetPostcodeEnHuisnummer":
            found = [
                p
                for p in self.people
                if p["verblijfplaats"]["verblijfadres"]["postcode"] == query["postcode"]
                and p["verblijfplaats"]["verblijfadres"]["huisnummer"] == query["huisnummer"]
                and p["gemeenteVanInschrijving"]["code"]
                == query.get("gemeenteVanInschrijving", p["gemeenteVanInschrijving"]["code"])
            ]
        else:
            return _problem(400, "Bad Request")
        body = {"type": kind, "personen": found}
        self.responses.append(body)
        return Response(json.dumps(body), content_type="application/json; charset=utf-8")


@contextmanager
def serving(
    people: list[dict[str, Any]], ssl_context: ssl.SSLContext | None = None
) -> Iterator[tuple[str, BrpServer]]:
    """Serve the API on 127.0.0.1 (a free port) for the duration of the block; with an SSL
    context over HTTPS (which may demand a client certificate)."""
    api = BrpServer(people)
    server = make_server("127.0.0.1", 0, api, threaded=True, ssl_context=ssl_context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if ssl_context else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_port}", api
    finally:
        server.shutdown()
        thread.join(5)
