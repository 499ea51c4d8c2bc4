"""Two municipalities with cases, batches and a user of every role each, for the web tests.

Municipality A (0344) is the world's; B (0363) has its own recipient key, partner, users and
cases. The people in the batches carry distinctive names, addresses, phone numbers and
amounts, so a test can look for them in every page.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from outreach import exports
from outreach.models import Case, CaseSignal
from signals.db import unit_of_work
from signals.enums import BatchSource, PartnerType, Role
from signals.jobs import ingest_file
from signals.models import Batch, Municipality, Partner, Signal, User
from signals.rules import today_nl
from signals.runtime import Runtime
from signals.service import add_municipality, add_partner, add_recipient_key, add_user
from tests import factories
from tests.factories import World, csv_bytes, openssl_batch, pem_public, row
from webapp.scheduler import JOBS, run_job

TODAY = today_nl()
ROLES = (Role.ADMIN, Role.COUNSELLOR, Role.ANALYST, Role.PARTNER)


def person(
    ref: str, bsn: str, initials: str, surname: str, street: str, number: str, postcode: str,
    phone: str, email: str, amount: str, monthly: str, born: str, **extra: str,
) -> dict[str, str]:  # fmt: skip
    return row(
        signaal_id=ref, bsn=bsn, voorletters=initials, tussenvoegsel="", achternaam=surname,
        straat=street, huisnummer=number, postcode=postcode, telefoon=phone, email=email,
        bedrag=amount, maandbedrag=monthly, geboortedatum=born,
        ontstaansdatum=(TODAY - dt.timedelta(days=40)).isoformat(), **extra,
    )  # fmt: skip


PEOPLE_A = [
    person("A-1", "417263958", "Q.", "Zwanenburg", "Vinkenstraat", "17", "3512 AB",
           "06 1234 5678", "q.zwanenburg@voorbeeld.example", "2345,67", "812,34", "1981-03-14",
           ontruimingsdatum=(TODAY + dt.timedelta(days=20)).isoformat()),
    person("A-2", "271828109", "W.", "Heliotroop", "Kromme Nieuwegracht", "41", "3512 HK",
           "030 765 4321", "w.heliotroop@voorbeeld.example", "1876,54", "432,19", "1975-11-02"),
]  # fmt: skip
PEOPLE_B = [
    person("B-1", "314159204", "X.", "Klaverblad", "Pijlstraat", "9", "1012 AB",
           "06 9876 5432", "x.klaverblad@voorbeeld.example", "3456,78", "623,45", "1969-07-21"),
]  # fmt: skip


def personal_strings(people: list[dict[str, str]]) -> list[str]:
    """What may never show where personal data is not allowed: in every form it is shown."""
    out: list[str] = []
    for p in people:
        born = dt.date.fromisoformat(p["geboortedatum"])
        out += [p["bsn"], p["achternaam"], p["straat"], p["email"],
                p["postcode"], p["postcode"].replace(" ", ""),
                p["telefoon"], p["telefoon"].replace(" ", ""),
                born.strftime("%d-%m-%Y"), born.isoformat()]  # fmt: skip
        for amount in (p["bedrag"], p["maandbedrag"]):
            euros, cents = amount.split(",")
            out += [amount, f"{euros}.{cents}", f"{int(euros):,}".replace(",", ".") + f",{cents}"]
    return out


@dataclass
class Account:
    email: str
    password: str
    roles: frozenset[Role]
    totp_secret: str | None = None


@dataclass
class Side:
    """One municipality's objects and users."""

    code: str
    municipality_id: int
    partner_id: str
    token: str
    batch_id: str = ""
    #: a DDAS export asked for by the side's admin, ready to download
    export_id: str = ""
    case_ids: list[int] = field(default_factory=list)
    users: dict[Role, Account] = field(default_factory=dict)


@dataclass
class Two:
    world: World
    a: Side
    b: Side


def _users(world: World, side: Side, extra: dict[str, tuple[Role, ...]] | None = None) -> None:
    with unit_of_work(world.runtime.sessions) as session:
        municipality = session.get(Municipality, side.municipality_id)
        partner = session.get(Partner, side.partner_id)
        assert municipality is not None and partner is not None
        for role in ROLES:
            email = f"{role.value}-{side.code}@gemeente.example"
            created = add_user(
                session, email, role, [municipality], partner if role is Role.PARTNER else None,
                protector=world.runtime.protector, totp_roles=world.runtime.settings.totp_roles,
            )  # fmt: skip
            side.users[role] = Account(email, created.password, frozenset({role}),
                                       created.totp_secret)  # fmt: skip


def _ingest(world: World, partner_id: str, rows: list[dict[str, str]], key: str, pem: str) -> str:
    path, sig = openssl_batch(world, csv_bytes(rows), name=f"{partner_id}.csv.p7m", key=key,
                              recipient=pem)  # fmt: skip
    report = ingest_file(world.runtime, partner_id, path, sig, BatchSource.CLI).report
    assert report["status"] == "processed" and report["rows_rejected"] == 0, report
    return str(report["id"])


@pytest.fixture
def two(world: World) -> Two:
    """Municipalities A and B, each with a partner, a processed batch, cases and users."""
    runtime = world.runtime
    with unit_of_work(runtime.sessions) as session:
        b_municipality = add_municipality(session, "0363", "Amsterdam")
        add_recipient_key(session, runtime.protector, b_municipality, world.keys.other_cert,
                          world.keys.other_key)  # fmt: skip
        created = add_partner(session, "Waterbedrijf B", PartnerType.WATER, [b_municipality],
                              pem_public(world.keys.partner["rsa2"]))  # fmt: skip
        b = Side("0363", b_municipality.id, created.partner.id, created.token)
    a = Side("0344", world.municipality_id, world.partner_id, world.token)
    a.batch_id = _ingest(world, a.partner_id, PEOPLE_A, "rsa", "recipient.pem")
    b.batch_id = _ingest(world, b.partner_id, PEOPLE_B, "rsa2", "other.pem")
    for name in JOBS:
        run_job(runtime, name)
    with unit_of_work(runtime.readers) as session:
        for side in (a, b):
            side.case_ids = sorted(
                session.scalars(select(Case.id).where(Case.municipality_id == side.municipality_id))
            )
            assert side.case_ids, f"no case in {side.code}"
        # The batches really hold the people (so looking for them elsewhere can fail).
        assert session.scalar(select(Batch.municipality_id).where(Batch.id == b.batch_id)) == (
            b.municipality_id
        )
        assert len(session.scalars(select(Signal.id).join(CaseSignal)).all()) == 3
    _users(world, a)
    _users(world, b)
    for side in (a, b):
        side.export_id = _ready_export(world, side)
    return Two(world, a, b)


def _ready_export(world: World, side: Side) -> str:
    """A DDAS export of the side's municipality, asked for by its admin and made."""
    runtime = world.runtime
    with unit_of_work(runtime.sessions) as session:
        municipality = session.get(Municipality, side.municipality_id)
        assert municipality is not None
        admin = session.scalars(select(User).where(User.email == side.users[Role.ADMIN].email))
        today = today_nl()
        record = exports.request_export(session, admin.one(), [municipality], today, today)
        export_id = record.id
    settings = runtime.settings.model_copy(update={"ddas_contact_email": "ddas@gemeente.example"})
    assert exports.make_exports(Runtime(settings, runtime.engine)) == 1
    return export_id


# -- logging in -------------------------------------------------------------------------------
def csrf_of(page: str) -> str:
    return factories.csrf_token(page)


def log_in(client: Any, account: Account) -> None:
    """Log in as a person does (password, then the second factor where the role has one)."""
    factories.login(client, account.email, account.password, account.totp_secret)
    assert not client.get("/", follow_redirects=True).request.path.startswith("/login")


def token_of(client: Any) -> str:
    """A CSRF token of the client's session: the log-out form, or the log-in form."""
    page = client.get("/", follow_redirects=True).get_data(as_text=True)
    return csrf_of(page)
