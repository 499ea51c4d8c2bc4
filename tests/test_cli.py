"""The ``vroegsignaal`` command as operators and partners run it: real processes."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from signals.db import unit_of_work
from signals.models import Batch, Signal
from signals.runtime import Runtime
from tests.factories import World, csv_bytes, openssl_batch, openssl_sign, row, synthetic_csv

VS = str(Path(sys.executable).with_name("vroegsignaal"))


def _env(runtime: Runtime, **extra: str) -> dict[str, str]:
    settings = runtime.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("VROEGSIGNAAL_")}
    env.update(
        {
            "VROEGSIGNAAL_DATABASE_URL": settings.database_url,
            "VROEGSIGNAAL_SECRET_KEY": settings.secret_key,
            "VROEGSIGNAAL_DATA_KEY": settings.data_key,
            "VROEGSIGNAAL_INBOX_DIR": settings.inbox_dir,
            "VROEGSIGNAAL_DDAS_DIR": settings.ddas_dir,
            "VROEGSIGNAAL_DDAS_EXPORTS_DIR": settings.ddas_exports_dir,
        }
    )
    env.update(extra)
    return env


def vs(runtime: Runtime, *args: str, check: bool = True, **extra: str) -> Any:
    result = subprocess.run(
        [VS, *args],
        env=_env(runtime, **extra),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{args}: {result.stderr}")
    return result


def test_operator_setup_and_partner_round_trip(runtime: Runtime, tmp_path: Path) -> None:
    """Register everything with the CLI, then pack with openssl *and* with `pack`, ingest both."""
    assert "up to date" in vs(runtime, "init-db").stdout
    gemeente = json.loads(
        vs(runtime, "gemeente", "add", "--code", "0344", "--naam", "Utrecht", "--json").stdout
    )
    assert gemeente["code"] == "0344"
    cert = tmp_path / "cert.pem"
    key_info = json.loads(
        vs(
            runtime, "keys", "create-recipient", "--gemeente", "0344", "--out", str(cert), "--json"
        ).stdout
    )
    assert cert.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert len(key_info["fingerprint"]) == 64
    partner_key = tmp_path / "partner.key"
    subprocess.run(
        [
            "openssl",
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            str(partner_key),
        ],
        check=True,
        capture_output=True,
    )
    partner_pub = tmp_path / "partner.pem"
    subprocess.run(
        ["openssl", "pkey", "-in", str(partner_key), "-pubout", "-out", str(partner_pub)],
        check=True,
        capture_output=True,
    )
    partner = json.loads(
        vs(
            runtime,
            "partner",
            "add",
            "--naam",
            "Woonstichting Test",
            "--type",
            "Huur",
            "--gemeente",
            "0344",
            "--public-key",
            str(partner_pub),
            "--json",
        ).stdout
    )
    assert partner["token"].startswith("vs_") and partner["id"]
    user = json.loads(
        vs(
            runtime,
            "user",
            "add",
            "--email",
            "c@example.nl",
            "--role",
            "counsellor",
            "--gemeente",
            "0344",
            "--json",
        ).stdout
    )
    assert len(user["password"]) >= 12 and user["roles"] == ["counsellor"]
    # Counsellors log in with a second factor: the secret for scripted set-up (CONTRACT §5).
    assert len(base64.b32decode(user["totp_secret"])) >= 16
    assert user["totp_uri"].startswith("otpauth://totp/Vroegsignaal:c%40example.nl?secret=")
    both = vs(runtime, "user", "add", "--email", "ca@example.nl", "--role", "counsellor",
              "--role", "analyst", "--gemeente", "0344", "--json").stdout  # fmt: skip
    assert json.loads(both)["roles"] == ["analyst", "counsellor"]
    refused = vs(runtime, "user", "add", "--email", "p@example.nl", "--role", "partner",
                 "--role", "analyst", "--partner", partner["id"], check=False)  # fmt: skip
    assert refused.returncode != 0 and "cannot hold another role" in refused.stderr

    # The partner's side: plain openssl.
    plain = csv_bytes([row(), row(signaal_id="S-2", postcode="ABCD12")])
    source = tmp_path / "signalen.csv"
    source.write_bytes(plain)
    p7m = tmp_path / "signalen.csv.p7m"
    subprocess.run(
        [
            "openssl",
            "cms",
            "-encrypt",
            "-aes256",
            "-binary",
            "-outform",
            "DER",
            "-in",
            str(source),
            "-out",
            str(p7m),
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    sig = openssl_sign(p7m, partner_key)
    result = vs(
        runtime, "ingest", str(p7m), "--signature", str(sig), "--partner", partner["id"], "--json"
    )
    report = json.loads(result.stdout)
    assert report["status"] == "processed"
    assert report["rows_accepted"] == 1
    assert report["rejections"] == [{"row": 2, "field": "postcode", "code": "postcode_format"}]

    # The same with our own packer.
    source.write_bytes(csv_bytes([row(signaal_id="S-3")]))
    packed = tmp_path / "ours.csv.p7m"
    vs(
        runtime,
        "pack",
        str(source),
        "--recipient",
        str(cert),
        "--key",
        str(partner_key),
        "--out",
        str(packed),
    )
    assert packed.with_name("ours.csv.p7m.sig").exists()
    report = json.loads(
        vs(
            runtime,
            "ingest",
            str(packed),
            "--signature",
            str(packed) + ".sig",
            "--partner",
            partner["id"],
            "--json",
        ).stdout
    )
    assert report["rows_accepted"] == 1

    # A refused batch: non-zero exit, one line on stderr, no personal data.
    bad = vs(
        runtime,
        "ingest",
        str(p7m),
        "--signature",
        str(packed) + ".sig",
        "--partner",
        partner["id"],
        check=False,
    )
    assert bad.returncode != 0
    assert "signature_invalid" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_missing_secret_stops_with_one_line(runtime: Runtime) -> None:
    result = vs(runtime, "init-db", check=False, VROEGSIGNAAL_DATA_KEY="")
    assert result.returncode != 0
    assert "VROEGSIGNAAL_DATA_KEY" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = vs(runtime, "init-db", check=False, VROEGSIGNAAL_DATA_KEY="c2hvcnQ=")
    assert "VROEGSIGNAAL_DATA_KEY" in result.stderr and "32 bytes" in result.stderr


def test_unknown_partner(runtime: Runtime, world: World) -> None:
    path, sig = openssl_batch(world, csv_bytes([row()]))
    result = vs(
        runtime,
        "ingest",
        str(path),
        "--signature",
        str(sig),
        "--partner",
        "00000000-0000-0000-0000-000000000000",
        check=False,
    )
    assert result.returncode != 0 and "unknown_partner" in result.stderr


def test_inbox_folder(runtime: Runtime, world: World) -> None:
    inbox = Path(runtime.settings.inbox_dir) / world.partner_id
    inbox.mkdir(parents=True)
    good, good_sig = openssl_batch(world, csv_bytes([row()]), name="maart.csv.p7m")
    bad, bad_sig = openssl_batch(
        world, csv_bytes([row(signaal_id="S-9")]), name="april.csv.p7m", recipient="other.pem"
    )
    waiting, _ = openssl_batch(world, csv_bytes([row(signaal_id="S-8")]), name="mei.csv.p7m")
    for file in (good, good_sig, bad, bad_sig, waiting):
        shutil.move(file, inbox / file.name)
    out = json.loads(vs(runtime, "jobs", "run", "poll_inbox", "--json").stdout)
    assert out["jobs"]["poll_inbox"] == 2
    done = json.loads((inbox / "done" / "maart.csv.p7m.report.json").read_text())
    assert done["status"] == "processed" and done["rows_accepted"] == 1
    failed = json.loads((inbox / "failed" / "april.csv.p7m.report.json").read_text())
    assert failed["code"] == "decrypt_failed"
    assert (inbox / "done" / "maart.csv.p7m.sig").exists()
    assert (inbox / "mei.csv.p7m").exists()  # its signature has not arrived yet: left waiting
    # An hour later the signature still has not come: refused, and out of the way.
    old = time.time() - 3601
    os.utime(inbox / "mei.csv.p7m", (old, old))
    out = json.loads(vs(runtime, "jobs", "run", "poll_inbox", "--json").stdout)
    assert out["jobs"]["poll_inbox"] == 1
    late = json.loads((inbox / "failed" / "mei.csv.p7m.report.json").read_text())
    assert late["code"] == "signature_invalid"


def test_same_batch_at_the_same_moment_from_two_processes(runtime: Runtime, world: World) -> None:
    path, sig = openssl_batch(world, synthetic_csv(300))
    command = [
        VS,
        "ingest",
        str(path),
        "--signature",
        str(sig),
        "--partner",
        world.partner_id,
        "--json",
    ]
    procs = [
        subprocess.Popen(
            command, env=_env(runtime), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    reports = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert reports[0]["id"] == reports[1]["id"]
    assert reports[0]["status"] == reports[1]["status"] == "processed"
    assert reports[0]["rows_accepted"] == reports[1]["rows_accepted"]
    with unit_of_work(runtime.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 1
        accepted = session.scalar(select(func.count()).select_from(Signal))
    assert accepted == reports[0]["rows_accepted"] > 250


def test_killed_mid_batch_leaves_nothing_and_completes_later(
    runtime: Runtime, world: World
) -> None:

    path, sig = openssl_batch(world, synthetic_csv(30_000, prefix="KILL"))
    batch_id = world.receive(path, sig)
    worker = subprocess.Popen(
        [VS, "jobs", "run", "process_batches"],
        env=_env(runtime),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with unit_of_work(runtime.readers) as session:
            if session.get(Batch, batch_id).status.value == "processing":  # type: ignore[union-attr]
                break
        time.sleep(0.05)
    time.sleep(0.5)  # well into the rows
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    with unit_of_work(runtime.sessions) as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None and batch.status.value == "processing"
        assert session.scalar(select(func.count()).select_from(Signal)) == 0
    # The dead worker's lease has run out: the next run takes the batch up and finishes it.
    time.sleep(1.1)
    vs(runtime, "jobs", "run", "process_batches", VROEGSIGNAAL_BATCH_LEASE_SECONDS="1")
    with unit_of_work(runtime.sessions) as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None and batch.status.value == "processed"
        assert batch.rows_total == 30_000
        count = session.scalar(select(func.count()).select_from(Signal))
        assert count == batch.rows_accepted > 29_000


def test_jobs_run_all_and_unknown(runtime: Runtime) -> None:
    assert json.loads(vs(runtime, "jobs", "run", "--all", "--json").stdout)["jobs"] == {
        "process_batches": 0,
        "poll_inbox": 0,
        "score_households": 0,
        "match_signals": {"signals": 0, "cases_created": 0, "repeats_closed": 0, "to_review": 0},
        "check_residents": {"inwoner": 0, "geen_inwoner": 0, "te_beoordelen": 0},
        "plan_cases": 0,
        "escalate_overdue": 0,
        "count_statistics": {"gemeenten": 0, "maanden": 0},
        "send_reminders": 0,
        "deliver_ddas": None,
        "make_ddas_exports": 0,
        "purge_expired": dict.fromkeys(
            [
                "cases",
                "signals",
                "clients",
                "tasks",
                "attempts",
                "messages",
                "case_events",
                "scores",
                "batch_files",
                "retained_added",
                "retained_deleted",
            ],
            0,
        ),
    }
    result = vs(runtime, "jobs", "run", "nope", check=False)
    assert result.returncode != 0 and "unknown job" in result.stderr


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_scheduler_runs_jobs_and_stops(runtime: Runtime, world: World, stop: int) -> None:
    inbox = Path(runtime.settings.inbox_dir) / world.partner_id
    inbox.mkdir(parents=True)
    path, sig = openssl_batch(world, csv_bytes([row()]), name="juni.csv.p7m")
    for file in (path, sig):
        shutil.move(file, inbox / file.name)
    process = subprocess.Popen(
        [VS, "scheduler"],
        env=_env(runtime),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # Started the way a non-interactive shell starts a background job: SIGINT ignored.
        # The scheduler must still stop on it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    report = inbox / "done" / "juni.csv.p7m.report.json"
    try:
        deadline = time.monotonic() + 120  # generous: CI machines can be busy
        while not report.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        process.send_signal(stop)
        # It finishes the jobs running at that moment (each a unit of work), then stops.
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert json.loads(report.read_text())["status"] == "processed"


def test_model_retrain_waits_for_local_outcomes(runtime: Runtime, world: World) -> None:
    out = json.loads(vs(runtime, "model", "retrain", "--gemeente", "0344", "--json").stdout)
    assert out["retrained"] is False and out["snapshots"] == 0
    assert out["reason"].startswith("not enough local outcomes yet")
    missing = vs(runtime, "model", "retrain", "--gemeente", "9999", check=False)
    assert missing.returncode != 0 and "9999" in missing.stderr


def test_user_reset_totp_after_a_lost_phone(runtime: Runtime, world: World) -> None:
    from signals.models import User
    from signals.totp import secret_of

    added = json.loads(vs(runtime, "user", "add", "--email", "kwijt@example.nl", "--role",
                          "counsellor", "--gemeente", "0344", "--json").stdout)  # fmt: skip
    with unit_of_work(runtime.sessions) as session:
        user = session.scalars(select(User).where(User.email == "kwijt@example.nl")).one()
        user.totp_enrolled_at = dt.datetime.now(dt.UTC)  # enrolled, with recovery codes
        user.recovery_codes = ["$argon2id$placeholder"]
    reset = json.loads(vs(runtime, "user", "reset-totp", "--email", "kwijt@example.nl",
                          "--json").stdout)  # fmt: skip
    assert reset["totp_secret"] != added["totp_secret"]
    assert reset["totp_uri"].startswith("otpauth://totp/")
    with unit_of_work(runtime.readers) as session:
        user = session.scalars(select(User).where(User.email == "kwijt@example.nl")).one()
        assert secret_of(user, runtime.protector) == reset["totp_secret"]
        assert user.totp_enrolled_at is None and user.recovery_codes == []  # enrol again
    unknown = vs(runtime, "user", "reset-totp", "--email", "niemand@example.nl", check=False)
    assert unknown.returncode != 0 and "no user" in unknown.stderr
