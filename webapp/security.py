"""Security headers on every response: a strict Content-Security-Policy and friends.

The pages carry no inline script, no inline style and no event-handler attributes (all of
it lives in ``webapp/static``), so the policy allows nothing but files from this site. HSTS
is sent only over TLS: the app trusts no proxy header (there is no ProxyFix), so
``request.is_secure`` is what the WSGI server says. Pages of this app show personal data or
figures nobody should find in a shared browser's cache, so everything but the static files
is sent with ``Cache-Control: no-store``.
"""

from __future__ import annotations

from flask import Flask, Response, request

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HSTS = "max-age=31536000; includeSubDomains"
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def add_headers(response: Response) -> Response:
    """The headers every response gets; a view may set a stricter value of its own."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    if request.endpoint not in ("static", "views.favicon"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def init_app(app: Flask) -> None:
    app.after_request(add_headers)
