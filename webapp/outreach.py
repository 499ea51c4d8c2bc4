"""The counsellor's pages: the queue, one case, the team's overdue work.

Everything a counsellor does is at most two clicks from the queue: claim from the queue
row; attempt, close, review and help request on the case page. Personal data is decrypted
for the page only and never logged; pages are sent with ``Cache-Control: no-store``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import selectinload
from wtforms import BooleanField, DateField, SelectField, StringField, TextAreaField, TimeField
from wtforms.fields.choices import enum_choices
from wtforms.validators import DataRequired, Length, Optional

from outreach import letters
from outreach.enums import CaseResult, CaseState, ContactKind, Priority
from outreach.jobs import OPEN, due_tasks
from outreach.models import Case, CaseSignal, Task, is_open, queue_order
from outreach.service import (
    NOTE_CONTEXT,
    OutreachError,
    claim,
    close,
    help_requested,
    record_attempt,
    release,
    review,
)
from scoring.models import HouseholdScore
from signals import audit
from signals.db import unit_of_work
from signals.enums import PartnerType, Role
from signals.ingest import CONTACT_CONTEXT, IDENTITY_CONTEXT
from signals.models import Signal, User
from signals.rules import NL, today_nl
from webapp.auth import roles_required
from webapp.db import commit_even_on_error, get_session
from webapp.i18n import message_of

bp = Blueprint("outreach", __name__)
PAGE_SIZE = 50


#: What the pages call the states, priorities and bands (the stored values stay Dutch).
STATES = {
    CaseState.NIEUW: _l("nieuw"),
    CaseState.TE_BEOORDELEN: _l("te beoordelen"),
    CaseState.OPGEPAKT: _l("opgepakt"),
    CaseState.AFGESLOTEN: _l("afgesloten"),
}
LEVELS = {"spoed": _l("spoed"), "hoog": _l("hoog"), "midden": _l("midden"), "laag": _l("laag")}


class AttemptForm(FlaskForm):
    kind = SelectField(_l("Soort contact"), choices=enum_choices(ContactKind))
    day = DateField(_l("Datum"), validators=[DataRequired()])
    time = TimeField(_l("Tijd"), validators=[DataRequired()])
    reached = BooleanField(_l("Bereikt"))
    note = TextAreaField(_l("Notitie"), validators=[Optional(), Length(max=4000)])


class CloseForm(FlaskForm):
    result = SelectField(_l("Eindresultaat"), choices=enum_choices(CaseResult))


class ActionForm(FlaskForm):
    """Buttons without fields (claim, release, review, help request): CSRF only."""


def _runtime() -> Any:
    return current_app.extensions["vroegsignaal"]


def _municipality_ids() -> list[int]:
    return sorted(current_user.municipality_ids)


def _case(case_id: int) -> Case:
    case = get_session().get(Case, case_id)
    if case is None or case.municipality_id not in _municipality_ids():
        abort(404)
    return case


@bp.before_request
def _own_cases_only() -> None:
    """Any ``/cases/<id>`` URL: a case of another municipality, or none, is a 404 before a
    form is read (a refused form would otherwise answer 400 for any id)."""
    case_id = (request.view_args or {}).get("case_id")
    if case_id is not None:
        _case(case_id)


def _audit_view(record: Case, action: str, **detail: Any) -> None:
    """Record that the user is shown the case's personal data, committed before it is shown
    (a unit of work of its own: the page itself only reads). A refused form shown again
    answers a POST, whose session holds the write lock already and has stored nothing: the
    event goes into that session, committed although the answer is 4xx."""
    event = {"purpose": audit.PURPOSE_OUTREACH, "case_id": record.id,
             "municipality_id": record.municipality_id, **detail}  # fmt: skip
    if request.method == "POST":
        audit.record(get_session(), current_user.email, action, **event)
        commit_even_on_error()
        return
    with unit_of_work(_runtime().sessions) as session:
        audit.record(session, current_user.email, action, **event)


def _no_store(response: Any) -> Any:
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/queue")
@roles_required(Role.COUNSELLOR)
def queue() -> Any:
    session = get_session()
    today = today_nl()
    args = request.args
    next_due = (
        select(func.min(Task.due_on))
        .where(Task.case_id == Case.id, Task.done_at.is_(None))
        .correlate(Case)
        .scalar_subquery()
    )
    query = select(Case, next_due.label("next_due")).where(
        Case.municipality_id.in_(_municipality_ids()), is_open()
    )
    if args.get("prioriteit") in {p.label for p in Priority}:
        query = query.where(Case.priority == Priority[args["prioriteit"].upper()])
    if args.get("partner") in {p.value for p in PartnerType}:
        # EXISTS per case as the queue walks its index: it stops after one page, where an
        # IN list would first collect every case of the partner type.
        query = query.where(
            exists()
            .where(
                CaseSignal.case_id == Case.id,
                Signal.id == CaseSignal.signal_id,
                Signal.partner_type == PartnerType(args["partner"]),
            )
            .correlate(Case)
        )
    if args.get("termijn") == "verlopen":
        query = query.where(next_due < today)
    elif args.get("termijn") == "week":
        query = query.where(next_due <= today + dt.timedelta(days=7))
    if args.get("toegewezen") == "mij":
        query = query.where(Case.assigned_to_id == current_user.id)
    elif args.get("toegewezen") == "niemand":
        query = query.where(Case.assigned_to_id.is_(None))
    try:
        page = max(1, int(args.get("pagina", 1)))
    except ValueError:
        page = 1
    rows = session.execute(
        query.order_by(*queue_order())
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE + 1)
        .options(selectinload(Case.signals), selectinload(Case.assigned_to))
    ).all()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    reasons = dict(
        session.execute(
            select(HouseholdScore.id, HouseholdScore.reasons).where(
                HouseholdScore.id.in_([c.score_id for c, _ in rows if c.score_id])
            )
        ).all()
    )
    mine = session.scalar(
        select(func.count(Case.id)).where(
            Case.assigned_to_id == current_user.id, Case.state.in_(OPEN)
        )
    )
    due = due_tasks(session, current_user.id, today)
    review_count = session.scalar(
        select(func.count(Case.id)).where(
            Case.municipality_id.in_(_municipality_ids()),
            Case.state == CaseState.TE_BEOORDELEN,
        )
    )
    return _no_store(
        current_app.make_response(
            render_template(
                "queue.html",
                rows=rows,
                reasons=reasons,
                today=today,
                page=page,
                more=more,
                args=args,
                priorities=list(Priority),
                priority_labels={int(p): LEVELS[p.label] for p in Priority},
                levels=LEVELS,
                partner_types=list(PartnerType),
                mine=mine,
                capacity=_runtime().settings.counsellor_capacity,
                review_count=review_count,
                due=due,
                form=ActionForm(),
            )
        )
    )


@bp.get("/queue/beoordelen")
@roles_required(Role.COUNSELLOR)
def review_list() -> Any:
    cases = (
        get_session()
        .scalars(
            select(Case)
            .where(
                Case.municipality_id.in_(_municipality_ids()),
                Case.state == CaseState.TE_BEOORDELEN,
            )
            .order_by(Case.priority, Case.id)
            .limit(200)
            .options(selectinload(Case.signals))
        )
        .all()
    )
    return _no_store(current_app.make_response(render_template("review.html", cases=cases)))


def _people(case: Case) -> list[dict[str, Any]]:
    protector = _runtime().protector
    out = []
    for signal in case.signals:
        contact = protector.decrypt_json(signal.contact, CONTACT_CONTEXT)
        identity = protector.decrypt_json(signal.client.identity, IDENTITY_CONTEXT)
        name = " ".join(
            part
            for part in (
                identity.get("voorletters"),
                identity.get("tussenvoegsel"),
                identity.get("achternaam"),
            )
            if part
        )
        out.append({"signal": signal, "contact": contact, "name": name or _("(naam onbekend)")})
    return out


@bp.get("/cases/<int:case_id>")
@roles_required(Role.COUNSELLOR)
def case(case_id: int) -> Any:
    return _case_page(_case(case_id))


def _case_page(
    record: Case,
    attempt_form: AttemptForm | None = None,
    email_form: EmailForm | None = None,
    status: int = 200,
) -> Any:
    """The case page; after a refused form, that form as sent with its errors by its fields
    (the other forms fresh, not read from this request)."""
    session = get_session()
    score = session.get(HouseholdScore, record.score_id) if record.score_id else None
    protector = _runtime().protector
    notes = {
        a.id: protector.decrypt(a.note, NOTE_CONTEXT).decode() if a.note else ""
        for a in record.attempts
    }
    if attempt_form is None:
        now = dt.datetime.now(NL)
        attempt_form = AttemptForm(
            formdata=None,
            data={"day": now.date(), "time": now.time().replace(second=0, microsecond=0)},
        )
    if email_form is None:
        draft = letters.email_draft(record, protector, _runtime().settings)
        email_form = EmailForm(formdata=None, data=draft)
    _audit_view(record, "zaak.inzien")
    return _no_store(
        current_app.make_response(
            (
                render_template(
                    "case.html",
                    messages=[letters.kept(m, protector) for m in record.messages],
                    email_form=email_form,
                    case=record,
                    people=_people(record),
                    score=score,
                    notes=notes,
                    state_label=STATES[record.state],
                    priority=Priority(record.priority),
                    levels=LEVELS,
                    attempt_form=attempt_form,
                    close_form=CloseForm(formdata=None),
                    action_form=ActionForm(formdata=None),
                    today=today_nl(),
                ),
                status,
            )
        )
    )


def _act(case_id: int, action: Any, success: str) -> Any:
    session = get_session()
    record = _case(case_id)
    try:
        action(session, record)
        session.flush()
    except (OutreachError, letters.MailError) as exc:
        session.rollback()
        flash(message_of(exc), "error")  # nothing of the refused action is stored
        return redirect(url_for("outreach.case", case_id=case_id), 303)
    flash(success, "success")
    return redirect(url_for("outreach.case", case_id=case_id), 303)


def _user() -> User:
    user = get_session().get(User, current_user.id)
    assert user is not None
    return user


@bp.post("/cases/<int:case_id>/claim")
@roles_required(Role.COUNSELLOR)
def claim_case(case_id: int) -> Any:
    if not ActionForm().validate_on_submit():
        abort(400)
    return _act(case_id, lambda s, c: claim(s, c, _user()), _("Zaak aan u toegewezen"))


@bp.post("/cases/<int:case_id>/release")
@roles_required(Role.COUNSELLOR)
def release_case(case_id: int) -> Any:
    if not ActionForm().validate_on_submit():
        abort(400)
    return _act(case_id, lambda s, c: release(c, _user()), _("Zaak teruggezet in de wachtrij"))


@bp.post("/cases/<int:case_id>/attempts")
@roles_required(Role.COUNSELLOR)
def add_attempt(case_id: int) -> Any:
    form = AttemptForm()
    if not form.validate_on_submit():
        flash(_("Poging niet vastgelegd: %(errors)s", errors=_errors(form)), "error")
        return _case_page(_case(case_id), attempt_form=form, status=422)
    at = dt.datetime.combine(form.day.data, form.time.data, tzinfo=NL)
    return _act(
        case_id,
        lambda s, c: record_attempt(
            c,
            _user(),
            ContactKind(form.kind.data),
            at,
            form.reached.data,
            form.note.data or None,
            _runtime().protector,
        ),
        _("Contactpoging vastgelegd"),
    )


@bp.post("/cases/<int:case_id>/close")
@roles_required(Role.COUNSELLOR)
def close_case(case_id: int) -> Any:
    form = CloseForm()
    if not form.validate_on_submit():
        abort(400)
    return _act(
        case_id,
        lambda s, c: close(c, CaseResult(form.result.data), current_user.email, today_nl()),
        _("Zaak afgesloten"),
    )


@bp.post("/cases/<int:case_id>/review")
@roles_required(Role.COUNSELLOR)
def review_case(case_id: int) -> Any:
    if not ActionForm().validate_on_submit():
        abort(400)
    accept = request.form.get("besluit") == "oppakken"
    return _act(
        case_id,
        lambda s, c: review(c, current_user.email, accept, today_nl(), _runtime().settings),
        _("Zaak beoordeeld"),
    )


@bp.post("/cases/<int:case_id>/hulpvraag")
@roles_required(Role.COUNSELLOR)
def help_request(case_id: int) -> Any:
    if not ActionForm().validate_on_submit():
        abort(400)
    return _act(
        case_id,
        lambda s, c: help_requested(c, current_user.email, today_nl(), _runtime().settings),
        _("Hulpvraag vastgelegd; eerste gesprek ingepland"),
    )


class EmailForm(FlaskForm):
    to = StringField(_l("Aan"), validators=[DataRequired(), Length(max=254)])
    subject = StringField(_l("Onderwerp"), validators=[DataRequired(), Length(max=200)])
    body = TextAreaField(_l("Tekst"), validators=[DataRequired(), Length(max=20_000)])


@bp.post("/cases/<int:case_id>/brief")
@roles_required(Role.COUNSELLOR)
def letter_pdf(case_id: int) -> Any:
    """Render the letter or card as PDF, keep it in the case, record the attempt."""
    if not ActionForm().validate_on_submit():
        abort(400)
    kind = ContactKind.KAARTJE if request.form.get("soort") == "kaartje" else ContactKind.BRIEF
    record = _case(case_id)
    runtime = _runtime()
    user = _user()
    try:
        record_attempt(record, user, kind, dt.datetime.now(NL), False, None, runtime.protector)
    except OutreachError as exc:
        get_session().rollback()
        flash(message_of(exc), "error")
        return redirect(url_for("outreach.case", case_id=case_id), 303)
    document, _ = letters.letter(record, kind, runtime.protector, runtime.settings, user.id)
    audit.record(
        get_session(),
        user.email,
        "zaak.download",
        purpose=audit.PURPOSE_OUTREACH,
        case=record,
        soort=kind.value,
    )
    response = current_app.make_response(document)
    response.mimetype = "application/pdf"
    name = f"{kind.value.lower()}-zaak-{record.id}.pdf"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return _no_store(response)


@bp.post("/cases/<int:case_id>/email")
@roles_required(Role.COUNSELLOR)
def send_mail(case_id: int) -> Any:
    form = EmailForm()
    if not form.validate_on_submit():
        flash(_("E-mail niet verstuurd: %(errors)s", errors=_errors(form)), "error")
        return _case_page(_case(case_id), email_form=form, status=422)
    runtime = _runtime()

    def send(session: Any, record: Case) -> None:
        user = _user()
        record_attempt(
            record, user, ContactKind.MAIL, dt.datetime.now(NL), False, None, runtime.protector
        )
        letters.send_email(
            record,
            form.to.data.strip(),
            form.subject.data,
            form.body.data,
            runtime.protector,
            runtime.settings,
            user.id,
        )

    return _act(case_id, send, _("E-mail verstuurd en bewaard in de zaak"))


@bp.get("/team")
@roles_required(Role.COUNSELLOR, Role.ADMIN)
def team() -> Any:
    """Overdue work per counsellor: counts only."""
    session = get_session()
    today = today_nl()
    rows = session.execute(
        select(
            User.email,
            func.count(func.distinct(Case.id)),
            func.count(Task.id),
        )
        .select_from(Case)
        .outerjoin(User, User.id == Case.assigned_to_id)
        .outerjoin(Task, and_(Task.case_id == Case.id, Task.done_at.is_(None), Task.due_on < today))
        .where(Case.municipality_id.in_(_municipality_ids()), Case.state.in_(OPEN))
        .group_by(User.email)
        .order_by(func.count(Task.id).desc())
    ).all()
    overdue_cases = session.scalar(
        select(func.count(func.distinct(Case.id)))
        .join(Task)
        .where(
            Case.municipality_id.in_(_municipality_ids()),
            Case.state.in_(OPEN),
            Task.due_on < today,
            Task.done_at.is_(None),
        )
    )
    return render_template(
        "team.html",
        rows=rows,
        overdue_cases=overdue_cases,
        capacity=_runtime().settings.counsellor_capacity,
    )


def _errors(form: FlaskForm) -> str:
    return "; ".join(
        f"{form[name].label.text}: {', '.join(map(str, errs))}"
        for name, errs in form.errors.items()
    )
