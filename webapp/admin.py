"""Functioneel beheer (``/admin``): users, partners, keys and municipalities of the admin's
municipalities (read-only: changes go through the audited command line), and the audit trail
with paging and the state of its hash chain.

An admin sees only their own municipalities' objects; the audit trail shows the events of
those municipalities and the service-wide ones (without a municipality).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template, request
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from signals import audit
from signals.enums import Role
from signals.models import (
    Municipality,
    Partner,
    PartnerKey,
    RecipientKey,
    User,
    partner_municipalities,
    user_municipalities,
)
from webapp.auth import roles_required
from webapp.db import get_session

bp = Blueprint("admin", __name__, url_prefix="/admin")
PAGE_SIZE = 50


def _municipality_ids() -> list[int]:
    return sorted(current_user.municipality_ids)


def _no_store(html: str) -> Any:
    response = current_app.make_response(html)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("")
@roles_required(Role.ADMIN)
def index() -> Any:
    """Users, partners, keys and municipalities of the admin's municipalities."""
    session = get_session()
    mine = _municipality_ids()
    municipalities = list(
        session.scalars(
            select(Municipality).where(Municipality.id.in_(mine)).order_by(Municipality.code)
        )
    )
    users = list(
        session.scalars(
            select(User)
            .where(
                User.id.in_(
                    select(user_municipalities.c.user_id).where(
                        user_municipalities.c.municipality_id.in_(mine)
                    )
                )
            )
            .order_by(User.email)
            .options(selectinload(User.municipalities))
        )
    )
    partners = list(
        session.scalars(
            select(Partner)
            .where(
                Partner.id.in_(
                    select(partner_municipalities.c.partner_id).where(
                        partner_municipalities.c.municipality_id.in_(mine)
                    )
                )
            )
            .order_by(Partner.name)
            .options(selectinload(Partner.municipalities), selectinload(Partner.keys))
        )
    )
    recipient_keys = list(
        session.scalars(
            select(RecipientKey)
            .where(RecipientKey.municipality_id.in_(mine) | RecipientKey.municipality_id.is_(None))
            .order_by(RecipientKey.id.desc())
        )
    )
    partner_keys: list[PartnerKey] = [k for p in partners for k in p.keys]
    return _no_store(
        render_template(
            "admin.html",
            municipalities=municipalities,
            users=users,
            partners=partners,
            recipient_keys=recipient_keys,
            partner_keys=partner_keys,
            partner_names={p.id: p.name for p in partners},
            codes={m.id: m.code for m in municipalities},
        )
    )


@bp.get("/audit")
@roles_required(Role.ADMIN)
def audit_log() -> Any:
    """The audit trail, newest first, in pages (``?zaak=ID``: one case's events); and whether
    the whole chain is intact."""
    session = get_session()
    mine = _municipality_ids()
    try:
        page = max(1, int(request.args.get("pagina", 1)))
    except ValueError:
        page = 1
    case_id = request.args.get("zaak", "")
    case = int(case_id) if case_id.isdigit() and len(case_id) < 19 else None
    rows = audit.events(
        session,
        municipality_ids=mine,
        case_id=case,
        limit=PAGE_SIZE + 1,
        offset=(page - 1) * PAGE_SIZE,
        newest_first=True,
    )
    more = len(rows) > PAGE_SIZE
    codes = dict(session.execute(select(Municipality.id, Municipality.code)).all())
    return _no_store(
        render_template(
            "admin_audit.html",
            events=rows[:PAGE_SIZE],
            page=page,
            more=more,
            total=audit.count(session, mine, case),
            case=case,
            chain=audit.verify(session),
            codes=codes,
        )
    )
