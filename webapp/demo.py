"""The demo of CONTRACT §1: real data flow, not fixtures.

A municipality with its recipient key, four partners (Huur, Energie, Water, Zorg) each with
its own key pair, six months of monthly batches packed and encrypted exactly as a partner
would, dropped into each partner's inbox folder and ingested by the same job that serves
production. The signals are those of the synthetic cohort the risk model is trained on
(``scoring.synthetic.partner_rows``); the model is then trained (once), activated through
its gates, and the households are scored, matched into cases and planned. Log-ins of one
user per role are kept in ``instance/demo/`` so that a second run (idempotent) prints them
again.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import random
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from sqlalchemy import func, select

from outreach import jobs as outreach_jobs
from outreach.enums import CaseResult, CaseState, ContactKind
from outreach.matching import period_bounds
from outreach.models import Case, ContactAttempt
from outreach.residents import import_extract
from outreach.rules import add_working_days
from outreach.service import close, record_attempt
from scoring.artifacts import save, train_synthetic
from scoring.evaluation import gates
from scoring.jobs import score_households
from scoring.service import activate_model, active_model, register_model
from scoring.synthetic import partner_rows
from signals.db import unit_of_work
from signals.enums import PartnerType, Role
from signals.envelope import PrivateKey, load_certificate, pack
from signals.jobs import poll_inbox
from signals.models import Batch, Municipality, Partner, User
from signals.rules import NL, today_nl
from signals.runtime import Runtime
from signals.service import (
    active_recipient_keys,
    add_municipality,
    add_partner,
    add_user,
    create_recipient_key,
)
from signals.synthetic import Population, make_bsn, to_csv
from signals.totp import provisioning_uri

GEMEENTE = ("0344", "Utrecht")
PARTNERS = [
    ("Woonstichting De Sleutel", PartnerType.HUUR, "rsa"),
    ("Stroomlijn Energie", PartnerType.ENERGIE, "ec"),
    ("Waterbedrijf Midden", PartnerType.WATER, "ed25519"),
    ("Zorgverzekeraar Zilverlinde", PartnerType.ZORG, "rsa"),
]
MONTHS = 6


def _new_key(kind: str) -> PrivateKey:
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def load_demo(
    runtime: Runtime,
    n_signals: int = 3000,
    today: dt.date | None = None,
    model_households: int = 200_000,
) -> dict[str, Any]:
    today = today or today_nl()
    demo_dir = Path(runtime.settings.inbox_dir).parent / "demo"
    logins_file = demo_dir / "logins.json"
    with unit_of_work(runtime.sessions) as session:
        municipality = session.scalar(select(Municipality).where(Municipality.code == GEMEENTE[0]))
        already = municipality is not None and session.scalar(
            select(func.count(Batch.id)).where(Batch.municipality_id == municipality.id)
        )
    if already and logins_file.exists():
        logins = json.loads(logins_file.read_text())
        model = demo_model(runtime, model_households)
        return {"loaded": False, "gemeente": GEMEENTE[0], "users": logins, **model}

    partner_ids: dict[PartnerType, str] = {}
    users: list[dict[str, str]] = []
    with unit_of_work(runtime.sessions) as session:
        municipality = session.scalar(select(Municipality).where(Municipality.code == GEMEENTE[0]))
        if municipality is None:
            municipality = add_municipality(session, *GEMEENTE)
        if not active_recipient_keys(session, municipality.id):
            create_recipient_key(session, runtime.protector, municipality)
        recipient_pem = active_recipient_keys(session, municipality.id)[0].certificate_pem
        for name, partner_type, kind in PARTNERS:
            partner = session.scalar(select(Partner).where(Partner.name == name))
            if partner is None:
                key = _new_key(kind)
                _write_private(
                    demo_dir / "partners" / f"{partner_type.value.lower()}.key",
                    key.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    ),
                )
                public = key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                partner = add_partner(session, name, partner_type, [municipality], public).partner
            partner_ids[partner_type] = partner.id
        for role, email, partner_type in [
            (Role.ADMIN, "beheer@demo.vroegsignaal.nl", None),
            (Role.COUNSELLOR, "consulent@demo.vroegsignaal.nl", None),
            (Role.ANALYST, "analist@demo.vroegsignaal.nl", None),
            (Role.PARTNER, "partner@desleutel.example.nl", PartnerType.HUUR),
        ]:
            partner = session.get(Partner, partner_ids[partner_type]) if partner_type else None

            if session.scalar(select(User).where(User.email == email)) is None:
                created = add_user(
                    session, email, role, [municipality], partner,
                    protector=runtime.protector, totp_roles=runtime.settings.totp_roles,
                )  # fmt: skip
                login = {"role": role.value, "email": email, "password": created.password}
                if created.totp_secret:  # staff log in with a second factor (TOTP)
                    login["totp_secret"] = created.totp_secret
                    login["totp_uri"] = provisioning_uri(created.user, created.totp_secret)
                users.append(login)
    if users:
        logins_file.parent.mkdir(parents=True, exist_ok=True)
        _write_private(logins_file, json.dumps(users, indent=2).encode())
    else:
        users = json.loads(logins_file.read_text()) if logins_file.exists() else []

    recipient = load_certificate(recipient_pem.encode())
    # The signals are the synthetic cohort's (scoring.synthetic), with people from a
    # synthetic population: the same patterns the risk model was trained on.
    population = Population(max(200, n_signals))
    batches = partner_rows(n_signals, today, MONTHS, population, invalid_share=0.01)
    # The municipality's BRP extract: most people live here, every 25th moved away.
    with unit_of_work(runtime.sessions) as session:
        municipality = session.scalars(
            select(Municipality).where(Municipality.code == GEMEENTE[0])
        ).one()
        import_extract(session, runtime.protector, municipality.id, brp_extract(population), today)
    inbox = Path(runtime.settings.inbox_dir)
    for (partner_type, month), rows in sorted(batches.items()):
        key_file = demo_dir / "partners" / f"{partner_type.value.lower()}.key"
        private_key = serialization.load_pem_private_key(key_file.read_bytes(), None)
        p7m, signature = pack(to_csv(rows), recipient, private_key)  # type: ignore[arg-type]
        folder = inbox / partner_ids[partner_type]
        folder.mkdir(parents=True, exist_ok=True)
        name = f"signalen-{month:%Y-%m}.csv.p7m"
        (folder / name).write_bytes(p7m)
        (folder / (name + ".sig")).write_bytes(signature)
    results = poll_inbox(runtime)
    model = demo_model(runtime, model_households)
    return {
        "loaded": True,
        **model,
        "gemeente": GEMEENTE[0],
        "batches": len(results),
        "rows_accepted": sum(r.report.get("rows_accepted", 0) for r in results),
        "rows_rejected": sum(r.report.get("rows_rejected", 0) for r in results),
        "users": users,
    }


EXTRACT_COLUMNS = (
    "bsn", "voornamen", "voorvoegsel", "geslachtsnaam", "geboortedatum", "straat", "huisnummer",
    "huisnummertoevoeging", "postcode", "woonplaats",
)  # fmt: skip


def brp_extract(population: Population, moved_every: int = 25) -> bytes:
    """A BRP extract (CSV) of the demo population: everyone but every ``moved_every``-th."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(EXTRACT_COLUMNS)
    for index, person in enumerate(population.households):
        if person.bsn and index % moved_every:
            writer.writerow(
                [
                    person.bsn,
                    "",
                    person.tussenvoegsel,
                    person.achternaam,
                    person.geboortedatum.isoformat(),
                    person.straat,
                    person.huisnummer,
                    person.toevoeging,
                    person.postcode,
                    person.woonplaats,
                ]
            )
            if index % 3 == 0:  # a third of the households has a minor child at home
                rng = random.Random(index)  # noqa: S311 - synthetic data
                writer.writerow(
                    [
                        make_bsn(rng),
                        rng.choice(["Sem", "Noor", "Liam", "Julia", "Daan", "Emma"]),
                        person.tussenvoegsel,
                        person.achternaam,
                        (today_nl() - dt.timedelta(days=rng.randint(365, 17 * 365))).isoformat(),
                        person.straat,
                        person.huisnummer,
                        person.toevoeging,
                        person.postcode,
                        person.woonplaats,
                    ]
                )
    return out.getvalue().encode()


def _passing_artifact(root: Path) -> Path | None:
    """The newest stored model that passed every gate, if any (saves training it again)."""
    for meta in sorted(root.glob("*/model.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        data = json.loads(meta.read_text())
        if data.get("evaluation") and not gates(data["evaluation"]):
            return meta.parent
    return None


def demo_model(runtime: Runtime, households: int = 200_000) -> dict[str, Any]:
    """Train, register and activate the risk model once, then score the demo's households.

    The model is trained on the synthetic cohort (there are no local outcomes in a demo);
    it is activated only because it passes every gate, exactly as
    ``vroegsignaal model activate`` would.
    """
    with unit_of_work(runtime.sessions) as session:
        municipality = session.scalar(select(Municipality).where(Municipality.code == GEMEENTE[0]))
        record = active_model(session, municipality) if municipality else None
        version = record.version if record else None
    if version is None:
        folder = _passing_artifact(Path(runtime.settings.models_dir))
        if folder is None:
            model, report = train_synthetic(households=households)
            folder = save(
                model,
                Path(runtime.settings.models_dir),
                {"evaluation": report, "gates_failed": gates(report)},
            )
        with unit_of_work(runtime.sessions) as session:
            municipality = session.scalars(
                select(Municipality).where(Municipality.code == GEMEENTE[0])
            ).one()
            record = register_model(session, folder)
            activate_model(session, municipality, record, by="demo")
            version = record.version
    scored = score_households(runtime)
    matched = outreach_jobs.match(runtime)
    checked = outreach_jobs.check_residents(runtime)  # a page of cases per run
    while sum((more := outreach_jobs.check_residents(runtime)).values()):
        checked = {key: checked[key] + more[key] for key in checked}
    planned = outreach_jobs.plan(runtime)
    worked = work_history(runtime)
    return {
        "model_version": version,
        "households_scored": scored,
        "cases_created": matched["cases_created"],
        "cases_planned": planned,
        "resident_check": checked,
        "cases_worked": worked,
        "statistics": outreach_jobs.count_statistics(runtime),
    }


#: Demo outreach history: per contact kind, the chance to reach the resident (roughly the
#: Divosa monitor's figures: calls and visits reach many, letters few).
REACH = {
    ContactKind.TELEFOON: 0.4,
    ContactKind.HUISBEZOEK: 0.35,
    ContactKind.BRIEF: 0.06,
    ContactKind.KAARTJE: 0.1,
    ContactKind.SMS: 0.2,
}
#: What a reached resident decided, with weights.
OUTCOMES = (
    (CaseResult.VERVOLGHULP_FINANCIEEL, 25),
    (CaseResult.ADVIES_QUICK_FIX, 20),
    (CaseResult.REGELT_ZELF, 25),
    (CaseResult.ZELF_BETAALD, 20),
    (CaseResult.AL_BEKEND, 10),
)


def work_history(runtime: Runtime, seed: int = 7) -> int:
    """Give the demo a past: cases of earlier months were matched at the end of their month,
    and the demo counsellor worked them as a team would (attempts by plan, results).

    Runs once (nothing happens when any attempt exists); returns the cases worked.
    """
    rng = random.Random(seed)  # noqa: S311  (a synthetic demo history, not security)
    today = today_nl()
    with unit_of_work(runtime.sessions) as session:
        if session.scalar(select(ContactAttempt.id).limit(1)) is not None:
            return 0
        counsellor = session.scalars(select(User).where(User.role == Role.COUNSELLOR)).first()
        if counsellor is None:
            return 0
        cases = session.scalars(
            select(Case).where(Case.period < f"{today:%Y-%m}").order_by(Case.id)
        ).all()
        worked = 0
        for case in cases:
            _, period_end = period_bounds(case.period)
            matched_at = dt.datetime.combine(period_end, dt.time(18), tzinfo=NL)
            case.created_at = matched_at
            for event in case.events:
                event.at = matched_at
            if case.state not in (CaseState.NIEUW, CaseState.OPGEPAKT) or not case.tasks:
                continue
            day, reached = period_end, False
            for task in case.tasks[:4]:
                day = add_working_days(day, rng.randint(1, 4))
                if day >= today:
                    break
                moment = dt.datetime.combine(day, dt.time(rng.randint(8, 20)), tzinfo=NL)
                reached = rng.random() < REACH.get(task.kind, 0.1)
                record_attempt(
                    case, counsellor, task.kind, moment, reached, None, runtime.protector,
                    now=moment,
                )  # fmt: skip
                if reached:
                    break
            if case.state is not CaseState.OPGEPAKT:
                continue
            worked += 1
            if reached:
                result = rng.choices([r for r, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]
            elif all(t.done_at for t in case.tasks[:4]):
                result = CaseResult.GEEN_CONTACT
            else:
                continue
            close(case, result, counsellor.email, min(day + dt.timedelta(days=2), today))
    return worked
