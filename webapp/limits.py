"""The brute-force brake: rate limits (Flask-Limiter) on log-in, token and upload endpoints.

Limits count per client address and come from the settings (``rate_limit_login``,
``_token``, ``_upload``, in Flask-Limiter's notation such as "10 per minute"). Every app gets
a limiter of its own, counting in memory by default: right for one web process. With several
workers or machines the counts must be shared, or each counts alone: set a storage URI, e.g.
``VROEGSIGNAAL_RATE_LIMIT_STORAGE_URI=redis://localhost:6379`` (docs/operations.md).
An exceeded limit answers 429 with ``Retry-After``: a problem document
under ``/api/`` and ``/gegevens``, a Dutch page elsewhere.

The per-account lock-out after repeated wrong passwords or codes lives with the user
(``signals.service.record_failure``); this brake limits how fast anyone may try at all.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, render_template, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address

#: endpoint -> (setting with its limit, the methods it applies to)
LIMITED: dict[str, tuple[str, list[str]]] = {
    "auth.login": ("rate_limit_login", ["POST"]),
    "auth.login_totp": ("rate_limit_login", ["POST"]),
    "cbs.token": ("rate_limit_token", ["POST"]),
    "api.post_batch": ("rate_limit_upload", ["POST"]),
    "portal.batches": ("rate_limit_upload", ["POST"]),
}


def init_app(app: Flask) -> Limiter:
    """A fresh limiter for this app, and the limits on the endpoints above (registered
    already: call this after the blueprints)."""
    settings = app.extensions["vroegsignaal"].settings
    app.config.setdefault("RATELIMIT_STORAGE_URI", "memory://")
    limiter = Limiter(get_remote_address, app=app, headers_enabled=True)
    for endpoint, (setting, methods) in LIMITED.items():
        view = app.view_functions.get(endpoint)
        if view is None:
            continue  # the blueprint is not part of this app
        # Each endpoint counts on its own, also where two share a setting.
        limit = limiter.limit(getattr(settings, setting), methods=methods)
        app.view_functions[endpoint] = limit(view)
    app.register_error_handler(RateLimitExceeded, _too_many)
    app.extensions["vroegsignaal_limiter"] = limiter
    return limiter


def _too_many(exc: RateLimitExceeded) -> Any:
    from webapp.api import _documented, problem

    if _documented(request.path):
        return problem(429, "Too Many Requests", "too many requests; try again later")
    return render_template("rate_limited.html"), 429
