"""The DDAS Vroegsignalering v1.2 delivery to CBS: the file export and the pages of the pull API.

The rules every delivery is checked against live in :mod:`outreach.ddas_rules`.

**What a levering holds**: for one municipality and period, every active case (created by
the end of the period, not closed before its start) with *all* the signals it references
(also those dated outside the period: the DDAS rule is that a case references only signals
of the same levering), then every signal dated in the period that no active case holds. That
is also the stable order of a levering: cases by id, each with its signals, then the other
signals by id.

**Pages** (the pull API, :func:`paginate`): at most ``size`` signals each, a case always whole
on one page with its signals, cases packed greedily in that order; so every signal and every
case is on exactly one page, and every page is a valid document on its own.

**Amounts** are whole euros, rounded half up (``bedrag`` 450.50 becomes 451, 450.49 becomes
450): the standard asks for an integer and says nothing of rounding.

**The export** streams: signals and cases are read in chunks, each object is checked as it
is written, and a file replaces the target only when everything passed. A refusal lists the
path of each violation (``leveringen[0].vroegsignalen[12].client``) and the rule, never the
value. Every delivery (a file, or a page served to CBS) is logged without any BSN.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, selectinload

from config import Settings
from outreach.ddas_rules import extra_violations as extra_violations
from outreach.ddas_rules import schema_violations, signal_violations
from outreach.ddas_rules import violations as violations
from outreach.matching import period_bounds
from outreach.models import Case, CaseSignal, DdasDelivery
from signals import audit
from signals.crypto import DataProtector
from signals.ingest import CONTACT_CONTEXT, IDENTITY_CONTEXT
from signals.models import Municipality, Signal
from signals.rules import NL

PRODUCT = "Vroegsignaal"
DDAS_VERSION = "1.2"
CHUNK = 2_000


# -- the objects -------------------------------------------------------------------------------
def whole_euros(amount: Decimal) -> int:
    """The documented rounding rule: whole euros, half up."""
    return int(Decimal(amount).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def signal_object(signal: Signal, protector: DataProtector) -> dict[str, Any]:
    identity = protector.decrypt_json(signal.client.identity, IDENTITY_CONTEXT)
    if identity.get("bsn"):
        client: dict[str, Any] = {"burgerservicenummer": identity["bsn"]}
    else:
        contact = protector.decrypt_json(signal.contact, CONTACT_CONTEXT)
        client = {"postcode": contact["postcode"], "huisnummer": str(contact["huisnummer"])}
        if contact.get("huisnummertoevoeging"):
            client["huisnummertoevoeging"] = contact["huisnummertoevoeging"]
        if identity.get("geboortedatum"):
            client["geboortedatum"] = identity["geboortedatum"]
        if signal.client.gender is not None:
            client["geslachtsaanduiding"] = signal.client.gender.value
    return {
        "ID": str(signal.id),
        "crisissignaal": signal.crisis,
        "warmeOverdracht": signal.warm_handover,
        "bedrag": whole_euros(signal.amount),
        "ontstaansdatum": signal.arrears_start_date.isoformat(),
        "signaaldatum": signal.signal_date.isoformat(),
        "status": signal.status.value,
        "signaalpartner": {"type": signal.partner_type.value},
        "client": client,
    }


def case_object(case: Case, signal_ids: list[int]) -> dict[str, Any]:
    start, end = period_bounds(case.period)
    out: dict[str, Any] = {}
    if case.result is not None:
        out["resultaat"] = case.result.value
    out["matchingsdatum"] = case.created_at.date().isoformat()
    out["startdatumMatchingperiode"] = start.isoformat()
    out["einddatumMatchingperiode"] = end.isoformat()
    if case.picked_up_on is not None:
        out["datumOpgepakt"] = case.picked_up_on.isoformat()
    out["vroegsignalen"] = [{"ID": str(i)} for i in sorted(signal_ids)]
    out["contactpogingen"] = [
        {
            "soort": a.kind.value,
            "bereikt": a.reached,
            "datum": a.at.astimezone(NL).date().isoformat(),
            "dagdeel": a.dagdeel.value,
        }
        for a in case.attempts
    ]
    return out


class ExportRefused(Exception):
    """The export would break a rule; ``violations`` lists where (paths, never values)."""

    def __init__(self, violations: list[str]) -> None:
        shown = "; ".join(violations[:20]) + (" …" if len(violations) > 20 else "")
        super().__init__(f"DDAS export refused, {len(violations)} violation(s): {shown}")
        self.violations = violations


@dataclass
class Tally:
    """What a document holds."""

    signals: int = 0
    cases: int = 0
    attempts: int = 0
    #: Told the number of signals written so far, every ``PROGRESS_EVERY`` signals.
    progress: Callable[[int], None] | None = None


#: How often (in signals) the export tells its progress.
PROGRESS_EVERY = 200


def count_signals(session: Session, municipality_id: int, start: dt.date, end: dt.date) -> int:
    """How many signals the levering holds: those of its active cases and the others."""
    held = session.scalar(
        select(func.count())
        .select_from(CaseSignal)
        .join(Case, Case.id == CaseSignal.case_id)
        .where(_active_cases(municipality_id, start, end))
    )
    lone = session.scalar(
        select(func.count()).select_from(Signal).where(_lone(municipality_id, start, end))
    )
    return (held or 0) + (lone or 0)


@dataclass
class Delivery:
    path: Path
    sha256: str
    municipalities: list[str]
    signals: int = 0
    cases: int = 0
    attempts: int = 0
    log_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "gemeenten": self.municipalities,
            "signals": self.signals,
            "cases": self.cases,
            "contact_attempts": self.attempts,
            "delivery_id": self.log_id,
        }


def organisation(settings: Settings, municipality: Municipality) -> dict[str, Any]:
    if not settings.ddas_contact_email:
        raise ExportRefused(
            ["aanleverendeOrganisatie.contactpersonen: no contact e-mail configured "
             "(VROEGSIGNAAL_DDAS_CONTACT_EMAIL)"]
        )  # fmt: skip
    person = {"naam": settings.ddas_contact_name or "Team Vroegsignalering"}
    if settings.ddas_contact_phone:
        person["telefoonnummer"] = settings.ddas_contact_phone
    person["email"] = settings.ddas_contact_email
    if settings.ddas_contact_function:
        person["functietitel"] = settings.ddas_contact_function
    out: dict[str, Any] = {
        "naam": settings.ddas_organisation_name or f"Gemeente {municipality.name}"
    }
    if settings.ddas_kvk:
        out["kvk-nummer"] = settings.ddas_kvk
    out["contactpersonen"] = [person]
    return out


def product_code() -> str:
    try:
        return f"{PRODUCT} {version('vroegsignaal')}"
    except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        return PRODUCT


# -- which part of a levering ------------------------------------------------------------------
@dataclass(frozen=True)
class Part:
    """The part of a levering one document holds, in the levering's stable order.

    ``cases``: the ids of the active cases it holds (each with all its signals); None for
    every active case. Then the signals no active case holds: from ``lone_offset`` on, at most
    ``lone_limit`` (None: all). ``Part()`` is the whole levering.
    """

    cases: range | None = None
    lone_offset: int = 0
    lone_limit: int | None = None


@dataclass(frozen=True)
class Pagination:
    """One page of a levering and where it stands among the others (DDAS-VS ``Paginering``)."""

    page: int
    size: int
    pages: int
    records: int
    part: Part = field(default_factory=Part)

    def as_dict(self) -> dict[str, int]:
        return {
            "pageSize": self.size,
            "currentPage": self.page,
            "totalPages": self.pages,
            "totalRecords": self.records,
        }


class PageNotFound(Exception):
    """The page asked for is beyond the last one (``pages``)."""

    def __init__(self, pages: int) -> None:
        super().__init__(f"there are {pages} page(s)")
        self.pages = pages


class PageSizeTooSmall(Exception):
    """A case travels whole with its signals; the largest case has ``minimum`` signals."""

    def __init__(self, minimum: int) -> None:
        super().__init__(f"the page size must be at least {minimum}: a case and its signals "
                         "travel on one page")  # fmt: skip
        self.minimum = minimum


def _active_cases(municipality_id: int, start: dt.date, end: dt.date) -> Any:
    """Cases active in the period: created by its end and not closed before its start."""
    end_moment = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=NL)
    return and_(
        Case.municipality_id == municipality_id,
        Case.created_at < end_moment,
        or_(Case.closed_on.is_(None), Case.closed_on >= start),
    )


def _lone(municipality_id: int, start: dt.date, end: dt.date) -> Any:
    """Signals dated in the period that no active case holds."""
    held = (
        select(CaseSignal.signal_id)
        .join(Case, Case.id == CaseSignal.case_id)
        .where(CaseSignal.signal_id == Signal.id, _active_cases(municipality_id, start, end))
        .exists()
    )
    return and_(
        Signal.municipality_id == municipality_id,
        Signal.signal_date >= start,
        Signal.signal_date <= end,
        ~held,
    )


def paginate(
    session: Session, municipality_id: int, start: dt.date, end: dt.date, size: int, page: int
) -> Pagination:
    """Page ``page`` of the levering in pages of at most ``size`` signals (see the module).

    One pass over the signal count of every active case (streamed) and one count of the
    other signals; raises :class:`PageSizeTooSmall` or :class:`PageNotFound`.
    """
    sizes = (
        select(CaseSignal.case_id, func.count())
        .join(Case, Case.id == CaseSignal.case_id)
        .where(_active_cases(municipality_id, start, end))
        .group_by(CaseSignal.case_id)
        .order_by(CaseSignal.case_id)
        .execution_options(yield_per=10_000)
    )
    number, used, records, largest = 1, 0, 0, 0
    first = last = None
    for case_id, count in session.execute(sizes):
        records += count
        largest = max(largest, count)
        if used + count > size and used:
            number, used = number + 1, 0
        used += count
        if number == page:
            first = case_id if first is None else first
            last = case_id
    if largest > size:
        raise PageSizeTooSmall(largest)
    lone = session.scalar(
        select(func.count()).select_from(Signal).where(_lone(municipality_id, start, end))
    )
    lone = lone or 0
    records += lone
    room = size - used  # the rest of the last page with cases, then whole pages
    pages = number + -(-max(0, lone - room) // size)
    if page > pages:
        raise PageNotFound(pages)
    cases = range(first, last + 1) if first is not None and last is not None else range(0)
    if page < number:
        part = Part(cases, 0, 0)
    elif page == number:
        part = Part(cases, 0, room)
    else:
        part = Part(cases, room + (page - number - 1) * size, size)
    return Pagination(page, size, pages, records, part)


# -- writing -----------------------------------------------------------------------------------
class Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


class Sink(Protocol):
    """Where a document's bytes go: a file, or something wrapping one."""

    def write(self, data: bytes, /) -> Any: ...


class Writer:
    """Writes JSON pieces as UTF-8 to a binary handle, feeding a SHA-256 (and any other
    digest given) as it goes."""

    def __init__(self, handle: Sink, *digests: Digest) -> None:
        self.handle, self.sha256 = handle, hashlib.sha256()
        self.digests: tuple[Digest, ...] = (self.sha256, *digests)

    def write(self, text: str) -> None:
        data = text.encode()
        self.handle.write(data)
        for digest in self.digests:
            digest.update(data)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _header(start: dt.date, end: dt.date, now: dt.datetime) -> dict[str, Any]:
    if end < start:
        raise ExportRefused(["einddatumLevering: before startdatumLevering"])
    header = {
        "startdatumLevering": start.isoformat(),
        "einddatumLevering": end.isoformat(),
        "aanleverdatumEnTijd": now.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "codeGegevensleverancier": product_code(),
    }
    found = schema_violations("document", {**header, "leveringen": [{}]})
    found = [v for v in found if not v.startswith("leveringen")]
    if found:
        raise ExportRefused(found)
    return header


def refuse_early(start: dt.date, end: dt.date) -> None:
    """Raise :class:`ExportRefused` now if the period's header would break a rule (before
    anything is queued or written)."""
    _header(start, end, dt.datetime.now(dt.UTC))


def write_document(
    session: Session,
    protector: DataProtector,
    settings: Settings,
    leveringen: list[tuple[Municipality, Part]],
    start: dt.date,
    end: dt.date,
    writer: Writer,
    now: dt.datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> Tally:
    """Write one Uitwisselmodel document, a levering (or a part of one) per municipality.

    Every object is checked as it is written; raises :class:`ExportRefused` with the paths of
    all violations after writing (the caller throws what was written away). ``progress`` is
    told the number of signals written so far, now and then.
    """
    header = _header(start, end, now or dt.datetime.now(dt.UTC))
    tally = Tally(progress=progress)
    problems: list[str] = []
    writer.write(_dumps(header)[:-1] + ',"leveringen":[')
    for teller, (municipality, part) in enumerate(leveringen, start=1):
        if teller > 1:
            writer.write(",")
        problems += _levering(
            session, protector, settings, municipality, teller, start, end, part, writer, tally
        )
        if len(problems) > 1000:
            break
    writer.write("]}")
    if problems:
        raise ExportRefused(problems)
    return tally


def log_delivery(
    session: Session,
    start: dt.date,
    end: dt.date,
    codes: list[str],
    tally: Tally,
    sha256: str,
    by: str,
) -> DdasDelivery:
    """The delivery log: period, municipalities, counts, the hash of what went out, who."""
    record = DdasDelivery(
        period_start=start,
        period_end=end,
        gemeenten=",".join(codes),
        ddas_version=DDAS_VERSION,
        product=product_code(),
        signals=tally.signals,
        cases=tally.cases,
        sha256=sha256,
        by=by,
    )
    session.add(record)
    session.flush()
    for municipality_id in session.scalars(
        select(Municipality.id).where(Municipality.code.in_(codes))
    ):
        audit.record(
            session,
            by,
            "export.ddas",
            purpose=audit.PURPOSE_EXPORT,
            municipality_id=municipality_id,
            levering_id=record.id,
            periode=f"{start}/{end}",
            signalen=tally.signals,
            zaken=tally.cases,
        )
    return record


class UnnamedFile:
    """A file being written that has no name until :meth:`publish` gives it ``out``'s.

    On Linux it is made with ``O_TMPFILE``: if the process is killed halfway, the kernel
    frees it and nothing is left in the folder, under any name. Elsewhere it is a hidden
    temporary file beside ``out``, removed on any error the process lives to see.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path: Path | None = None
        try:
            descriptor = os.open(folder, os.O_TMPFILE | os.O_RDWR, 0o600)
        except (AttributeError, OSError):  # no O_TMPFILE here, or not on this file system
            descriptor, name = tempfile.mkstemp(dir=folder, prefix=".ddas-", suffix=".tmp")
            self.path = Path(name)
        self.handle: IO[bytes] = os.fdopen(descriptor, "wb")

    def publish(self, out: Path) -> None:
        """Give the complete file the name ``out`` (replacing any file of that name)."""
        self.handle.flush()
        os.fsync(self.handle.fileno())
        if self.path is None:
            # A name first (link() cannot replace), then the atomic rename onto ``out``.
            name = f".ddas-{os.urandom(8).hex()}.tmp"
            folder = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
            try:  # linkat(AT_SYMLINK_FOLLOW): the file behind the /proc link, not the link
                os.link(f"/proc/self/fd/{self.handle.fileno()}", name, dst_dir_fd=folder)
            finally:
                os.close(folder)
            self.path = self.folder / name
        os.replace(self.path, out)
        self.path = None

    def discard(self) -> None:
        self.handle.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class SealingSink(Sink, Protocol):
    """A sink that wraps the file (e.g. encrypts it) and must be told the end."""

    def finish(self) -> None: ...


def write_file(
    session: Session,
    protector: DataProtector,
    settings: Settings,
    municipalities: list[Municipality],
    start: dt.date,
    end: dt.date,
    out: Path,
    now: dt.datetime | None = None,
    *,
    seal: Callable[[IO[bytes]], SealingSink] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Delivery:
    """Write the whole delivery for ``municipalities`` and the period to ``out`` (see the
    module), through a file without a name that becomes ``out`` only when every check
    passed. Not logged (see :func:`export`). ``seal`` wraps the file's handle (the bytes
    hashed are the document's, before sealing); ``progress`` as in :func:`write_document`."""
    _header(start, end, now or dt.datetime.now(dt.UTC))  # refuse before making a file
    out.parent.mkdir(parents=True, exist_ok=True)
    unnamed = UnnamedFile(out.parent)
    try:
        with unnamed.handle as handle:
            sink = seal(handle) if seal is not None else None
            writer = Writer(sink if sink is not None else handle)
            tally = write_document(
                session, protector, settings, [(m, Part()) for m in municipalities], start, end,
                writer, now, progress,
            )  # fmt: skip
            if sink is not None:
                sink.finish()
            unnamed.publish(out)
    except BaseException:
        unnamed.discard()
        raise
    codes = [m.code for m in municipalities]
    return Delivery(
        out, writer.sha256.hexdigest(), codes, tally.signals, tally.cases, tally.attempts
    )


def export(
    session: Session,
    protector: DataProtector,
    settings: Settings,
    municipalities: list[Municipality],
    start: dt.date,
    end: dt.date,
    out: Path,
    by: str,
    now: dt.datetime | None = None,
) -> Delivery:
    """:func:`write_file`, then the delivery log."""
    delivery = write_file(session, protector, settings, municipalities, start, end, out, now)
    tally = Tally(delivery.signals, delivery.cases, delivery.attempts)
    codes = delivery.municipalities
    delivery.log_id = log_delivery(session, start, end, codes, tally, delivery.sha256, by).id
    return delivery


def _id_chunks(session: Session, query: Any) -> Iterator[list[int]]:
    """The ids ``query`` selects, ``CHUNK`` at a time, from one streamed query.

    (A keyset query per chunk, ``id > last ORDER BY id LIMIT n``, made SQLite read the
    municipality's index and sort the whole selection for every chunk: quadratic.)
    """
    result = session.execute(query.execution_options(yield_per=CHUNK))
    try:
        for partition in result.partitions():
            yield [row[0] for row in partition]
    finally:
        result.close()


def _case_chunks(
    session: Session, municipality_id: int, start: dt.date, end: dt.date, ids: range | None
) -> Iterator[list[int]]:
    """The ids of the active cases (of ``ids``, if given), a chunk at a time, in id order."""
    query = select(Case.id).where(_active_cases(municipality_id, start, end))
    if ids is not None:
        if not ids:
            return
        query = query.where(Case.id >= ids.start, Case.id < ids.stop)
    yield from _id_chunks(session, query.order_by(Case.id))


def _case_signals(session: Session, case_ids: list[int]) -> Iterator[Signal]:
    query = (
        select(Signal)
        .join(CaseSignal, CaseSignal.signal_id == Signal.id)
        .where(CaseSignal.case_id.in_(case_ids))
        .order_by(CaseSignal.case_id, Signal.id)
        .options(selectinload(Signal.client))
    )
    yield from session.scalars(query).all()
    session.expunge_all()


def _lone_signals(
    session: Session, municipality_id: int, start: dt.date, end: dt.date, part: Part
) -> Iterator[Signal]:
    """The signals no active case holds, in id order, from ``part.lone_offset`` on."""
    if part.lone_limit == 0:
        return
    query = (
        select(Signal.id)
        .where(_lone(municipality_id, start, end))
        .order_by(Signal.id)
        .offset(part.lone_offset)
        .limit(part.lone_limit)
    )
    for chunk in _id_chunks(session, query):
        yield from session.scalars(
            select(Signal)
            .where(Signal.id.in_(chunk))
            .order_by(Signal.id)
            .options(selectinload(Signal.client))
        ).all()
        session.expunge_all()


def _cases(
    session: Session, municipality_id: int, start: dt.date, end: dt.date, ids: range | None
) -> Iterator[tuple[Case, list[int]]]:
    """The active cases with their signal ids, a chunk at a time (bounded memory)."""
    for chunk in _case_chunks(session, municipality_id, start, end, ids):
        cases = session.scalars(
            select(Case)
            .where(Case.id.in_(chunk))
            .order_by(Case.id)
            .options(selectinload(Case.attempts))
        ).all()
        links: dict[int, list[int]] = {case.id: [] for case in cases}
        for case_id, signal_id in session.execute(
            select(CaseSignal.case_id, CaseSignal.signal_id).where(CaseSignal.case_id.in_(chunk))
        ):
            links[case_id].append(signal_id)
        for case in cases:
            yield case, links[case.id]
        session.expunge_all()


def _levering(
    session: Session,
    protector: DataProtector,
    settings: Settings,
    municipality: Municipality,
    teller: int,
    start: dt.date,
    end: dt.date,
    part: Part,
    writer: Writer,
    tally: Tally,
) -> list[str]:
    path = f"leveringen[{teller - 1}]"
    problems: list[str] = []
    code = municipality.code
    org = organisation(settings, municipality)
    problems += schema_violations("organisation", org, f"{path}.aanleverendeOrganisatie")
    writer.write(
        _dumps({"teller": teller, "gemeentecode": code})[:-1]
        + ',"aanleverendeOrganisatie":'
        + _dumps(org)
        + ',"vroegsignalen":['
    )
    mid = municipality.id

    def held() -> Iterator[Signal]:
        for chunk in _case_chunks(session, mid, start, end, part.cases):
            yield from _case_signals(session, chunk)

    # Signals: those of the active cases (all of them, also those dated outside the period),
    # then the others dated in the period. Every ID a case references is therefore in the
    # levering by construction; no set of a million IDs is kept to prove it (whole documents
    # are checked by ``extra_violations`` in the tests).
    index = 0
    for source in (held(), _lone_signals(session, mid, start, end, part)):
        for signal in source:
            item = signal_object(signal, protector)
            where = f"{path}.vroegsignalen[{index}]"
            problems += schema_violations("signal", item, where)
            problems += signal_violations(item, where)
            writer.write(("," if index else "") + _dumps(item))
            index += 1
            if tally.progress is not None and index % PROGRESS_EVERY == 0:
                tally.progress(tally.signals + index)
    tally.signals += index
    if tally.progress is not None:
        tally.progress(tally.signals)
    writer.write('],"vroegsignaalzaken":[')
    index = 0
    for case, signal_ids in _cases(session, mid, start, end, part.cases):
        item = case_object(case, signal_ids)
        problems += schema_violations("case", item, f"{path}.vroegsignaalzaken[{index}]")
        writer.write(("," if index else "") + _dumps(item))
        tally.attempts += len(item["contactpogingen"])
        index += 1
    tally.cases += index
    writer.write("]}")
    return problems


# -- the scheduled delivery --------------------------------------------------------------------
def last_complete_period(today: dt.date, kind: str) -> tuple[dt.date, dt.date]:
    """The most recent month, quarter or half-year that ended before ``today``."""
    months = {"month": 1, "quarter": 3, "half-year": 6}[kind]
    index = (today.year * 12 + today.month - 1) // months * months - months  # its first month
    start = dt.date(index // 12, index % 12 + 1, 1)
    after = index + months
    end = dt.date(after // 12, after % 12 + 1, 1) - dt.timedelta(days=1)
    return start, end


SYSTEM = "systeem"


def deliver_periodically(runtime: Any) -> str | None:
    """Job ``deliver_ddas`` (daily): the last complete period's delivery, once.

    Writes ``ddas-<start>-<end>.json`` for every municipality into ``ddas_dir`` unless the
    delivery log says this job already did (a download by an admin or pages fetched by CBS
    do not count); returns the file written, if any.
    """
    import logging

    from signals.db import unit_of_work
    from signals.rules import today_nl

    log = logging.getLogger(__name__)
    settings = runtime.settings
    start, end = last_complete_period(today_nl(), settings.ddas_period)
    with unit_of_work(runtime.sessions) as session:
        done = session.scalar(
            select(DdasDelivery.id).where(
                DdasDelivery.period_start == start,
                DdasDelivery.period_end == end,
                DdasDelivery.by == SYSTEM,
            )
        )
        municipalities = list(session.scalars(select(Municipality).order_by(Municipality.code)))
        if done is not None or not municipalities:
            return None
        out = Path(settings.ddas_dir) / f"ddas-{start}-{end}.json"
        try:
            export(session, runtime.protector, settings, municipalities, start, end, out, SYSTEM)
        except ExportRefused as exc:
            log.warning("DDAS delivery %s..%s refused: %s", start, end, exc)
            return None
    return str(out)
