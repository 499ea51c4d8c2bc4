"""Log-in, roles, sessions and municipality scoping.

Log-in is a password and, for the roles in ``settings.totp_roles``, a second factor (TOTP,
RFC 6238; CONTRACT §5): ``POST /login`` then leaves only a pending state in the session and
``/login/totp`` asks for the code (the first time: enrolment with a QR code, then ten
recovery codes shown once). Wrong passwords and codes count towards a temporary lock-out;
every refusal of the password step reads the same, so nobody learns whether an account
exists. A successful log-in starts a fresh session (new CSRF token, no fixation); a session
idle for ``session_idle_minutes`` ends. Session cookies are HttpOnly, SameSite=Lax and
Secure when served over TLS (or always, with ``SESSION_COOKIE_SECURE``).

A user who may not see a page gets 403; an object of another municipality is 404.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

import segno
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    has_request_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from config import Settings
from signals import totp
from signals.crypto import DataProtector
from signals.enums import Role
from signals.models import User
from signals.service import (
    authenticate,
    is_locked,
    login_succeeded,
    record_failure,
    user_for_update,
)
from webapp.db import commit_even_on_error, get_session
from webapp.i18n import is_local_path

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = _l("Log in om deze pagina te zien.")
login_manager.localize_callback = str  # the lazy text, in the language of the request
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


#: Session keys: the log-in waiting for its second factor, and when the session was last used.
PENDING = "login_pending"
SEEN = "seen_at"
#: How long the second-factor step may take after the password.
PENDING_SECONDS = 300

#: The refusals, in the language of the request (a flashed text is stored as a plain string).
FAILED = _l(
    "Inloggen is niet gelukt: e-mailadres of wachtwoord onjuist, of inloggen is tijdelijk "
    "geblokkeerd na te veel mislukte pogingen."
)
CODE_WRONG = _l("De code is onjuist of al gebruikt.")
CODE_LOCKED = _l("Te veel onjuiste codes: inloggen is tijdelijk geblokkeerd.")
EXPIRED = _l("Uw sessie is verlopen. Log opnieuw in.")


class SessionInterface(SecureCookieSessionInterface):
    """The signed session cookie, marked Secure when the request came over TLS (as the WSGI
    server reports it) or always when ``SESSION_COOKIE_SECURE`` is set; the plain-HTTP demo
    on 127.0.0.1 keeps working."""

    def get_cookie_secure(self, app: Flask) -> bool:
        if app.config["SESSION_COOKIE_SECURE"]:
            return True
        return has_request_context() and request.is_secure


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    app.session_interface = SessionInterface()
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    if app.config.get("SESSION_COOKIE_SAMESITE") not in ("Lax", "Strict"):
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    # First of all hooks: an idle session ends before anything looks at who is logged in.
    app.before_request_funcs.setdefault(None, []).insert(0, _end_idle_session)


def _settings() -> Settings:
    settings: Settings = current_app.extensions["vroegsignaal"].settings
    return settings


def _protector() -> DataProtector:
    protector: DataProtector = current_app.extensions["vroegsignaal"].protector
    return protector


def _end_idle_session() -> Any:
    """Log out a session unused for ``session_idle_minutes``; otherwise note this use."""
    if request.endpoint == "static" or ("_user_id" not in session and PENDING not in session):
        return None
    now = int(time.time())
    seen = session.get(SEEN)
    if isinstance(seen, int) and 0 <= now - seen <= _settings().session_idle_minutes * 60:
        session[SEEN] = now
        return None
    logout_user()
    session.clear()
    flash(str(EXPIRED), "info")
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("auth.login", next=target))


def roles_required(*roles: Role) -> Callable[[F], F]:
    """Only these roles may use the view; others get 403, anonymous users the log-in page.

    The matrix in ``webapp.access`` is what decides, before any view runs; this repeats the
    view's cell where the reader sees it (a second check costs nothing) and records it as
    ``required_roles``, so a test can hold the two equal.
    """

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not current_user.roles & set(roles):
                abort(403)
            return view(*args, **kwargs)

        wrapped.required_roles = frozenset(roles)  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorator


class LoginForm(FlaskForm):
    email = EmailField(_l("E-mailadres"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Wachtwoord"), validators=[DataRequired(), Length(max=200)])


HOME_BY_ROLE = {
    Role.PARTNER: "portal.batches",
    Role.ADMIN: "views.home",
    Role.COUNSELLOR: "views.home",
    Role.ANALYST: "views.home",
}


def _safe_next(target: str, role: Role) -> str:
    """Only a path on this site: no scheme, no host, no tricks a browser would repair."""
    return target if is_local_path(target) else url_for(HOME_BY_ROLE[role])


def _start_session(user: User | None = None) -> None:
    """A fresh session: nothing of the one before survives (no fixation), a new CSRF token."""
    session.clear()
    g.pop("csrf_token", None)  # Flask-WTF keeps this request's token here; make a new one
    if user is not None:
        login_user(SessionUser(user))
    session[SEEN] = int(time.time())


def _lockout() -> dict[str, Any]:
    settings = _settings()
    return {
        "max_failures": settings.login_max_failures,
        "lockout": dt.timedelta(minutes=settings.login_lockout_minutes),
    }


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        db = get_session()
        email, password = form.email.data or "", form.password.data or ""
        user = authenticate(db, email, password, **_lockout())
        if user is None:
            commit_even_on_error()  # the failure counts towards the lock-out
            error = FAILED
        else:
            target = request.args.get("next", "")
            if totp.requires_second_factor(user, _settings().totp_roles):
                if user.totp_secret is None:
                    totp.new_secret(user, _protector())
                _start_session()
                session[PENDING] = {"user": user.id, "at": int(time.time()), "next": target}
                return redirect(url_for("auth.login_totp"))
            login_succeeded(db, user)
            _start_session(user)
            return redirect(_safe_next(target, user.role))
    status = 401 if error else 200
    return render_template("login.html", form=form, error=error), status


class CodeForm(FlaskForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=40)])


def _pending_user() -> tuple[User | None, dict[str, Any]]:
    """The user whose password was right and whose second factor is awaited, if still in time
    (locked for update on POST)."""
    pending = session.get(PENDING)
    if not isinstance(pending, dict) or not isinstance(pending.get("user"), int):
        return None, {}
    if not 0 <= time.time() - pending.get("at", 0) <= PENDING_SECONDS:
        return None, {}
    db = get_session()
    if request.method == "POST":
        user = user_for_update(db, pending["user"])
    else:
        user = db.get(User, pending["user"])
    if user is None or not user.active or is_locked(user) or user.totp_secret is None:
        return None, {}
    return user, pending


@bp.route("/login/totp", methods=["GET", "POST"])
def login_totp() -> Any:
    """The second factor: a TOTP code or a recovery code; the first time, enrolment."""
    user, pending = _pending_user()
    if user is None:
        if PENDING in session:
            flash(str(EXPIRED), "error")
        session.pop(PENDING, None)
        return redirect(url_for("auth.login"))
    db = get_session()
    protector = _protector()
    enrolling = user.totp_enrolled_at is None
    form = CodeForm()
    error = None
    if form.validate_on_submit():
        code = (form.code.data or "").strip()
        target = _safe_next(pending.get("next", ""), user.role)
        if enrolling:
            recovery_codes = totp.confirm_enrolment(user, protector, code)
            if recovery_codes is not None:
                login_succeeded(db, user)
                _start_session(user)
                return render_template("recovery_codes.html", codes=recovery_codes, next=target)
        elif totp.verify_code(user, protector, code):
            login_succeeded(db, user)
            _start_session(user)
            return redirect(target)
        elif not totp.is_totp_code(code) and totp.use_recovery_code(user, code):
            login_succeeded(db, user)
            _start_session(user)
            left = len(user.recovery_codes)
            flash(
                _("U bent ingelogd met een herstelcode; er zijn er nog %(left)d over.", left=left),
                "error" if left <= 2 else "info",
            )
            return redirect(target)
        commit_even_on_error()  # the failure counts towards the lock-out
        if record_failure(db, user, **_lockout()):
            session.clear()
            flash(str(CODE_LOCKED), "error")
            return redirect(url_for("auth.login"))
        error = CODE_WRONG
    context: dict[str, Any] = {"form": form, "error": error, "enrolling": enrolling}
    if enrolling:
        secret = totp.secret_of(user, protector)
        uri = totp.provisioning_uri(user, secret)
        context.update(
            secret=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
            uri=uri,
            qr=segno.make(uri, error="m").svg_inline(
                scale=4, omitsize=True, title=_("QR-code voor de authenticator-app")
            ),
        )
    return render_template("login_totp.html", **context), 401 if error else 200


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))
