"""The audit trail: append-only, chained with SHA-256, without personal data.

Every event's ``hash`` is SHA-256 over the previous event's hash and the canonical JSON of
its own fields (:func:`event_hash`), so changing, removing or reordering a stored event breaks
the chain from there on; :func:`verify` walks it and names the first broken event.

How events are written:

* :func:`record` queues an event on the session; the events are chained and inserted just
  before that session commits (``before_commit``), so the chain lock is held only for the
  moment of the commit and a rolled-back unit of work leaves no event behind.
* On PostgreSQL the append takes a transaction-level advisory lock, so two web workers and
  the scheduler never chain onto the same predecessor; SQLite has one writer at a time.
* There is no update or delete: the ORM refuses to change or delete a stored event.
* Changes to users, partners, keys and municipalities are recorded by an ORM hook here, so
  every entry point (CLI, demo, pages) is covered once. Who did it is
  ``session.info["actor"]``, else :data:`default_actor` (the CLI sets ``cli:<login>``).

An event names a case and a municipality by id, the person of an AVG request by a keyed hash,
and otherwise carries counts, kinds and ids: never a BSN, name, address or amount.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import event as orm_event
from sqlalchemy import func, insert, inspect, select, text
from sqlalchemy.orm import Session

from signals.db import utcnow
from signals.models import (
    AuditEvent,
    Municipality,
    Partner,
    PartnerKey,
    RecipientKey,
    User,
)

GENESIS = "0" * 64
#: The advisory lock that serialises appends on PostgreSQL ("VSAU").
_LOCK_KEY = 0x56534155
_PENDING = "audit_pending"
SYSTEM = "systeem"

#: The actor of changes made without ``session.info["actor"]`` (set by the CLI at start-up).
default_actor = SYSTEM

# Purposes, in plain Dutch (the purpose of processing, AVG art. 5).
PURPOSE_OUTREACH = "vroegsignalering: hulp aanbieden (Wgs art. 3)"
PURPOSE_EXPORT = "verantwoording: DDAS-levering aan CBS"
PURPOSE_RETENTION = "bewaartermijn: verwijderen van verlopen gegevens"
PURPOSE_MANAGEMENT = "functioneel beheer"
PURPOSE_AVG_ACCESS = "AVG art. 15: inzageverzoek"
PURPOSE_AVG_ERASURE = "AVG art. 17: verzoek om verwijdering"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _fields(event: AuditEvent) -> dict[str, Any]:
    at = event.at.astimezone(dt.UTC) if event.at.tzinfo else event.at.replace(tzinfo=dt.UTC)
    return {
        "at": at.isoformat(timespec="microseconds"),
        "actor": event.actor,
        "action": event.action,
        "purpose": event.purpose or "",
        "case_id": event.case_id,
        "municipality_id": event.municipality_id,
        "subject": event.subject,
        "detail": event.detail or {},
    }


def event_hash(prev_hash: str, event: AuditEvent) -> str:
    """SHA-256 (hex) over the previous hash and the canonical JSON of the event's fields."""
    return hashlib.sha256((prev_hash + _canonical(_fields(event))).encode()).hexdigest()


@dataclass
class _Pending:
    actor: str
    action: str
    purpose: str
    case: Any
    case_id: int | None
    municipality_id: int | None
    subject: str | None
    detail: dict[str, Any]
    at: dt.datetime
    #: A managed object (user, partner, key, municipality) described when stored.
    managed: Any = None


def _clean(detail: dict[str, Any]) -> dict[str, Any]:
    """Plain JSON values only (dates as ISO text), so the stored detail hashes the same."""
    return json.loads(_canonical(detail))  # type: ignore[no-any-return]


def record(
    session: Session,
    actor: str,
    action: str,
    *,
    purpose: str = "",
    case: Any = None,
    case_id: int | None = None,
    municipality_id: int | None = None,
    subject: str | None = None,
    **detail: Any,
) -> None:
    """Queue an audit event; it is chained and stored when ``session`` commits.

    ``case`` (an object with ``id`` and ``municipality_id``) may still be unflushed: its id is
    read at commit. ``detail`` holds counts, kinds and ids only, never personal data.
    """
    session.info.setdefault(_PENDING, []).append(
        _Pending(
            actor=actor[:254],
            action=action[:40],
            purpose=purpose[:200],
            case=case,
            case_id=case_id,
            municipality_id=municipality_id,
            subject=subject,
            detail=_clean(detail),
            at=utcnow(),
        )
    )


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def flush_pending(session: Session) -> int:
    """Chain and insert the queued events of ``session`` now (normally done at commit)."""
    session.flush()  # new cases and managed objects get their ids (and queue their events)
    pending: list[_Pending] = session.info.pop(_PENDING, [])
    if not pending:
        return 0
    _lock(session)
    previous = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    previous = previous or GENESIS
    rows = []
    for item in pending:
        case_id, municipality_id = item.case_id, item.municipality_id
        if item.case is not None:
            case_id = case_id or item.case.id
            municipality_id = municipality_id or item.case.municipality_id
        detail = item.detail
        if item.managed is not None:
            detail = _clean({**_describe(item.managed), **detail})
            municipality_id = municipality_id or _municipality_of(item.managed)
        row = {
            "at": item.at,
            "actor": item.actor,
            "action": item.action,
            "purpose": item.purpose,
            "case_id": case_id,
            "municipality_id": municipality_id,
            "subject": item.subject,
            "detail": detail,
            "prev_hash": previous,
        }
        row["hash"] = previous = event_hash(previous, SimpleNamespace(**row))  # type: ignore[arg-type]
        rows.append(row)
    # One statement for all of them: a job may audit thousands of case events at once.
    session.execute(insert(AuditEvent), rows)
    session.flush()
    return len(pending)


@orm_event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    flush_pending(session)


@orm_event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:  # the whole unit of work is undone
        session.info.pop(_PENDING, None)


# -- changes to users, partners, keys and municipalities ------------------------------------------
_WATCHED: dict[type, tuple[str, frozenset[str]]] = {
    User: ("gebruiker", frozenset({"email", "role", "extra_roles", "active", "partner_id"})),
    Partner: ("partner", frozenset({"name", "active", "token_hash", "partner_type"})),
    PartnerKey: ("partnersleutel", frozenset({"revoked_at", "valid_from", "valid_until"})),
    RecipientKey: ("ontvangstsleutel", frozenset({"retired_at", "not_after"})),
    Municipality: ("gemeente", frozenset({"code", "name"})),
}


def _describe(obj: Any) -> dict[str, Any]:
    """Ids and non-personal attributes of a managed object."""
    if isinstance(obj, User):
        return {"gebruiker_id": obj.id, "rol": obj.role.value if obj.role else None}
    if isinstance(obj, Partner):
        return {"partner_id": obj.id}
    if isinstance(obj, PartnerKey):
        return {"partner_id": obj.partner_id, "sleutel_id": obj.id, "vingerafdruk": obj.fingerprint}
    if isinstance(obj, RecipientKey):
        return {"sleutel_id": obj.id, "vingerafdruk": obj.fingerprint}
    if isinstance(obj, Municipality):
        return {"gemeente": obj.code}
    return {}


def _municipality_of(obj: Any) -> int | None:
    if isinstance(obj, RecipientKey):
        return obj.municipality_id
    if isinstance(obj, Municipality):
        return obj.id
    return None


@orm_event.listens_for(Session, "before_flush")
def _guard_and_watch(session: Session, context: Any, instances: Any) -> None:
    """Refuse changes to stored audit events; queue events for managed objects."""
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, AuditEvent):
            raise PermissionError("the audit trail is append-only")
    changes: list[tuple[Any, str, list[str]]] = []
    for obj in session.new:
        if type(obj) in _WATCHED:
            changes.append((obj, "aangemaakt", []))
    for obj in session.dirty:
        watched = _WATCHED.get(type(obj))
        if watched is None:
            continue
        state = inspect(obj)
        changed = sorted(
            name for name in watched[1] if state.attrs[name].history.has_changes()
        )  # a log-in (last_login_at) or a rehash is no management
        if isinstance(obj, User) and state.attrs.municipalities.history.has_changes():
            changed.append("gemeenten")
        if changed:
            changes.append((obj, "gewijzigd", changed))
    for obj in session.deleted:
        if type(obj) in _WATCHED:
            changes.append((obj, "verwijderd", []))
    if not changes:
        return
    actor = session.info.get("actor") or default_actor
    with session.no_autoflush:
        for obj, what, fields in changes:
            kind = _WATCHED[type(obj)][0]
            action = f"beheer.{kind}.{what}"
            extra: dict[str, Any] = {"velden": fields} if fields else {}
            if isinstance(obj, PartnerKey) and "revoked_at" in fields:
                action = "sleutel.ingetrokken"
            elif isinstance(obj, RecipientKey) and "retired_at" in fields:
                action = "sleutel.uitgefaseerd"
            elif isinstance(obj, Partner) and "token_hash" in fields:
                action = "partner.token.vervangen"
            elif isinstance(obj, (PartnerKey, RecipientKey)) and what == "aangemaakt":
                action = "sleutel.aangemaakt"
            session.info.setdefault(_PENDING, []).append(
                _Pending(
                    actor=actor,
                    action=action[:40],
                    purpose=PURPOSE_MANAGEMENT,
                    case=None,
                    case_id=None,
                    municipality_id=None,
                    subject=None,
                    detail=extra,
                    at=utcnow(),
                    # Ids exist only after the flush: described when stored.
                    managed=obj,
                )
            )


# -- reading and verifying ----------------------------------------------------------------------
def events(
    session: Session,
    *,
    since: dt.datetime | None = None,
    municipality_ids: list[int] | None = None,
    case_id: int | None = None,
    limit: int | None = None,
    offset: int = 0,
    newest_first: bool = False,
) -> list[AuditEvent]:
    """Stored events, oldest first (or newest first), optionally of some municipalities.

    Events without a municipality (service-wide: users, service keys) are shown to everyone
    allowed to read the trail.
    """
    query = select(AuditEvent)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if case_id is not None:
        query = query.where(AuditEvent.case_id == case_id)
    if municipality_ids is not None:
        query = query.where(
            AuditEvent.municipality_id.in_(municipality_ids) | AuditEvent.municipality_id.is_(None)
        )
    query = query.order_by(AuditEvent.id.desc() if newest_first else AuditEvent.id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query.offset(offset)))


def count(
    session: Session, municipality_ids: list[int] | None = None, case_id: int | None = None
) -> int:
    query = select(func.count(AuditEvent.id))
    if case_id is not None:
        query = query.where(AuditEvent.case_id == case_id)
    if municipality_ids is not None:
        query = query.where(
            AuditEvent.municipality_id.in_(municipality_ids) | AuditEvent.municipality_id.is_(None)
        )
    return int(session.scalar(query) or 0)


def as_dict(event: AuditEvent) -> dict[str, Any]:
    return {"id": event.id, **_fields(event), "prev_hash": event.prev_hash, "hash": event.hash}


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    broken_id: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "broken_id": self.broken_id,
            "reason": self.reason,
        }


def _walk(session: Session, chunk: int = 5_000) -> Iterator[AuditEvent]:
    """Stored events in id order as detached copies (the session's identity map stays small)."""
    columns = AuditEvent.__table__.columns
    last = 0
    while True:
        rows = session.execute(
            select(*columns).where(columns.id > last).order_by(columns.id).limit(chunk)
        ).mappings()
        batch = [AuditEvent(**row) for row in rows]
        if not batch:
            return
        yield from batch
        last = batch[-1].id


def verify(session: Session) -> Verification:
    """Walk the chain in id order; the first event whose link or hash is wrong breaks it."""
    previous = GENESIS
    checked = 0
    for stored in _walk(session):
        if stored.prev_hash != previous:
            return Verification(
                False, checked, stored.id, "prev_hash wijst niet naar de vorige gebeurtenis"
            )
        if event_hash(previous, stored) != stored.hash:
            return Verification(False, checked, stored.id, "hash klopt niet met de inhoud")
        previous = stored.hash
        checked += 1
    return Verification(True, checked)
