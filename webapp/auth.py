"""Log-in, roles and municipality scoping.

A user who may not see a page gets 403; an object of another municipality is 404.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, Flask, abort, redirect, render_template, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from signals.enums import Role
from signals.models import User
from signals.service import authenticate
from webapp.db import get_session

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Log in om deze pagina te zien."
login_manager.session_protection = "strong"

F = TypeVar("F", bound=Callable[..., Any])


class SessionUser(UserMixin):
    """The logged-in user as the web layer sees it."""

    def __init__(self, user: User) -> None:
        self.id = user.id
        self.email = user.email
        self.role = user.role
        self.roles = user.roles
        self.partner_id = user.partner_id
        self.municipality_ids = frozenset(m.id for m in user.municipalities)

    def get_id(self) -> str:
        return str(self.id)


@login_manager.user_loader
def _load_user(user_id: str) -> SessionUser | None:
    if not user_id.isdigit():
        return None
    user = get_session().get(User, int(user_id))
    return SessionUser(user) if user is not None and user.active else None


def init_app(app: Flask) -> None:
    login_manager.init_app(app)


def roles_required(*roles: Role) -> Callable[[F], F]:
    """Only these roles may use the view; others get 403, anonymous users the log-in page."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not current_user.roles & set(roles):
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


class LoginForm(FlaskForm):
    email = EmailField("E-mailadres", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Wachtwoord", validators=[DataRequired(), Length(max=200)])


HOME_BY_ROLE = {
    Role.PARTNER: "portal.batches",
    Role.ADMIN: "views.home",
    Role.COUNSELLOR: "views.home",
    Role.ANALYST: "views.home",
}


def _safe_next(target: str, role: Role) -> str:
    """Only a path on this site: no scheme, no host, no tricks a browser would repair."""
    parts = urlsplit(target)
    if (
        target.startswith("/")
        and not parts.scheme
        and not parts.netloc
        and not any(c == "\\" or ord(c) < 0x20 for c in target)
        and not target.startswith("//")
    ):
        return target
    return url_for(HOME_BY_ROLE[role])


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        user = authenticate(get_session(), form.email.data or "", form.password.data or "")
        if user is not None:
            session.clear()  # a fresh session on log-in: no fixation
            login_user(SessionUser(user))
            return redirect(_safe_next(request.args.get("next", ""), user.role))
        error = "E-mailadres of wachtwoord onjuist."
    status = 401 if error else 200
    return render_template("login.html", form=form, error=error), status


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))
