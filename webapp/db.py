"""One database session per request; the request owns the transaction and commits once."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g, request
from sqlalchemy.orm import Session


def get_session() -> Session:
    if "db" not in g:
        runtime = current_app.extensions["vroegsignaal"]
        reading = request.method in ("GET", "HEAD", "OPTIONS")
        g.db = (runtime.readers if reading else runtime.sessions)()
    session: Session = g.db
    return session


def init_app(app: Flask) -> None:
    @app.after_request
    def _commit(response: Any) -> Any:
        session: Session | None = g.pop("db", None)
        if session is not None:
            try:
                if response.status_code < 400 or g.pop("commit_on_error", False):
                    session.commit()
                else:
                    session.rollback()
            finally:
                session.close()
        return response

    @app.teardown_request
    def _close(_exc: BaseException | None) -> None:
        session: Session | None = g.pop("db", None)
        if session is not None:  # an exception skipped after_request
            session.rollback()
            session.close()


def commit_even_on_error() -> None:
    """A refusal is an answer worth keeping: store it although the response is 4xx."""
    g.commit_on_error = True
