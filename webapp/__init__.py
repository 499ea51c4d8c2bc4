"""The composition root: the Flask app, the CLI and the scheduler process."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from config import Settings, load_settings
from signals.rules import NL
from signals.runtime import Runtime

csrf = CSRFProtect()


def create_app(
    settings: Settings | None = None, runtime: Runtime | None = None, **config: Any
) -> Flask:
    """Build the web app. Settings are read and validated here, once."""
    if runtime is None:
        runtime = Runtime.from_settings(settings or load_settings())
    app = Flask(__name__)
    settings = runtime.settings
    app.config.update(
        SECRET_KEY=settings.secret_key,
        # The .p7m plus its signature and form overhead; larger requests get 413 before
        # their body is read.
        MAX_CONTENT_LENGTH=settings.max_batch_bytes + 64 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        RATELIMIT_STORAGE_URI=settings.rate_limit_storage_uri,
        WTF_CSRF_TIME_LIMIT=None,
        JSON_SORT_KEYS=False,
    )
    app.config.update(config)
    app.extensions["vroegsignaal"] = runtime
    if settings.proxy_count:  # trust exactly this many proxies' forwarded headers
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = settings.proxy_count
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    from webapp import (
        access,
        admin,
        api,
        auth,
        cbs,
        dashboard,
        db,
        ddas_pages,
        i18n,
        metrics,
        outage,
        outreach,
        portal,
        security,
        views,
    )

    db.init_app(app)
    i18n.init_app(app)  # Dutch unless the user chose English; the /taal switch
    access.init_app(app)  # before CSRF: who may not use an endpoint learns nothing more
    security.init_app(app)
    csrf.init_app(app)
    auth.init_app(app)
    api.init_app(app)
    outage.init_app(app)
    app.register_blueprint(views.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(portal.bp)
    app.register_blueprint(outreach.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(ddas_pages.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)
    app.register_blueprint(cbs.bp)
    csrf.exempt(cbs.bp)
    from webapp import limits

    limits.init_app(app)  # after the blueprints: it wraps their log-in, token and upload views

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"product_name": "Vroegsignaal"}

    @app.template_filter("local")
    def _local(moment: dt.datetime | None, fmt: str = "%d-%m-%Y %H:%M") -> str:
        """A stored UTC timestamp as Dutch users read it: Europe/Amsterdam time. A fixed
        Dutch pattern; pages in both languages use ``datumtijd`` and ``datum`` (webapp.i18n)."""
        return moment.astimezone(NL).strftime(fmt) if moment else "—"

    return app


def runtime_of(app: Flask) -> Runtime:
    runtime: Runtime = app.extensions["vroegsignaal"]
    return runtime
