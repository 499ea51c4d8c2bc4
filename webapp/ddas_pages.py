"""The DDAS delivery for admins: the delivery log, and the export as a download.

The download is made by the same :func:`outreach.ddas.export` as the scheduled delivery and
the command line, so it is checked the same way and logged with the admin's e-mail address.
A refusal lists the paths of the violations (never a value). The file is written into a
private temporary folder and unlinked as soon as it is open for sending.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import DateField, SelectField
from wtforms.validators import DataRequired, ValidationError

from outreach.ddas import ExportRefused, export, last_complete_period
from outreach.models import DdasDelivery
from signals.enums import Role
from signals.models import Municipality
from signals.rules import today_nl
from webapp.auth import roles_required
from webapp.cbs import stream_and_close
from webapp.db import get_session

bp = Blueprint("ddas_pages", __name__)
ALL = "alle"
LOG_ROWS = 100


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


def _page(form: DeliveryForm, municipalities: list[Municipality], **extra: Any) -> str:
    form.gemeente.choices = [(ALL, _("alle (%(n)d)", n=len(municipalities)))] + [
        (m.code, f"{m.name} ({m.code})") for m in municipalities
    ]
    deliveries = _log({m.code for m in municipalities})
    return render_template("ddas.html", form=form, deliveries=deliveries, **extra)


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
def download() -> Any:
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
    name = f"ddas-{'-'.join(m.code for m in chosen)}-{start}-{end}.json"
    folder = Path(tempfile.mkdtemp(prefix="vs-ddas-"))  # mode 0700
    try:
        export(get_session(), runtime.protector, runtime.settings, chosen, start, end,
               folder / name, by=current_user.email)  # fmt: skip
        handle = (folder / name).open("rb")
    except ExportRefused as exc:
        page = _page(form, municipalities, refused=exc.violations)
        return _no_store(current_app.make_response((page, 422)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the open file stays readable
    response = Response(stream_and_close(handle), mimetype="application/json")
    response.call_on_close(handle.close)
    response.headers["Content-Length"] = str(os.fstat(handle.fileno()).st_size)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return _no_store(response)
