"""The partner portal: upload a batch and read the reports of the partner's own batches."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
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
    "signature_invalid": "Handtekening ongeldig of ontbreekt",
    "unknown_partner": "Onbekende partner",
    "not_cms": "Geen versleuteld CMS-bestand",
    "decrypt_failed": "Ontsleutelen mislukt (verkeerd certificaat?)",
    "encoding": "Inhoud is geen UTF-8",
    "empty": "Bestand is leeg",
    "missing_columns": "Verplichte kolommen ontbreken",
    "duplicate_columns": "Een kolom staat dubbel in de kopregel",
    "too_large": "Bestand is te groot",
}
STATUS_TEXT = {
    "received": "Ontvangen",
    "processing": "In verwerking",
    "processed": "Verwerkt",
    "failed": "Geweigerd",
}


class UploadForm(FlaskForm):
    file = FileField("Versleuteld bestand (.p7m)", validators=[FileRequired()])
    signature = FileField("Handtekening (.p7m.sig)", validators=[FileRequired()])
    gemeentecode = SelectField("Gemeente", choices=[])


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
            flash(f"Bestand geweigerd: {text}", "error")
            return redirect(url_for("portal.batches"))
        batch = received.batch
        if batch.refusal_code is not None:
            commit_even_on_error()
            flash(f"Bestand geweigerd: {REFUSAL_TEXT[batch.refusal_code.value]}", "error")
        elif not received.created:
            flash("Dit bestand was al ontvangen; hieronder het eerste verslag.", "info")
        else:
            flash("Bestand ontvangen; de verwerking volgt binnen enkele ogenblikken.", "success")
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


@bp.get("/batches/<batch_id>")
@roles_required(Role.PARTNER)
def batch(batch_id: str) -> Any:
    session = get_session()
    record = session.get(Batch, batch_id) if len(batch_id) <= 36 else None
    if record is None or record.partner_id != current_user.partner_id:
        abort(404)
    return render_template(
        "batch.html",
        batch=record,
        report=report(session, record, 1000),
        status_text=STATUS_TEXT,
        refusal_text=REFUSAL_TEXT,
    )
