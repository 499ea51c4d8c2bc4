"""The DDAS delivery for admins: the delivery log, and exports to download.

An export is asked for here and made by the scheduler (:mod:`outreach.exports`): the request
only checks the form and the settings, queues the export and sends the admin to its page,
which follows it without reloading (``/ddas/exports/<id>/status``, ``static/app.js``) until
the file is ready or refused. The file is the same checked document as the scheduled
delivery's and the command line's, logged with the admin's e-mail address; it is kept
encrypted until its time is up or the admin removes it, and every download is audited. Only
the admin who asked sees an export, and only while still an admin of all its
municipalities; a refusal lists the paths of the violations (never a value).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    url_for,
)
from flask_babel import format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import DateField, SelectField
from wtforms.validators import DataRequired, ValidationError

from outreach import exports
from outreach.ddas import ExportRefused, last_complete_period, organisation, refuse_early
from outreach.models import DdasDelivery, DdasExport, ExportStatus
from signals import audit
from signals.db import unit_of_work
from signals.enums import Role
from signals.models import Municipality, User
from signals.rules import today_nl
from webapp.auth import roles_required
from webapp.db import get_session

bp = Blueprint("ddas_pages", __name__)
ALL = "alle"
LOG_ROWS = 100
#: The admin's own exports shown on the DDAS page, newest first.
EXPORT_ROWS = 20
#: Exports one admin may have waiting or being made at once (the scheduler makes one at a
#: time; a region's takes minutes).
MAX_OPEN = 3
OPEN = (ExportStatus.QUEUED, ExportStatus.RUNNING)

STATUS_TEXT = {
    ExportStatus.QUEUED: _l("In de wachtrij"),
    ExportStatus.RUNNING: _l("Wordt gemaakt"),
    ExportStatus.READY: _l("Klaar om te downloaden"),
    ExportStatus.REFUSED: _l("Afgekeurd"),
    ExportStatus.FAILED: _l("Mislukt"),
    ExportStatus.REMOVED: _l("Verwijderd"),
}


class DeliveryForm(FlaskForm):
    van = DateField(_l("Van"), validators=[DataRequired(message=_l("Vul een datum in."))])
    tot = DateField(_l("Tot en met"), validators=[DataRequired(message=_l("Vul een datum in."))])
    # Checked against the user's municipalities in the view: another one is a 404.
    gemeente = SelectField(_l("Gemeente"), validate_choice=False)

    def validate_tot(self, field: DateField) -> None:
        if self.van.data and field.data and field.data < self.van.data:
            raise ValidationError(_("Tot en met ligt voor van."))


def _municipalities() -> list[Municipality]:
    return list(
        get_session().scalars(
            select(Municipality)
            .where(Municipality.id.in_(sorted(current_user.municipality_ids)))
            .order_by(Municipality.code)
        )
    )


@dataclass(frozen=True)
class LogRow:
    """One line of the delivery log as an admin may see it: a delivery that also held other
    municipalities names only the admin's own and hides its counts (they include the
    others')."""

    delivery: DdasDelivery
    gemeenten: str
    others: int
    signals: int | None
    cases: int | None


def _log(codes: set[str]) -> list[LogRow]:
    """The newest deliveries that hold one of ``codes`` (the log is small: one per period,
    download or page fetched)."""
    rows = get_session().scalars(
        select(DdasDelivery).order_by(DdasDelivery.created_at.desc(), DdasDelivery.id.desc())
    )
    out = []
    for d in rows:
        held = d.gemeenten.split(",")
        own = [c for c in held if c in codes]
        if not own:
            continue
        whole = len(own) == len(held)
        out.append(LogRow(d, ", ".join(own), len(held) - len(own),
                          d.signals if whole else None, d.cases if whole else None))  # fmt: skip
        if len(out) == LOG_ROWS:
            break
    return out


def _mine(codes: set[str]) -> list[DdasExport]:
    """The admin's own newest exports, of municipalities still theirs."""
    rows = get_session().scalars(
        select(DdasExport)
        .where(DdasExport.requested_by_id == current_user.id)
        .order_by(DdasExport.requested_at.desc(), DdasExport.id.desc())
        .limit(EXPORT_ROWS)
    )
    return [r for r in rows if set(r.gemeenten.split(",")) <= codes]


def _page(form: DeliveryForm, municipalities: list[Municipality], **extra: Any) -> str:
    form.gemeente.choices = [(ALL, _("alle (%(n)d)", n=len(municipalities)))] + [
        (m.code, f"{m.name} ({m.code})") for m in municipalities
    ]
    codes = {m.code for m in municipalities}
    return render_template("ddas.html", form=form, deliveries=_log(codes), exports=_mine(codes),
                           status_text=STATUS_TEXT, **extra)  # fmt: skip


def _no_store(response: Any) -> Any:
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/ddas")
@roles_required(Role.ADMIN)
def ddas() -> Any:
    settings = current_app.extensions["vroegsignaal"].settings
    start, end = last_complete_period(today_nl(), settings.ddas_period)
    form = DeliveryForm(data={"van": start, "tot": end, "gemeente": ALL})
    return _no_store(current_app.make_response(_page(form, _municipalities())))


@bp.post("/ddas")
@roles_required(Role.ADMIN)
def request_export() -> Any:
    """Queue an export and go to its page; what can be refused at once is refused here."""
    municipalities = _municipalities()
    form = DeliveryForm()
    chosen = [m for m in municipalities if form.gemeente.data in (ALL, m.code)]
    if not chosen:
        abort(404)  # a municipality the admin may not see
    if not form.validate_on_submit():
        return _no_store(current_app.make_response((_page(form, municipalities), 400)))
    runtime = current_app.extensions["vroegsignaal"]
    start, end = form.van.data, form.tot.data
    assert start is not None and end is not None  # DataRequired
    try:
        refuse_early(start, end)
        for municipality in chosen:
            organisation(runtime.settings, municipality)
    except ExportRefused as exc:
        page = _page(form, municipalities, refused=exc.violations)
        return _no_store(current_app.make_response((page, 422)))
    session = get_session()
    user = session.get(User, current_user.id)
    assert user is not None  # logged in
    waiting = session.scalars(
        select(DdasExport).where(DdasExport.requested_by_id == user.id, DdasExport.status.in_(OPEN))
    ).all()
    codes = ",".join(m.code for m in chosen)
    for same in waiting:  # asked twice (a double click, a reload): the one already asked
        if (same.gemeenten, same.period_start, same.period_end) == (codes, start, end):
            return redirect(url_for("ddas_pages.export", export_id=same.id), code=303)
    if len(waiting) >= MAX_OPEN:
        busy = _("U heeft al %(n)d leveringen in de wachtrij; vraag een nieuwe aan als er een "
                 "klaar is.", n=len(waiting))  # fmt: skip
        page = _page(form, municipalities, busy=busy)
        return _no_store(current_app.make_response((page, 429)))
    record = exports.request_export(session, user, chosen, start, end)
    return redirect(url_for("ddas_pages.export", export_id=record.id), code=303)


def _own_export(export_id: str) -> DdasExport:
    """The export, if this admin asked for it and is still an admin of all its
    municipalities; otherwise 404."""
    record = get_session().get(DdasExport, export_id) if len(export_id) <= 36 else None
    if record is None or record.requested_by_id != current_user.id:
        abort(404)
    if not set(record.gemeenten.split(",")) <= {m.code for m in _municipalities()}:
        abort(404)
    return record


def _progress_text(record: DdasExport) -> str:
    if record.signals_total is None:
        return ""
    done, total = format_decimal(record.signals_done), format_decimal(record.signals_total)
    return _("%(done)s van %(total)s signalen", done=done, total=total)


@bp.get("/ddas/exports/<export_id>")
@roles_required(Role.ADMIN)
def export(export_id: str) -> Any:
    record = _own_export(export_id)
    page = render_template(
        "ddas_export.html",
        export=record,
        status_text=STATUS_TEXT,
        final=record.status in exports.FINAL,
        progress_text=_progress_text(record),
        name=exports.download_name(record),
    )
    return _no_store(current_app.make_response(page))


@bp.get("/ddas/exports/<export_id>/status")
@roles_required(Role.ADMIN)
def export_status(export_id: str) -> Any:
    """Where the export stands, for its page to follow without reloading (static/app.js)."""
    record = _own_export(export_id)
    return _no_store(
        jsonify(
            {
                "status": record.status.value,
                "label": str(STATUS_TEXT[record.status]),
                "final": record.status in exports.FINAL,
                "done": record.signals_done,
                "total": record.signals_total,
                "progress": _progress_text(record),
            }
        )
    )


@bp.get("/ddas/exports/<export_id>/bestand")
@roles_required(Role.ADMIN)
def export_file(export_id: str) -> Any:
    """The document, decrypted as it is sent; each download is audited first."""
    record = _own_export(export_id)
    if record.status is ExportStatus.REMOVED:
        abort(410)
    if record.status is not ExportStatus.READY:
        abort(409)
    runtime = current_app.extensions["vroegsignaal"]
    path = exports.file_path(runtime.settings.ddas_exports_dir, record.id)
    try:
        handle = path.open("rb")  # open before anything is sent: removed later, still readable
    except FileNotFoundError:
        abort(410)
    try:
        _count_download(runtime, record)
    except BaseException:
        handle.close()
        raise
    body = exports.unsealed(handle, runtime.protector, record.id)
    response = Response(body, mimetype="application/json")
    response.call_on_close(handle.close)
    if record.size is not None:
        response.headers["Content-Length"] = str(record.size)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{exports.download_name(record)}"'
    )
    return _no_store(response)


def _count_download(runtime: Any, record: DdasExport) -> None:
    """Count and audit a download, committed before anything is sent (a unit of work of its
    own: the page itself only reads)."""
    with unit_of_work(runtime.sessions) as session:
        counted = session.get(DdasExport, record.id)
        assert counted is not None
        counted.downloads += 1
        for municipality_id in session.scalars(
            select(Municipality.id).where(Municipality.code.in_(record.gemeenten.split(",")))
        ):
            audit.record(session, current_user.email, "export.ddas.gedownload",
                         purpose=audit.PURPOSE_EXPORT, municipality_id=municipality_id,
                         export_id=record.id, levering_id=record.delivery_id)  # fmt: skip


@bp.post("/ddas/exports/<export_id>/verwijderen")
@roles_required(Role.ADMIN)
def remove_export(export_id: str) -> Any:
    record = _own_export(export_id)
    if record.status is ExportStatus.READY:
        runtime = current_app.extensions["vroegsignaal"]
        exports.remove_file(get_session(), record, runtime.settings.ddas_exports_dir,
                            current_user.email)  # fmt: skip
        flash(_("Het bestand is verwijderd."), "success")
    return redirect(url_for("ddas_pages.ddas"), code=303)
