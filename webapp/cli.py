"""The ``vroegsignaal`` command (Flask's click group). ``--json`` prints one JSON object."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import logging
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

import click
from flask.cli import FlaskGroup
from sqlalchemy import Engine, select

from config import ConfigError, load_settings
from signals import audit
from signals.db import make_engine, unit_of_work
from signals.enums import BatchSource, PartnerType, Role
from signals.envelope import load_certificate, load_private_key, pack
from signals.errors import Conflict, IntakeError, KeyFormatError, NotFound
from signals.jobs import ingest_file
from signals.models import Municipality, RecipientKey
from signals.runtime import Runtime
from signals.service import (
    add_municipality,
    add_partner,
    add_partner_key,
    add_user,
    create_recipient_key,
    get_municipality,
    get_partner,
    retire_recipient_key,
)

ROOT = Path(__file__).resolve().parents[1]


def _fail(message: str) -> click.ClickException:
    return click.ClickException(message.splitlines()[0] if message else "failed")


def _runtime() -> Runtime:
    try:
        return Runtime.from_settings(load_settings())
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def _create_app() -> Any:
    from webapp import create_app

    return create_app(runtime=_runtime())


def _emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, default=str))
    else:
        click.echo(text)


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


@click.group(
    cls=FlaskGroup,
    create_app=_create_app,
    add_version_option=False,
    load_dotenv=False,
    set_debug_flag=False,
)
def main() -> None:
    """Vroegsignaal: early signalling of payment arrears."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if click.get_current_context().invoked_subcommand not in ("run", "scheduler"):
        # Changes to users, partners and keys made by a command are audited as the operator's.
        audit.default_actor = _operator()


def _operator() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def upgrade_database(engine: Engine) -> None:
    """Alembic ``upgrade head`` on this engine (init-db, the demo, tests and benchmarks)."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@main.command("init-db", with_appcontext=False)
def init_db() -> None:
    """Create or upgrade the schema (Alembic upgrade head)."""
    upgrade_database(_runtime().engine)
    click.echo("database is up to date")


@main.command("init-config", with_appcontext=False)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def init_config(out: Path) -> None:
    """Write a TOML file with freshly generated secrets, unless it exists (used by make run)."""
    if out.exists():
        click.echo(f"{out} exists; kept")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(
            "# Generated once by `vroegsignaal init-config`; keep it secret, keep it safe.\n"
            f'secret_key = "{secrets.token_urlsafe(48)}"\n'
            f'data_key = "{base64.b64encode(os.urandom(32)).decode()}"\n'
            "# The DDAS delivery's contact person (an export is refused without an e-mail\n"
            "# address): the demo's; put your own team's here.\n"
            'ddas_contact_name = "Team Vroegsignalering"\n'
            'ddas_contact_email = "vroegsignalering@demo.vroegsignaal.nl"\n'
        )
    click.echo(f"wrote {out}")


@main.command("demo", with_appcontext=False)
@json_option
@click.option("--signals", "n_signals", default=3000, show_default=True)
def demo(as_json: bool, n_signals: int) -> None:
    """Load the demo: a municipality, four partners, signals ingested through the real path."""
    from webapp.demo import load_demo

    runtime = _runtime()
    upgrade_database(runtime.engine)
    result = load_demo(runtime, n_signals=n_signals)
    lines = ["Demo log-ins (wachtwoorden / passwords):"]
    lines += [f"  {u['role']:<10} {u['email']:<32} {u['password']}" for u in result["users"]]
    second = [u for u in result["users"] if u.get("totp_secret")]
    if second:
        lines += [
            "Tweede stap / second factor (TOTP): koppel bij de eerste log-in een authenticator-app"
            " (QR-code), of voer deze sleutel in / scan the QR code at the first log-in or enter"
            " this key:"
        ]
        lines += [f"  {u['role']:<10} {u['email']:<32} {u['totp_secret']}" for u in second]
    _emit(as_json, result, "\n".join(lines))


@main.command("scheduler", with_appcontext=False)
def scheduler() -> None:
    """Run the periodic jobs in this process (the only place they run)."""
    from webapp.scheduler import JOBS, build_scheduler

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    # Every job may run at once (they all start together), each with a connection for its
    # work and one holding its lock: a pool that never makes a job wait for a connection.
    runtime = Runtime(settings, make_engine(settings.database_url, pool_size=2 * len(JOBS) + 2))
    # SIGTERM (systemd, docker stop) ends the scheduler as cleanly as Ctrl+C does. SIGINT is
    # set explicitly: a process started in the background by a non-interactive shell
    # inherits it ignored, and Python then installs no KeyboardInterrupt handler.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    click.echo("scheduler started; Ctrl+C stops it", err=True)
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        build_scheduler(runtime).start()


@main.group("jobs")
def jobs_group() -> None:
    """Periodic jobs."""


@jobs_group.command("run", with_appcontext=False)
@click.argument("name", required=False)
@click.option("--all", "run_all", is_flag=True)
@json_option
def jobs_run(name: str | None, run_all: bool, as_json: bool) -> None:
    """Run one job (or --all) once, now, in this process."""
    from webapp.scheduler import JOBS, run_job

    if not run_all and not name:
        raise _fail("name a job or give --all; jobs: " + ", ".join(JOBS))
    if name and name not in JOBS:
        raise _fail(f"unknown job {name!r}; jobs: " + ", ".join(JOBS))
    runtime = _runtime()
    results = {}
    for job in JOBS if run_all else [name]:
        outcome = run_job(runtime, job)  # type: ignore[arg-type]
        results[job] = len(outcome) if isinstance(outcome, list) else outcome
    _emit(as_json, {"jobs": results}, "\n".join(f"{k}: {v}" for k, v in results.items()))


@main.group("gemeente")
def gemeente_group() -> None:
    """Municipalities."""


@gemeente_group.command("add", with_appcontext=False)
@click.option("--code", required=True, help="4-digit CBS gemeentecode")
@click.option("--naam", required=True)
@json_option
def gemeente_add(code: str, naam: str, as_json: bool) -> None:
    """Register a municipality."""
    runtime = _runtime()
    try:
        with unit_of_work(runtime.sessions) as session:
            municipality = add_municipality(session, code, naam)
            data = {"id": municipality.id, "code": municipality.code, "naam": municipality.name}
    except (ValueError, Conflict) as exc:
        raise _fail(str(exc)) from None
    _emit(as_json, data, f"municipality {code} {naam} registered")


@main.group("keys")
def keys_group() -> None:
    """Recipient keys partners encrypt to."""


@keys_group.command("create-recipient", with_appcontext=False)
@click.option("--gemeente", required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@json_option
def keys_create_recipient(gemeente: str, out: Path, as_json: bool) -> None:
    """New recipient key pair; writes the public certificate; the private key stays inside."""
    runtime = _runtime()
    try:
        with unit_of_work(runtime.sessions) as session:
            record = create_recipient_key(
                session, runtime.protector, get_municipality(session, gemeente)
            )
            data = {
                "id": record.id,
                "fingerprint": record.fingerprint,
                "certificate": str(out),
                "not_after": record.not_after,
            }
            out.write_text(record.certificate_pem)
    except NotFound as exc:
        raise _fail(str(exc)) from None
    _emit(as_json, data, f"wrote {out} (key {record.id}, sha256 {record.fingerprint})")


@keys_group.command("list", with_appcontext=False)
@click.option("--gemeente", required=True)
@json_option
def keys_list(gemeente: str, as_json: bool) -> None:
    """The municipality's recipient keys."""
    runtime = _runtime()
    with unit_of_work(runtime.sessions) as session:
        municipality = get_municipality(session, gemeente)
        keys = [
            {
                "id": k.id,
                "fingerprint": k.fingerprint,
                "created_at": k.created_at,
                "not_after": k.not_after,
                "retired_at": k.retired_at,
            }
            for k in session.scalars(
                select(RecipientKey).where(RecipientKey.municipality_id == municipality.id)
            )
        ]
    _emit(
        as_json,
        {"keys": keys},
        "\n".join(f"{k['id']} {k['fingerprint']} retired={k['retired_at']}" for k in keys),
    )


@keys_group.command("retire", with_appcontext=False)
@click.option("--id", "key_id", type=int, required=True)
@json_option
def keys_retire(key_id: int, as_json: bool) -> None:
    """Stop accepting batches encrypted to this key (after the rotation overlap)."""
    runtime = _runtime()
    with unit_of_work(runtime.sessions) as session:
        record = session.get(RecipientKey, key_id)
        if record is None:
            raise _fail("no recipient key with that id")
        retire_recipient_key(session, record)
    _emit(as_json, {"id": key_id, "retired": True}, f"key {key_id} retired")


@main.group("partner")
def partner_group() -> None:
    """Signal partners."""


def _partner_type(value: str) -> PartnerType:
    for member in PartnerType:
        if member.value.lower() == value.strip().lower():
            return member
    raise click.BadParameter("one of: " + ", ".join(m.value for m in PartnerType))


@partner_group.command("add", with_appcontext=False)
@click.option("--naam", required=True)
@click.option("--type", "type_", required=True, help="DDAS partner type, e.g. Huur")
@click.option("--gemeente", multiple=True, required=True)
@click.option("--public-key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def partner_add(
    naam: str, type_: str, gemeente: tuple[str, ...], public_key: Path | None, as_json: bool
) -> None:
    """Register a partner; prints its id and API token once."""
    partner_type = _partner_type(type_)
    runtime = _runtime()
    try:
        with unit_of_work(runtime.sessions) as session:
            municipalities = [get_municipality(session, code) for code in gemeente]
            created = add_partner(
                session,
                naam,
                partner_type,
                municipalities,
                public_key.read_bytes() if public_key else None,
            )
            data = {
                "id": created.partner.id,
                "token": created.token,
                "type": partner_type.value,
                "gemeenten": list(gemeente),
            }
    except (NotFound, KeyFormatError, ValueError, Conflict) as exc:
        raise _fail(str(exc)) from None
    _emit(as_json, data, f"partner id: {data['id']}\nAPI token (shown once): {data['token']}")


@partner_group.command("add-key", with_appcontext=False)
@click.option("--partner", "partner_id", required=True)
@click.option(
    "--public-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
)
@json_option
def partner_add_key(partner_id: str, public_key: Path, as_json: bool) -> None:
    """Register another signing key for a partner (key rollover)."""
    runtime = _runtime()
    try:
        with unit_of_work(runtime.sessions) as session:
            key = add_partner_key(
                session, get_partner(session, partner_id), public_key.read_bytes()
            )
            data = {"id": key.id, "fingerprint": key.fingerprint, "type": key.key_type}
    except (NotFound, KeyFormatError, Conflict) as exc:
        raise _fail(str(exc)) from None
    _emit(as_json, data, f"key {data['id']} ({data['type']}) registered")


@main.group("user")
def user_group() -> None:
    """Users."""


@user_group.command("add", with_appcontext=False)
@click.option("--email", required=True)
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    required=True,
    multiple=True,
    help="repeat for a second role (--role counsellor --role analyst); the first is the main one",
)
@click.option("--gemeente", multiple=True)
@click.option("--partner", "partner_id")
@json_option
def user_add(
    email: str,
    role: tuple[str, ...],
    gemeente: tuple[str, ...],
    partner_id: str | None,
    as_json: bool,
) -> None:
    """Add a user; prints a one-time password (and the second-factor secret for the roles
    that log in with one: ``totp_secret``, base32, and ``totp_uri``, the otpauth URI)."""
    from signals.totp import provisioning_uri

    runtime = _runtime()
    try:
        with unit_of_work(runtime.sessions) as session:
            municipalities = [get_municipality(session, code) for code in gemeente]
            partner = get_partner(session, partner_id) if partner_id else None
            if not municipalities and partner is None:
                raise ValueError("name at least one --gemeente (or a --partner)")
            created = add_user(
                session, email, Role(role[0]), municipalities, partner,
                extra_roles=[Role(r) for r in role[1:]],
                protector=runtime.protector, totp_roles=runtime.settings.totp_roles,
            )  # fmt: skip
            data: dict[str, Any] = {
                "id": created.user.id,
                "email": created.user.email,
                "role": role[0],
                "roles": sorted(r.value for r in created.user.roles),
                "password": created.password,
            }
            if created.totp_secret:
                data["totp_secret"] = created.totp_secret
                data["totp_uri"] = provisioning_uri(created.user, created.totp_secret)
    except (NotFound, ValueError, Conflict) as exc:
        raise _fail(str(exc)) from None
    text = f"user {data['email']} added; one-time password: {data['password']}"
    if "totp_secret" in data:
        text += f"\nsecond factor (TOTP) secret: {data['totp_secret']}\n{data['totp_uri']}"
    _emit(as_json, data, text)


@user_group.command("reset-totp", with_appcontext=False)
@click.option("--email", required=True)
@json_option
def user_reset_totp(email: str, as_json: bool) -> None:
    """A lost phone: a new second-factor secret, enrolled again at the next log-in; the old
    secret and the recovery codes stop working (audited)."""
    from signals.models import User
    from signals.totp import new_secret, provisioning_uri

    runtime = _runtime()
    with unit_of_work(runtime.sessions) as session:
        user = session.scalar(select(User).where(User.email == email.strip().lower()))
        if user is None:
            raise _fail("no user with this e-mail address")
        secret = new_secret(user, runtime.protector)
        data = {"email": user.email, "totp_secret": secret,
                "totp_uri": provisioning_uri(user, secret)}  # fmt: skip
    _emit(as_json, data, f"second factor of {data['email']} reset; new secret: "
          f"{data['totp_secret']}\n{data['totp_uri']}")  # fmt: skip


@main.command("pack", with_appcontext=False)
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--recipient",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="the municipality's certificate",
)
@click.option(
    "--key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="the partner's private key (PEM)",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@json_option
def pack_command(source: Path, recipient: Path, key: Path, out: Path, as_json: bool) -> None:
    """Encrypt and sign a batch as a partner does: writes OUT and OUT.sig."""
    try:
        certificate = load_certificate(recipient.read_bytes())
        private_key = load_private_key(key.read_bytes())
    except KeyFormatError as exc:
        raise _fail(str(exc)) from None
    p7m, signature = pack(source.read_bytes(), certificate, private_key)
    out.write_bytes(p7m)
    signature_path = out.with_name(out.name + ".sig")
    signature_path.write_bytes(signature)
    _emit(
        as_json,
        {"file": str(out), "signature": str(signature_path), "bytes": len(p7m)},
        f"wrote {out} and {signature_path}",
    )


@main.command("ingest", with_appcontext=False)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--signature", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True
)
@click.option("--partner", "partner_id", required=True)
@click.option("--gemeente")
@json_option
def ingest(
    file: Path, signature: Path, partner_id: str, gemeente: str | None, as_json: bool
) -> None:
    """Ingest a batch synchronously through the same path as the API; prints the report."""
    runtime = _runtime()
    try:
        result = ingest_file(runtime, partner_id, file, signature, BatchSource.CLI, gemeente)
    except IntakeError as exc:
        raise _fail(str(exc)) from None
    data = result.report
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
    else:
        click.echo(
            f"batch {data.get('id', '-')}: {data['status']}"
            + (f" ({data['code']})" if data.get("code") else "")
            + f", {data.get('rows_accepted', 0)} of {data.get('rows_total', 0)} rows accepted"
        )
        for rejection in data.get("rejections", [])[:50]:
            click.echo(f"  row {rejection['row']}: {rejection['field']} {rejection['code']}")
    if not result.ok:
        click.echo(f"Error: batch refused: {data.get('code', 'failed')}", err=True)
        sys.exit(1)


@main.group("model")
def model_group() -> None:
    """Risk models: train, evaluate, list (scores and activation come with the scoring job)."""


def _model_folder(runtime: Runtime, version: str | None) -> Path:
    root = Path(runtime.settings.models_dir)
    if version:
        folder = root / version
        if not (folder / "model.skops").is_file():
            raise _fail(f"no model {version} in {root}")
        return folder
    folders = sorted(
        (p for p in root.glob("*") if (p / "model.json").is_file()),
        key=lambda p: p.stat().st_mtime,
    )
    if not folders:
        raise _fail(f"no trained model in {root}: run `vroegsignaal model train` first")
    return folders[-1]


@model_group.command("train", with_appcontext=False)
@click.option("--households", default=200_000, show_default=True)
@click.option("--seed", default=2026, show_default=True)
@json_option
def model_train(households: int, seed: int, as_json: bool) -> None:
    """Train on the synthetic cohort (until local outcomes exist) and store the artifact."""
    from scoring.artifacts import save, train_synthetic
    from scoring.evaluation import gates

    runtime = _runtime()
    model, report = train_synthetic(households=households, seed=seed)
    failed = gates(report)
    folder = save(
        model, Path(runtime.settings.models_dir), {"evaluation": report, "gates_failed": failed}
    )
    data = {"model_version": report["model_version"], "path": str(folder), "gates_failed": failed}
    _emit(
        as_json,
        data,
        f"model {data['model_version']} stored in {folder}"
        + "".join(f"\n  gate failed: {g}" for g in failed),
    )


def _evaluated(version: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A stored model's metadata and its report, measured again on its later window."""
    from scoring.artifacts import ArtifactError, evaluate_artifact, load

    try:
        model, metadata = load(_model_folder(_runtime(), version))
        return metadata, evaluate_artifact(model, metadata)
    except ArtifactError as exc:
        raise _fail(str(exc)) from None


@model_group.command("evaluate", with_appcontext=False)
@click.option("--version", "version", help="a stored model version (default: the newest)")
@json_option
def model_evaluate(version: str | None, as_json: bool) -> None:
    """The evaluation report of a stored model, measured again on its later window."""
    from scoring.evaluation import gates

    _, report = _evaluated(version)
    report["gates_failed"] = gates(report)
    _emit(as_json, report, "\n".join(f"{k}: {v}" for k, v in report.items()))


@model_group.command("list", with_appcontext=False)
@json_option
def model_list(as_json: bool) -> None:
    """Stored model artifacts, newest last."""
    runtime = _runtime()
    root = Path(runtime.settings.models_dir)
    models = []
    for folder in sorted(root.glob("*/model.json"), key=lambda p: p.stat().st_mtime):
        meta = json.loads(folder.read_text())
        models.append(
            {
                "model_version": meta.get("model_version"),
                "path": str(folder.parent),
                "training_data": meta.get("training_data", {}).get("kind"),
                "gates_failed": meta.get("gates_failed", []),
            }
        )
    _emit(
        as_json,
        {"models": models},
        "\n".join(f"{m['model_version']}  {m['training_data']}" for m in models) or "none",
    )


@model_group.command("activate", with_appcontext=False)
@click.option("--gemeente", required=True)
@click.option("--version", "version", help="a stored model version (default: the newest)")
@click.option("--by", "by", default=None, help="who decides (default: the operator's login)")
@json_option
def model_activate(gemeente: str, version: str | None, by: str | None, as_json: bool) -> None:
    """Make a model the municipality's active one; refused unless it passes every gate."""
    import getpass

    from scoring.service import ModelRefused, activate_model, register_model

    runtime = _runtime()
    folder = _model_folder(runtime, version)
    try:
        with unit_of_work(runtime.sessions) as session:
            record = register_model(session, folder)
            activate_model(
                session, get_municipality(session, gemeente), record, by or getpass.getuser()
            )
            data = {"gemeente": gemeente, "model_version": record.version, "active": True}
    except (ModelRefused, NotFound) as exc:
        raise _fail(str(exc)) from None
    _emit(as_json, data, f"model {data['model_version']} is active for {gemeente}")


@model_group.command("retrain", with_appcontext=False)
@click.option("--gemeente", required=True)
@click.option("--min-households", default=2_000, show_default=True)
@click.option("--min-positives", default=100, show_default=True)
@click.option("--test-months", default=6, show_default=True)
@json_option
def model_retrain(
    gemeente: str, min_households: int, min_positives: int, test_months: int, as_json: bool
) -> None:
    """Train a challenger on local outcomes; compare it with the active model (the champion)."""
    from scoring.live import retrain
    from signals.rules import today_nl

    runtime = _runtime()
    try:
        with unit_of_work(runtime.sessions) as session:
            result = retrain(
                session,
                get_municipality(session, gemeente),
                Path(runtime.settings.models_dir),
                today_nl(),
                min_households=min_households,
                min_positives=min_positives,
                test_months=test_months,
            )
    except NotFound as exc:
        raise _fail(str(exc)) from None
    data = result.as_dict()
    text = result.reason
    if result.retrained:
        champion = data["champion"] or {}
        text = (
            f"challenger {result.model_version} stored and registered "
            f"({result.snapshots} snapshots, {result.positives} outcomes); champion "
            f"{champion.get('model_version', 'none')}"
            + "".join(f"\n  gate failed: {g}" for g in result.gates_failed)
            + (
                "\n  passes every gate: activate it with `vroegsignaal model activate`"
                if not result.gates_failed
                else ""
            )
        )
    _emit(as_json, data, text)


@model_group.command("docs", with_appcontext=False)
@click.option("--version", "version", help="a stored model version (default: the newest)")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("docs"),
    show_default=True,
)
def model_docs(version: str | None, out: Path) -> None:
    """Write docs/model-card.md, docs/algoritmeregister.md and the reliability and lift plots
    from the model's evaluation."""
    from scoring.docs import algoritmeregister, model_card, plots

    metadata, report = _evaluated(version)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model-card.md").write_text(model_card(metadata, report))
    (out / "algoritmeregister.md").write_text(algoritmeregister(metadata, report))
    for name, svg in plots(report).items():
        (out / name).write_text(svg)
    click.echo(f"wrote {out / 'model-card.md'}, {out / 'algoritmeregister.md'} and the plots")


@main.group("brp")
def brp_group() -> None:
    """The resident register (BRP) the resident check uses."""


@brp_group.command("import", with_appcontext=False)
@click.argument("extract", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--gemeente", required=True)
@json_option
def brp_import(extract: Path, gemeente: str, as_json: bool) -> None:
    """Replace the municipality's BRP extract (CSV); broken rows are reported, good rows load."""
    from outreach.residents import import_extract
    from signals.rules import today_nl

    runtime = _runtime()
    try:
        with unit_of_work(runtime.sessions) as session:
            municipality = get_municipality(session, gemeente)
            report = import_extract(
                session, runtime.protector, municipality.id, extract.read_bytes(), today_nl()
            ).as_dict()
    except (NotFound, ValueError) as exc:
        raise _fail(str(exc)) from None
    lines = [f"{report['rows_loaded']} of {report['rows_total']} rows loaded"]
    lines += [f"  row {r['row']}: {r['field']} {r['code']}" for r in report["rejections"]]
    _emit(as_json, report, "\n".join(lines))


@main.group("export")
def export_group() -> None:
    """Deliveries to others: the DDAS file for CBS."""


@export_group.command("ddas", with_appcontext=False)
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--gemeente", "codes", multiple=True, help="CBS code (default: every municipality)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@json_option
def export_ddas(
    start: dt.datetime, end: dt.datetime, codes: tuple[str, ...], out: Path, as_json: bool
) -> None:
    """The DDAS Vroegsignalering v1.2 delivery, validated before it is written."""
    import getpass

    from outreach.ddas import ExportRefused, export

    runtime = _runtime()
    try:
        with unit_of_work(runtime.sessions) as session:
            if codes:
                municipalities = [get_municipality(session, code) for code in codes]
            else:
                municipalities = list(
                    session.scalars(select(Municipality).order_by(Municipality.code))
                )
            if not municipalities:
                raise _fail("no municipality to export")
            delivery = export(
                session,
                runtime.protector,
                runtime.settings,
                municipalities,
                start.date(),
                end.date(),
                out,
                by=f"cli:{getpass.getuser()}",
            )
    except (ExportRefused, NotFound) as exc:
        raise _fail(str(exc)) from None
    data = delivery.as_dict()
    _emit(
        as_json,
        data,
        f"wrote {out}: {data['signals']} signals, {data['cases']} cases "
        f"({', '.join(data['gemeenten'])}), sha256 {data['sha256']}",
    )


@main.command("backup", with_appcontext=False)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@json_option
def backup(out: Path, as_json: bool) -> None:
    """Copy the live SQLite database to a new file (PostgreSQL: pg_dump, see the docs)."""
    from webapp.backup import BackupRefused, backup_sqlite

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    try:
        made = backup_sqlite(settings.database_url, out)
    except BackupRefused as exc:
        raise _fail(str(exc)) from None
    _emit(as_json, made.as_dict(), f"wrote {out}: {made.bytes} bytes, sha256 {made.sha256}")


# -- the audit trail ---------------------------------------------------------------------------
@main.group("audit")
def audit_group() -> None:
    """The audit trail: who saw or changed which case, when and why."""


def _since(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("an ISO date or date-time, e.g. 2026-11-01T08:00") from None
    if moment.tzinfo is None:  # a local date or time as Dutch operators mean it
        from signals.rules import NL

        moment = moment.replace(tzinfo=NL)
    return moment.astimezone(dt.UTC)


@audit_group.command("list", with_appcontext=False)
@click.option("--since", help="ISO date or date-time (Europe/Amsterdam without a zone)")
@click.option("--limit", type=click.IntRange(min=1), help="at most this many, the oldest first")
@click.option("--zaak", "case_id", type=int, help="only the events of this case")
@json_option
def audit_list(since: str | None, limit: int | None, case_id: int | None, as_json: bool) -> None:
    """The audit trail, oldest first."""
    moment = _since(since)
    runtime = _runtime()
    with unit_of_work(runtime.readers) as session:
        rows = [
            audit.as_dict(e)
            for e in audit.events(session, since=moment, case_id=case_id, limit=limit)
        ]
    lines = [
        f"{r['id']:>6} {r['at']} {r['actor']} {r['action']}"
        + (f" zaak {r['case_id']}" if r["case_id"] is not None else "")
        + (f" — {r['purpose']}" if r["purpose"] else "")
        for r in rows
    ]
    _emit(as_json, {"events": rows, "count": len(rows)}, "\n".join(lines) or "no events")


@audit_group.command("verify", with_appcontext=False)
@json_option
def audit_verify(as_json: bool) -> None:
    """Walk the hash chain; exit non-zero naming the first broken event."""
    runtime = _runtime()
    with unit_of_work(runtime.readers) as session:
        result = audit.verify(session)
    if as_json:
        click.echo(json.dumps(result.as_dict()))
    if not result.ok:
        raise _fail(f"audit chain broken at event {result.broken_id}: {result.reason}")
    if not as_json:
        click.echo(f"audit chain intact: {result.checked} events")


# -- rights of the person (AVG) ------------------------------------------------------------------
@main.group("avg")
def avg_group() -> None:
    """Requests of a person under the AVG: access (art. 15) and erasure (art. 17)."""


bsn_option = click.option("--bsn", required=True, help="the person's BSN (9 digits)")


def _bsn(value: str) -> str:
    from signals.rules import bsn_valid

    value = value.strip().zfill(9) if value.strip().isdigit() else value.strip()
    if not bsn_valid(value):
        raise _fail("not a valid BSN (9 digits, elfproef)")
    return value


@avg_group.command("inzage", with_appcontext=False)
@bsn_option
@click.option("--gemeente", required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@json_option
def avg_inzage(bsn: str, gemeente: str, out: Path, as_json: bool) -> None:
    """Everything held about one BSN, decrypted, as readable JSON in OUT (mode 0600)."""
    from outreach.avg import access

    bsn = _bsn(bsn)
    runtime = _runtime()
    try:
        with unit_of_work(runtime.sessions) as session:
            municipality = get_municipality(session, gemeente)
            document = access(session, runtime.protector, municipality, bsn, _operator())
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(document, handle, ensure_ascii=False, indent=2)
    except NotFound as exc:
        raise _fail(str(exc)) from None
    data = {
        "file": str(out),
        "signalen": len(document["signalen"]),
        "zaken": len(document["zaken"]),
    }
    _emit(as_json, data, f"wrote {out}: {data['signalen']} signals, {data['zaken']} cases")


@avg_group.command("wissen", with_appcontext=False)
@bsn_option
@click.option("--gemeente", required=True)
@click.option("--reden", default="", help="the request's reference (no personal data)")
@json_option
def avg_wissen(bsn: str, gemeente: str, reden: str, as_json: bool) -> None:
    """Erase one BSN's data where the law allows; refused with the reason otherwise."""
    from outreach.avg import ErasureRefused, erase
    from signals.rules import today_nl

    bsn = _bsn(bsn)
    runtime = _runtime()
    refused = None
    try:
        with unit_of_work(runtime.sessions) as session:
            municipality = get_municipality(session, gemeente)
            try:
                purged = erase(
                    session, runtime.protector, runtime.settings, municipality, bsn,
                    _operator(), today_nl(), reden,
                )  # fmt: skip
            except ErasureRefused as exc:
                refused = str(exc)  # the refusal itself is audited and kept
    except NotFound as exc:
        raise _fail(str(exc)) from None
    if refused is not None:
        raise _fail(f"erasure refused: {refused}")
    data = purged.as_dict()
    _emit(
        as_json,
        {"erased": True, **data},
        f"erased: {data['signals']} signals, {data['cases']} cases, {data['clients']} clients",
    )


# -- partner keys and tokens (docs/operations.md) ------------------------------------------------
@partner_group.command("keys", with_appcontext=False)
@click.option("--partner", "partner_id", required=True)
@json_option
def partner_keys(partner_id: str, as_json: bool) -> None:
    """The partner's signing keys: validity and revocation."""
    runtime = _runtime()
    try:
        with unit_of_work(runtime.readers) as session:
            keys = [
                {
                    "id": k.id,
                    "fingerprint": k.fingerprint,
                    "type": k.key_type,
                    "valid_from": k.valid_from,
                    "valid_until": k.valid_until,
                    "revoked_at": k.revoked_at,
                }
                for k in get_partner(session, partner_id).keys
            ]
    except NotFound as exc:
        raise _fail(str(exc)) from None
    _emit(
        as_json,
        {"keys": keys},
        "\n".join(
            f"{k['id']} {k['type']} {k['fingerprint']} revoked={k['revoked_at']}" for k in keys
        )
        or "no keys",
    )


@partner_group.command("revoke-key", with_appcontext=False)
@click.option("--partner", "partner_id", required=True)
@click.option("--key-id", type=int, required=True)
@click.option("--at", "at", help="ISO date-time the key stops being valid (default: now)")
@json_option
def partner_revoke_key(partner_id: str, key_id: int, at: str | None, as_json: bool) -> None:
    """Revoke a partner's signing key: batches signed with it are refused from then on."""
    from signals.models import PartnerKey
    from signals.service import revoke_partner_key

    moment = _since(at)
    runtime = _runtime()
    try:
        with unit_of_work(runtime.sessions) as session:
            partner = get_partner(session, partner_id)
            key = session.get(PartnerKey, key_id)
            if key is None or key.partner_id != partner.id:
                raise NotFound("the partner has no key with that id")
            revoke_partner_key(session, key, moment)
            data = {"partner": partner.id, "key_id": key.id, "revoked_at": key.revoked_at}
    except NotFound as exc:
        raise _fail(str(exc)) from None
    _emit(as_json, data, f"key {key_id} revoked from {data['revoked_at']}")


@partner_group.command("rotate-token", with_appcontext=False)
@click.option("--partner", "partner_id", required=True)
@json_option
def partner_rotate_token(partner_id: str, as_json: bool) -> None:
    """Replace the partner's API token; the old one stops working at once. Printed once."""
    from signals.service import rotate_partner_token

    runtime = _runtime()
    try:
        with unit_of_work(runtime.sessions) as session:
            partner = get_partner(session, partner_id)
            data = {"id": partner.id, "token": rotate_partner_token(session, partner)}
    except NotFound as exc:
        raise _fail(str(exc)) from None
    _emit(as_json, data, f"new API token (shown once): {data['token']}")
