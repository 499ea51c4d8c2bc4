"""The partner portal: upload a batch and read the reports of the partner's own batches."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import select
from wtforms import SelectChoice, SelectField

from signals.enums import BatchSource, Role
from signals.errors import BatchRefused
from signals.ingest import UnknownMunicipality, receive_batch, report
from signals.models import Batch, Partner
from webapp.auth import roles_required
from webapp.db import commit_even_on_error, get_session

bp = Blueprint("portal", __name__, url_prefix="/partner")

REFUSAL_TEXT = {
    "signature_invalid": _l("Handtekening ongeldig of ontbreekt"),
    "unknown_partner": _l("Onbekende partner"),
    "not_cms": _l("Geen versleuteld CMS-bestand"),
    "decrypt_failed": _l("Ontsleutelen mislukt (verkeerd certificaat?)"),
    "encoding": _l("Inhoud is geen UTF-8"),
    "empty": _l("Bestand is leeg"),
    "missing_columns": _l("Verplichte kolommen ontbreken"),
    "duplicate_columns": _l("Een kolom staat dubbel in de kopregel"),
    "too_large": _l("Bestand is te groot"),
}
STATUS_TEXT = {
    "received": _l("Ontvangen"),
    "processing": _l("In verwerking"),
    "processed": _l("Verwerkt"),
    "failed": _l("Geweigerd"),
}
#: Why a row was refused, in words (the code is what the API and the CSV give).
ROW_TEXT = {
    "required": _l("Verplicht veld is leeg"),
    "invalid_date": _l("Geen geldige datum (JJJJ-MM-DD)"),
    "date_order": _l("Datums in de verkeerde volgorde"),
    "date_in_future": _l("Datum ligt in de toekomst"),
    "bsn_checksum": _l("BSN klopt niet (elfproef)"),
    "postcode_format": _l("Postcode heeft niet de vorm 1234AB"),
    "invalid_number": _l("Geen geldig bedrag of getal"),
    "not_positive": _l("Bedrag moet groter dan nul zijn"),
    "too_long": _l("Waarde is te lang"),
    "invalid_email": _l("Geen geldig e-mailadres"),
    "unknown_gemeente": _l("Gemeente niet bekend of niet aangesloten"),
    "duplicate_signal": _l("Signaal al eerder aangeleverd"),
    "invalid_value": _l("Waarde niet toegestaan"),
}
#: The states after which a batch no longer changes.
FINAL = {"processed", "failed"}


class UploadForm(FlaskForm):
    file = FileField(_l("Versleuteld bestand (.p7m)"), validators=[FileRequired()])
    signature = FileField(_l("Handtekening (.p7m.sig)"), validators=[FileRequired()])
    gemeentecode = SelectField(_l("Gemeente"), choices=[])


def _partner() -> Partner:
    partner = get_session().get(Partner, current_user.partner_id)
    if partner is None:
        abort(403)
    return partner


@bp.route("/batches", methods=["GET", "POST"])
@roles_required(Role.PARTNER)
def batches() -> Any:
    session = get_session()
    partner = _partner()
    form = UploadForm()
    form.gemeentecode.choices = [
        SelectChoice(m.code, f"{m.name} ({m.code})") for m in partner.municipalities
    ]
    if form.validate_on_submit():
        try:
            received = receive_batch(
                session,
                current_app.extensions["vroegsignaal"].settings,
                partner=partner,
                ciphertext=form.file.data.stream,
                signature=form.signature.data.read(),
                source=BatchSource.PORTAL,
                filename=form.file.data.filename,
                gemeentecode=form.gemeentecode.data,
            )
        except (BatchRefused, UnknownMunicipality) as exc:
            code = getattr(exc, "code", None)
            text = REFUSAL_TEXT.get(code.value, "") if code else str(exc)
            flash(_("Bestand geweigerd: %(reason)s", reason=text), "error")
            return redirect(url_for("portal.batches"))
        batch = received.batch
        if batch.refusal_code is not None:
            commit_even_on_error()
            reason = REFUSAL_TEXT[batch.refusal_code.value]
            flash(_("Bestand geweigerd: %(reason)s", reason=reason), "error")
        elif not received.created:
            flash(_("Dit bestand was al ontvangen; hieronder het eerste verslag."), "info")
        else:
            flash(_("Bestand ontvangen; de verwerking volgt binnen enkele ogenblikken."), "success")
        return redirect(url_for("portal.batch", batch_id=batch.id))
    rows = session.scalars(
        select(Batch)
        .where(Batch.partner_id == partner.id)
        .order_by(Batch.received_at.desc())
        .limit(100)
    ).all()
    return render_template(
        "partner_batches.html",
        form=form,
        partner=partner,
        batches=rows,
        status_text=STATUS_TEXT,
        refusal_text=REFUSAL_TEXT,
    )


def _own_batch(batch_id: str) -> Batch:
    record = get_session().get(Batch, batch_id) if len(batch_id) <= 36 else None
    if record is None or record.partner_id != current_user.partner_id:
        abort(404)
    return record


@bp.get("/batches/<batch_id>")
@roles_required(Role.PARTNER)
def batch(batch_id: str) -> Any:
    record = _own_batch(batch_id)
    return render_template(
        "batch.html",
        batch=record,
        report=report(get_session(), record, 1000),
        status_text=STATUS_TEXT,
        refusal_text=REFUSAL_TEXT,
        row_text=ROW_TEXT,
        final=record.status.value in FINAL,
    )


@bp.get("/batches/<batch_id>/status")
@roles_required(Role.PARTNER)
def batch_status(batch_id: str) -> Any:
    """Where the batch stands, for the page to follow without reloading (static/app.js)."""
    record = _own_batch(batch_id)
    state = record.status.value
    response = jsonify({"status": state, "label": str(STATUS_TEXT[state]), "final": state in FINAL})
    response.headers["Cache-Control"] = "no-store"
    return response
