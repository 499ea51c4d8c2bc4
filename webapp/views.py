"""Home and health pages."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import text

from signals.enums import Role
from webapp.db import get_session

bp = Blueprint("views", __name__)


@bp.get("/")
@login_required
def home() -> Any:
    if current_user.role is Role.PARTNER:
        return redirect(url_for("portal.batches"))
    return render_template("home.html")


@bp.get("/favicon.ico")
def favicon() -> Any:
    """Browsers ask for it on every site: the logo, not a 404 in every console."""
    response = current_app.send_static_file("favicon.svg")
    response.mimetype = "image/svg+xml"
    return response


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Any:
    try:
        get_session().execute(text("SELECT 1"))
    except Exception:
        return jsonify({"status": "unavailable", "database": "unreachable"}), 503
    return jsonify({"status": "ok", "database": "ok"})
