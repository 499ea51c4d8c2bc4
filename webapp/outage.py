"""The database going away: a clear 503 instead of a traceback.

When the database cannot be reached (server down, connection cut, pool exhausted, SQLite
locked past its busy timeout) a request answers 503 with ``Retry-After``: a short Dutch and
English page, or a problem document under ``/api/`` and ``/gegevens``. Nothing of the
request is stored (the request's transaction is rolled back), so a partner whose upload got
503 sends it again and it is stored once. The log names the error type only: SQLAlchemy's
message quotes the statement's parameters.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, current_app, make_response, request
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import InternalServerError

from signals.db import is_outage as is_outage

log = logging.getLogger(__name__)

#: seconds a client is asked to wait before trying again
RETRY_AFTER = 30


def unavailable() -> Any:
    """The 503 answer for the current request."""
    from webapp.api import _documented, problem

    if _documented(request.path):
        response = problem(
            503,
            "Service Unavailable",
            "the database is temporarily unavailable; nothing was stored, try again later",
            "database_unavailable",
        )
    else:
        # Rendered without the context processors: they load the logged-in user, which
        # needs the database that is not there.
        page = current_app.jinja_env.get_template("unavailable.html").render()
        response = make_response(page, 503)
    response.headers["Retry-After"] = str(RETRY_AFTER)
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    """Answer 503 for database outages, in views and in the commit after them."""

    def _outage(error: Exception) -> Any:
        log.error(
            "database unavailable (%s) on %s %s",
            type(error).__name__,
            request.method,
            request.path,
        )
        return unavailable()

    @app.errorhandler(sa_exc.DBAPIError)
    def _dbapi(error: sa_exc.DBAPIError) -> Any:
        if is_outage(error):
            return _outage(error)
        # Not an outage (a constraint, a bad statement): the generic crash answer.
        return _crash(error)

    @app.errorhandler(sa_exc.TimeoutError)
    def _pool_timeout(error: sa_exc.TimeoutError) -> Any:
        return _outage(error)

    @app.errorhandler(InternalServerError)
    def _internal(error: InternalServerError) -> Any:
        # An outage raised outside the view (the request's commit in after_request) reaches
        # Flask as a 500 wrapping the original error; any other 500 is answered as before.
        original = error.original_exception
        if original is not None and is_outage(original):
            return _outage(original)  # type: ignore[arg-type]
        from webapp.api import _documented, problem

        if _documented(request.path):
            return problem(500, error.name, error.description or error.name)
        return error

    def _crash(error: BaseException) -> Any:
        # What webapp.api answers for any other unhandled error (this handler is more
        # specific than that one, so it must answer the same way).
        from webapp.api import _documented, problem

        log.error("unhandled %s on %s %s", type(error).__name__, request.method, request.path)
        if _documented(request.path):
            return problem(500, "Internal Server Error", "the request could not be completed")
        return InternalServerError()
