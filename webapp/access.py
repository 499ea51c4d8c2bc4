"""Who may use which endpoint: the role x endpoint matrix, enforced in one place.

Every Flask endpoint is listed here with the roles that may use it, or as :data:`PUBLIC`
(anyone, also without logging in) or :data:`TOKEN` (a machine API that authenticates each
request itself: the partner API by bearer token, the DDAS API for CBS by OAuth2; a browser
session grants nothing there). One ``before_request`` hook checks the matrix before any view
or form runs: an anonymous visitor of a page is sent to the log-in page, a user without one
of the roles gets 403 (CONTRACT §5), and an endpoint missing from the matrix is refused to
everybody, so a new view is closed until somebody decides who may use it.

A user may hold several roles (a counsellor who is also an analyst): one of them suffices.
Which *objects* a user may see (the municipality, the partner's own batches) is checked by
the views, with 404 for another's object. ``webapp.auth.roles_required`` on a view repeats
its cell of this matrix for the reader; a test keeps the two equal.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from flask import Flask, abort, request
from flask_login import current_user

from signals.enums import Role

log = logging.getLogger(__name__)

PUBLIC: Final = "public"
TOKEN: Final = "token"  # noqa: S105  (a kind of access, not a secret)
Access = frozenset[Role] | str

ADMIN, COUNSELLOR, ANALYST, PARTNER = Role.ADMIN, Role.COUNSELLOR, Role.ANALYST, Role.PARTNER
EVERY_ROLE = frozenset(Role)


def _roles(*roles: Role) -> frozenset[Role]:
    return frozenset(roles)


MATRIX: Final[dict[str, Access]] = {
    # -- anyone ------------------------------------------------------------------------------
    "static": PUBLIC,
    "auth.login": PUBLIC,
    "auth.login_totp": PUBLIC,  # the second step: the view needs the first one's session
    "auth.logout": PUBLIC,  # ends whatever session there is; harmless without one
    "i18n.switch": PUBLIC,  # the language cookie, also on the log-in page
    "views.favicon": PUBLIC,
    "views.healthz": PUBLIC,
    "views.readyz": PUBLIC,
    "api.openapi": PUBLIC,
    # -- machine APIs: each request carries its own credentials -----------------------------
    "api.post_batch": TOKEN,
    "api.get_batch": TOKEN,
    "api.get_feedback": TOKEN,
    "cbs.token": TOKEN,
    "cbs.gegevens": TOKEN,
    "metrics.metrics": TOKEN,  # Prometheus, with the bearer token metrics_token
    # -- every logged-in user ----------------------------------------------------------------
    "views.home": EVERY_ROLE,
    # -- counsellors: the queue and the cases (personal data) --------------------------------
    "outreach.queue": _roles(COUNSELLOR),
    "outreach.review_list": _roles(COUNSELLOR),
    "outreach.case": _roles(COUNSELLOR),
    "outreach.claim_case": _roles(COUNSELLOR),
    "outreach.release_case": _roles(COUNSELLOR),
    "outreach.add_attempt": _roles(COUNSELLOR),
    "outreach.close_case": _roles(COUNSELLOR),
    "outreach.review_case": _roles(COUNSELLOR),
    "outreach.help_request": _roles(COUNSELLOR),
    "outreach.letter_pdf": _roles(COUNSELLOR),
    "outreach.send_mail": _roles(COUNSELLOR),
    "outreach.team": _roles(COUNSELLOR, ADMIN),  # counts per counsellor, no personal data
    # -- statistics: aggregates only ---------------------------------------------------------
    "dashboard.dashboard": _roles(ANALYST, ADMIN),
    "dashboard.dashboard_csv": _roles(ANALYST, ADMIN),
    "dashboard.dashboard_xlsx": _roles(ANALYST, ADMIN),
    # -- admins: the DDAS delivery (BSNs and addresses) --------------------------------------
    "ddas_pages.ddas": _roles(ADMIN),
    "ddas_pages.request_export": _roles(ADMIN),
    "ddas_pages.export": _roles(ADMIN),  # and only the admin who asked (404 to the others)
    "ddas_pages.export_status": _roles(ADMIN),
    "ddas_pages.export_file": _roles(ADMIN),
    "ddas_pages.remove_export": _roles(ADMIN),
    # -- admins: functioneel beheer and the audit trail (no resident data) -------------------
    "admin.index": _roles(ADMIN),
    "admin.audit_log": _roles(ADMIN),
    "admin.add_user_page": _roles(ADMIN),
    "admin.add_partner_page": _roles(ADMIN),
    "admin.rotate_key": _roles(ADMIN),
    "admin.retire_key": _roles(ADMIN),
    "admin.certificate": _roles(ADMIN),  # a recipient key's certificate: public data
    # -- partners: their own batches ---------------------------------------------------------
    "portal.batches": _roles(PARTNER),
    "portal.batch": _roles(PARTNER),
    "portal.batch_status": _roles(PARTNER),
}


def access_of(endpoint: str | None) -> Access | None:
    """The matrix cell of ``endpoint``: PUBLIC, TOKEN, the roles allowed, or None (unlisted)."""
    return MATRIX.get(endpoint) if endpoint else None


def may(roles: frozenset[Role] | set[Role], endpoint: str) -> bool:
    """Whether a logged-in user holding ``roles`` may use ``endpoint``."""
    cell = access_of(endpoint)
    if cell is None:
        return False
    if isinstance(cell, str):
        return True
    return bool(cell & roles)


def current_user_may(endpoint: str) -> bool:
    """For the menu: whether the current user may open ``endpoint``."""
    if not current_user.is_authenticated:
        return access_of(endpoint) == PUBLIC
    return may(current_user.roles, endpoint)


def check_access() -> Any:
    """The ``before_request`` hook: the matrix, before any view, form or CSRF check."""
    if request.url_rule is None:
        return None  # 404 and 405 come from routing, alike for everybody
    endpoint = request.endpoint
    cell = access_of(endpoint)
    if cell is None:
        log.error("endpoint %s is not in the access matrix (webapp/access.py): refused", endpoint)
        abort(403)
    if isinstance(cell, str):
        return None  # PUBLIC, or TOKEN: the view authenticates the request itself
    if not current_user.is_authenticated:
        from webapp.auth import login_manager

        return login_manager.unauthorized()
    if not cell & current_user.roles:
        abort(403)
    return None


def init_app(app: Flask) -> None:
    """Register the hook first, so it runs before the CSRF check and every other hook."""
    app.before_request_funcs.setdefault(None, []).insert(0, check_access)
    app.jinja_env.globals["may"] = current_user_may
