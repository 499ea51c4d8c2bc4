"""Rights of the person (AVG art. 15 and 17): access to, and erasure of, one BSN's data.

Both find the person by the keyed BSN hash within one municipality and are audited with
that hash as the subject (never the BSN). Signals without a BSN cannot be attributed to a
person with certainty and are not part of a request by BSN.

Erasure is refused while the law needs the data (the Wgs task): while a case of the person
is open, or while a case with accepted help is within ``retention_accepted_months`` after it
closed. Otherwise everything is deleted as retention does, without keeping a keyed address
hash: the person asked for erasure.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from config import Settings
from outreach.enums import HELP_ACCEPTED, CaseState
from outreach.letters import MESSAGE_CONTEXT
from outreach.models import Case, CaseSignal
from outreach.retention import Purged, delete_cases_and_signals
from outreach.service import NOTE_CONTEXT
from scoring.models import OutcomeEvent
from signals import audit
from signals.crypto import DataProtector
from signals.ingest import CONTACT_CONTEXT, IDENTITY_CONTEXT
from signals.models import Client, Municipality, Signal


class ErasureRefused(Exception):
    """The law does not (yet) allow erasure; the message says why, in Dutch."""


def _signals(session: Session, municipality: Municipality, bsn_hash: str) -> list[Signal]:
    return list(
        session.scalars(
            select(Signal)
            .where(Signal.municipality_id == municipality.id, Signal.bsn_hash == bsn_hash)
            .order_by(Signal.signal_date, Signal.id)
            .options(selectinload(Signal.client), selectinload(Signal.partner))
        )
    )


def _cases(session: Session, signal_ids: list[int]) -> list[Case]:
    if not signal_ids:
        return []
    return list(
        session.scalars(
            select(Case)
            .where(
                Case.id.in_(select(CaseSignal.case_id).where(CaseSignal.signal_id.in_(signal_ids)))
            )
            .order_by(Case.id)
            .options(
                selectinload(Case.signals),
                selectinload(Case.tasks),
                selectinload(Case.attempts),
                selectinload(Case.messages),
                selectinload(Case.events),
            )
        )
    )


def _day(value: dt.date | dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def access(
    session: Session,
    protector: DataProtector,
    municipality: Municipality,
    bsn: str,
    actor: str,
) -> dict[str, Any]:
    """Everything held about one BSN in one municipality, decrypted, as readable JSON."""
    bsn_hash = protector.bsn_hash(bsn)
    signals = _signals(session, municipality, bsn_hash)
    cases = _cases(session, [s.id for s in signals])
    clients = {s.client_id: s.client for s in signals}
    for client in session.scalars(
        select(Client).where(Client.municipality_id == municipality.id, Client.bsn_hash == bsn_hash)
    ):
        clients[client.id] = client
    result: dict[str, Any] = {
        "verzoek": "AVG art. 15: inzage",
        "gemeente": municipality.code,
        "opgesteld_op": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "personen": [
            {
                "id": c.id,
                "geslacht": c.gender.value if c.gender else None,
                "identiteit": protector.decrypt_json(c.identity, IDENTITY_CONTEXT),
                "vastgelegd_op": _day(c.created_at),
            }
            for c in clients.values()
        ],
        "signalen": [
            {
                "id": s.id,
                "signaalpartner": s.partner.name,
                "soort_partner": s.partner_type.value,
                "kenmerk_partner": s.signal_ref,
                "signaaldatum": _day(s.signal_date),
                "ontstaansdatum": _day(s.arrears_start_date),
                "bedrag": str(s.amount),
                "maandbedrag": str(s.monthly_amount) if s.monthly_amount is not None else None,
                "crisissignaal": s.crisis,
                "warme_overdracht": s.warm_handover,
                "eindelevering": s.end_of_supply,
                "ontruimingsdatum": _day(s.eviction_date),
                "status": s.status.value,
                "leeftijdsgroep": s.age_band,
                "contactgegevens": protector.decrypt_json(s.contact, CONTACT_CONTEXT),
                "ontvangen_op": _day(s.created_at),
            }
            for s in signals
        ],
        "zaken": [_case(case, protector) for case in cases],
    }
    audit.record(
        session,
        actor,
        "avg.inzage",
        purpose=audit.PURPOSE_AVG_ACCESS,
        municipality_id=municipality.id,
        subject=bsn_hash,
        signalen=len(signals),
        zaken=len(cases),
    )
    return result


def _case(case: Case, protector: DataProtector) -> dict[str, Any]:
    return {
        "id": case.id,
        "periode": case.period,
        "status": case.state.value,
        "eindresultaat": case.result.value if case.result else None,
        "opgepakt_op": _day(case.picked_up_on),
        "afgesloten_op": _day(case.closed_on),
        "prioriteit": case.priority,
        "risicogroep": case.band,
        "signalen": [s.id for s in case.signals],
        "taken": [
            {"soort": t.kind.value, "uiterlijk": _day(t.due_on), "gedaan_op": _day(t.done_at)}
            for t in case.tasks
        ],
        "contactpogingen": [
            {
                "soort": a.kind.value,
                "tijdstip": _day(a.at),
                "dagdeel": a.dagdeel.value,
                "bereikt": a.reached,
                "notitie": protector.decrypt(a.note, NOTE_CONTEXT).decode() if a.note else None,
            }
            for a in case.attempts
        ],
        "berichten": [
            {
                "soort": m.kind.value,
                "verstuurd_op": _day(m.sent_at),
                **json.loads(protector.decrypt(m.content, MESSAGE_CONTEXT)),
            }
            for m in case.messages
        ],
        "tijdlijn": [
            {"tijdstip": _day(e.at), "door": e.actor, "soort": e.kind, "tekst": e.text}
            for e in case.events
        ],
    }


def erase(
    session: Session,
    protector: DataProtector,
    settings: Settings,
    municipality: Municipality,
    bsn: str,
    actor: str,
    today: dt.date,
    reason: str = "",
) -> Purged:
    """Erase one BSN's data where the law allows; else :class:`ErasureRefused` (nothing
    deleted). Audited either way, with the keyed hash as the subject."""
    bsn_hash = protector.bsn_hash(bsn)
    signals = _signals(session, municipality, bsn_hash)
    cases = _cases(session, [s.id for s in signals])
    accepted_cutoff = today - relativedelta(months=settings.retention_accepted_months)
    refusal = None
    if any(c.state is not CaseState.AFGESLOTEN for c in cases):
        refusal = (
            "er loopt nog een zaak: de gemeente heeft de gegevens nodig voor het hulpaanbod "
            "(Wgs); wissen kan nadat de zaak is afgesloten"
        )
    elif any(
        c.result in HELP_ACCEPTED and c.closed_on is not None and c.closed_on >= accepted_cutoff
        for c in cases
    ):
        refusal = (
            "er is hulp aanvaard en de bewaartermijn daarvan "
            f"({settings.retention_accepted_months} maanden na afsluiten) loopt nog (Wgs)"
        )
    detail: dict[str, Any] = {"reden": reason[:200]} if reason else {}
    if refusal is not None:
        audit.record(
            session,
            actor,
            "avg.wissen.geweigerd",
            purpose=audit.PURPOSE_AVG_ERASURE,
            municipality_id=municipality.id,
            subject=bsn_hash,
            zaken=len(cases),
            **detail,
        )
        raise ErasureRefused(refusal)
    in_cases = {s.id for c in cases for s in c.signals}
    loose = [s for s in signals if s.id not in in_cases]
    out = delete_cases_and_signals(session, cases, loose, lookback=None)
    # A client without any signal left (also one whose signals were all in other cases).
    for client in session.scalars(
        select(Client).where(Client.municipality_id == municipality.id, Client.bsn_hash == bsn_hash)
    ):
        if session.scalar(select(Signal.id).where(Signal.client_id == client.id).limit(1)):
            continue
        session.delete(client)
        out.clients += 1
    # Live labels of the household (a keyed hash and a date) go with the person too.
    session.execute(
        delete(OutcomeEvent).where(
            OutcomeEvent.municipality_id == municipality.id,
            OutcomeEvent.household_key == bsn_hash,
        )
    )
    session.flush()
    audit.record(
        session,
        actor,
        "avg.wissen",
        purpose=audit.PURPOSE_AVG_ERASURE,
        municipality_id=municipality.id,
        subject=bsn_hash,
        **out.as_dict(),
        **detail,
    )
    return out
