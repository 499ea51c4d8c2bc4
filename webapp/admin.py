"""Functioneel beheer (``/admin``): users, partners, keys and municipalities of the admin's
municipalities, the changes an admin makes to them, and the audit trail with paging and the
state of its hash chain.

An admin sees and changes only their own municipalities' objects; the audit trail shows the
events of those municipalities and the service-wide ones (without a municipality).

The changes are the command line's (``vroegsignaal user add``, ``partner add``, ``keys
create-recipient``, ``keys retire``), through the same service functions; both ways are
audited by the ORM hook of :mod:`signals.audit`, here with the admin's e-mail address as the
actor:

* ``POST /admin/gebruikers``: add a counsellor, analyst or admin;
* ``POST /admin/partners``: register a signal partner, optionally with its public key;
* ``POST /admin/sleutels/vernieuwen``: a new recipient key for a municipality; the old ones
  stay in use during the overlap, so partners still encrypting to them keep delivering;
* ``POST /admin/sleutels/uitfaseren`` (form field ``sleutel``): retire a recipient key,
  refused for the last active key of its municipality;
* ``GET /admin/sleutels/certificaat.pem?sleutel=ID``: a recipient key's certificate.

A password, second-factor key or API token is shown once, in the answer to the POST that
made it (``Cache-Control: no-store``): never in a URL, a flashed message or a log line.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileSize
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from wtforms import EmailField, HiddenField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length

from signals import audit
from signals.enums import PartnerType, Role
from signals.errors import Conflict, KeyFormatError
from signals.models import (
    Municipality,
    Partner,
    PartnerKey,
    RecipientKey,
    User,
    partner_municipalities,
    user_municipalities,
)
from signals.service import add_partner, add_user, create_recipient_key, retire_recipient_key
from webapp.auth import roles_required
from webapp.db import get_session

bp = Blueprint("admin", __name__, url_prefix="/admin")
log = logging.getLogger(__name__)
PAGE_SIZE = 50
#: A public key in PEM is a few kilobytes; anything much larger is not one.
MAX_KEY_BYTES = 64 * 1024

#: The roles an admin may give on this page (a partner's portal user goes with its partner).
ROLE_NAMES = {
    Role.COUNSELLOR: _l("Consulent"),
    Role.ANALYST: _l("Analist"),
    Role.ADMIN: _l("Beheerder"),
}
CHOOSE_MUNICIPALITY = _l("Kies een gemeente.")


class UserForm(FlaskForm):
    email = EmailField(
        _l("E-mailadres"),
        id="gebruiker-email",
        validators=[
            DataRequired(message=_l("Vul een e-mailadres in.")),
            Length(max=254, message=_l("Een e-mailadres heeft hoogstens 254 tekens.")),
        ],
    )
    rol = SelectField(
        _l("Rol"),
        id="gebruiker-rol",
        choices=[SelectChoice(r.value, n) for r, n in ROLE_NAMES.items()],
    )
    # Checked against the admin's municipalities in the view: another one is a 404.
    gemeente = SelectField(
        _l("Gemeente"),
        id="gebruiker-gemeente",
        validate_choice=False,
        validators=[DataRequired(message=CHOOSE_MUNICIPALITY)],
    )


class PartnerForm(FlaskForm):
    naam = StringField(
        _l("Naam"),
        id="partner-naam",
        validators=[
            DataRequired(message=_l("Vul een naam in.")),
            Length(max=200, message=_l("Een naam heeft hoogstens 200 tekens.")),
        ],
    )
    soort = SelectField(
        _l("Soort signaalpartner (DDAS)"),
        id="partner-soort",
        choices=[SelectChoice(t.value, t.value) for t in PartnerType],
    )
    gemeente = SelectField(
        _l("Gemeente"),
        id="partner-gemeente",
        validate_choice=False,
        validators=[DataRequired(message=CHOOSE_MUNICIPALITY)],
    )
    sleutel = FileField(
        _l("Publieke sleutel of certificaat voor de handtekening (PEM, optioneel)"),
        id="partner-sleutel",
        validators=[
            FileSize(MAX_KEY_BYTES, message=_l("Dit bestand is te groot voor een sleutel."))
        ],
    )


class KeyForm(FlaskForm):
    gemeente = SelectField(
        _l("Gemeente"),
        id="sleutel-gemeente",
        validate_choice=False,
        validators=[DataRequired(message=CHOOSE_MUNICIPALITY)],
    )


class RetireForm(FlaskForm):
    """The button next to a key: the key's id in a hidden field, and CSRF."""

    sleutel = HiddenField(validators=[DataRequired()])


def _municipality_ids() -> list[int]:
    return sorted(current_user.municipality_ids)


def _no_store(response: Any) -> Any:
    response.headers["Cache-Control"] = "no-store"
    return response


def _managing() -> Session:
    """The request's session, with the admin as the actor of the changes the audit hook
    records (the CLI's changes are ``cli:<login>``'s)."""
    session = get_session()
    session.info["actor"] = current_user.email
    return session


def _municipalities(session: Session) -> list[Municipality]:
    return list(
        session.scalars(
            select(Municipality)
            .where(Municipality.id.in_(_municipality_ids()))
            .order_by(Municipality.code)
        )
    )


def _own_municipality(session: Session, code: str | None) -> Municipality | None:
    """The admin's municipality with this code; None without a code (the form says so); a
    code of another municipality, or of none, is a 404."""
    if not code:
        return None
    for municipality in _municipalities(session):
        if municipality.code == code:
            return municipality
    abort(404)


def _choices(municipalities: list[Municipality]) -> list[SelectChoice]:
    return [SelectChoice(m.code, f"{m.name} ({m.code})") for m in municipalities]


def _retirable(keys: list[RecipientKey], mine: list[int]) -> set[int]:
    """The keys with an "Uitfaseren" button: every active key of the admin's municipalities
    but the newest of each (the one partners should encrypt to)."""
    newest: dict[int, int] = {}
    for key in keys:
        if key.retired_at is None and key.municipality_id in mine:
            newest[key.municipality_id] = max(newest.get(key.municipality_id, 0), key.id)
    return {
        k.id
        for k in keys
        if k.retired_at is None and k.municipality_id in mine and k.id != newest[k.municipality_id]
    }


def _page(
    status: int = 200,
    *,
    user_form: UserForm | None = None,
    partner_form: PartnerForm | None = None,
    key_form: KeyForm | None = None,
    **extra: Any,
) -> Any:
    """The admin page: the tables, the forms (a refused one as it was sent, with its errors)
    and what the change just made shows once."""
    session = get_session()
    mine = _municipality_ids()
    municipalities = _municipalities(session)
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
    choices = _choices(municipalities)
    forms = {
        "user_form": user_form or UserForm(formdata=None),
        "partner_form": partner_form or PartnerForm(formdata=None),
        "key_form": key_form or KeyForm(formdata=None),
    }
    for form in forms.values():
        form.gemeente.choices = choices
    html = render_template(
        "admin.html",
        municipalities=municipalities,
        users=users,
        partners=partners,
        recipient_keys=recipient_keys,
        retirable=_retirable(recipient_keys, mine),
        partner_keys=partner_keys,
        partner_names={p.id: p.name for p in partners},
        codes={m.id: m.code for m in municipalities},
        role_names=ROLE_NAMES,
        **forms,
        **extra,
    )
    return _no_store(current_app.make_response((html, status)))


@bp.get("")
@roles_required(Role.ADMIN)
def index() -> Any:
    """Users, partners, keys and municipalities of the admin's municipalities."""
    return _page()


# -- changes ------------------------------------------------------------------------------------
@bp.post("/gebruikers")
@roles_required(Role.ADMIN)
def add_user_page() -> Any:
    """A counsellor, analyst or admin of one of the admin's municipalities, as ``vroegsignaal
    user add`` adds one; the password (and the second-factor key) shown once."""
    session = _managing()
    form = UserForm()
    municipality = _own_municipality(session, form.gemeente.data)
    if not form.validate_on_submit() or municipality is None:
        return _page(422, user_form=form)
    runtime = current_app.extensions["vroegsignaal"]
    role = Role(form.rol.data)
    try:
        created = add_user(
            session, form.email.data or "", role, [municipality],
            protector=runtime.protector, totp_roles=runtime.settings.totp_roles,
        )  # fmt: skip
    except (Conflict, IntegrityError) as exc:
        if isinstance(exc, IntegrityError):  # added at the same moment by somebody else
            session.rollback()
        form.email.errors = [_("Er is al een gebruiker met dit e-mailadres.")]
        return _page(422, user_form=form)
    except ValueError:
        form.email.errors = [_("Dit is geen geldig e-mailadres.")]
        return _page(422, user_form=form)
    log.info("admin %s added user %s (%s)", current_user.id, created.user.id, role.value)
    shown = {
        "email": created.user.email,
        "role": ROLE_NAMES[role],
        "municipality": municipality,
        "password": created.password,
        "totp_secret": created.totp_secret,
    }
    return _page(created_user=shown, shown_once=True)


@bp.post("/partners")
@roles_required(Role.ADMIN)
def add_partner_page() -> Any:
    """A signal partner of one of the admin's municipalities, as ``vroegsignaal partner add``
    registers one; its API token shown once (only its hash is stored)."""
    session = _managing()
    form = PartnerForm()
    municipality = _own_municipality(session, form.gemeente.data)
    if not form.validate_on_submit() or municipality is None:
        return _page(422, partner_form=form)
    upload = form.sleutel.data
    public_key = upload.read() if upload else None
    try:
        created = add_partner(
            session,
            form.naam.data or "",
            PartnerType(form.soort.data),
            [municipality],
            public_key,
        )
    except KeyFormatError:
        form.sleutel.errors = [
            _("Dit is geen leesbare publieke sleutel of certificaat (RSA, EC of Ed25519, PEM).")
        ]
        return _page(422, partner_form=form)
    except Conflict:
        form.sleutel.errors = [_("Deze sleutel is al geregistreerd.")]
        return _page(422, partner_form=form)
    except ValueError:
        form.naam.errors = [_("Vul een naam in.")]
        return _page(422, partner_form=form)
    partner = created.partner
    log.info("admin %s registered partner %s", current_user.id, partner.id)
    shown = {
        "name": partner.name,
        "id": partner.id,
        "type": partner.partner_type.value,
        "municipality": municipality,
        "token": created.token,
        "has_key": public_key is not None,
    }
    return _page(created_partner=shown, shown_once=True)


@bp.post("/sleutels/vernieuwen")
@roles_required(Role.ADMIN)
def rotate_key() -> Any:
    """A new recipient key for one of the admin's municipalities; the old ones stay in use
    until they are retired, so partners still encrypting to them keep delivering."""
    session = _managing()
    form = KeyForm()
    municipality = _own_municipality(session, form.gemeente.data)
    if not form.validate_on_submit() or municipality is None:
        return _page(422, key_form=form)
    runtime = current_app.extensions["vroegsignaal"]
    record = create_recipient_key(session, runtime.protector, municipality)
    log.info("admin %s created recipient key %s", current_user.id, record.id)
    return _page(new_key=record, new_key_municipality=municipality)


def _key_of_mine(session: Session, key_id: str | None, *, for_update: bool = False) -> Any:
    """The recipient key of one of the admin's municipalities with this id, or a 404."""
    if not key_id or not key_id.isdigit() or len(key_id) > 18:
        abort(404)
    query = select(RecipientKey).where(
        RecipientKey.id == int(key_id), RecipientKey.municipality_id.in_(_municipality_ids())
    )
    record = session.scalar(query.with_for_update() if for_update else query)
    if record is None:
        abort(404)
    return record


@bp.post("/sleutels/uitfaseren")
@roles_required(Role.ADMIN)
def retire_key() -> Any:
    """Retire a recipient key (form field ``sleutel``): batches encrypted to it are no longer
    accepted. Refused for the last active key of its municipality, to which partners would
    otherwise have nothing to encrypt to."""
    session = _managing()
    form = RetireForm()
    if not form.validate_on_submit():
        return _page(422, key_error=_("Kies de sleutel die u wilt uitfaseren."))
    record = _key_of_mine(session, form.sleutel.data, for_update=True)
    if record.retired_at is not None:
        return _page(409, key_error=_("Sleutel %(id)d is al uitgefaseerd.", id=record.id))
    # Locked (PostgreSQL): two admins cannot each retire one of the last two keys.
    active = session.scalars(
        select(RecipientKey.id)
        .where(
            RecipientKey.municipality_id == record.municipality_id,
            RecipientKey.retired_at.is_(None),
        )
        .with_for_update()
    ).all()
    if len(active) <= 1:
        message = _(
            "Sleutel %(id)d is de laatste actieve ontvangstsleutel van deze gemeente en blijft "
            "in gebruik: zonder actieve sleutel kunnen partners niets meer aanleveren. Maak "
            "eerst een nieuwe sleutel aan en faseer deze uit als de partners zijn overgestapt.",
            id=record.id,
        )
        return _page(409, key_error=message)
    retire_recipient_key(session, record)
    log.info("admin %s retired recipient key %s", current_user.id, record.id)
    flash(
        _(
            "Sleutel %(id)d is uitgefaseerd: bestanden die naar deze sleutel zijn versleuteld, "
            "worden niet meer aangenomen.",
            id=record.id,
        ),
        "success",
    )
    return redirect(url_for("admin.index"), 303)


@bp.get("/sleutels/certificaat.pem")
@roles_required(Role.ADMIN)
def certificate() -> Any:
    """The certificate of a recipient key of the admin's municipalities (``?sleutel=ID``), to
    send to the partners: public data. Without an id the request cannot be answered (422)."""
    key_id = request.args.get("sleutel", "")
    if not key_id:
        return _no_store(
            Response(_("Geef het nummer van de sleutel op.") + "\n", 422, mimetype="text/plain")
        )
    record = _key_of_mine(get_session(), key_id)
    codes = {m.id: m.code for m in _municipalities(get_session())}
    name = f"vroegsignaal-{codes[record.municipality_id]}-sleutel-{record.id}.pem"
    response = Response(record.certificate_pem, mimetype="application/x-pem-file")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return _no_store(response)


# -- the audit trail ----------------------------------------------------------------------------
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
        current_app.make_response(
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
    )
