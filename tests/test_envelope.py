"""The envelope of CONTRACT §3.1, against the real openssl binary."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from signals.enums import BatchCode
from signals.envelope import decrypt, load_public_key, pack, to_der, verify_signature
from signals.errors import BatchRefused, KeyFormatError
from tests.factories import KeyRing, openssl_encrypt, openssl_sign, pem_private

PLAINTEXT = b"signaal_id;bedrag\nA-1;12,50\nA-2;7\n"


@pytest.fixture
def files(tmp_path: Path, keys: KeyRing) -> dict[str, Path]:
    out = {
        "recipient.pem": tmp_path / "recipient.pem",
        "other.pem": tmp_path / "other.pem",
    }
    out["recipient.pem"].write_bytes(keys.recipient_cert.public_bytes(serialization.Encoding.PEM))
    out["other.pem"].write_bytes(keys.other_cert.public_bytes(serialization.Encoding.PEM))
    for name, key in keys.partner.items():
        out[name] = tmp_path / f"{name}.key"
        out[name].write_bytes(pem_private(key))
    return out


def _recipients(keys: KeyRing) -> list:
    return [(keys.other_cert, keys.other_key), (keys.recipient_cert, keys.recipient_key)]


def test_openssl_der_batch_decrypts(keys: KeyRing, files: dict[str, Path]) -> None:
    der = openssl_encrypt(PLAINTEXT, files["recipient.pem"])
    assert decrypt(to_der(der), _recipients(keys)) == PLAINTEXT


@pytest.mark.parametrize("label", ["CMS", "PKCS7"])
def test_openssl_pem_batch_decrypts_with_either_label(
    keys: KeyRing, files: dict[str, Path], label: str
) -> None:
    pem = openssl_encrypt(PLAINTEXT, files["recipient.pem"], pem=True)
    assert pem.startswith(b"-----BEGIN CMS-----")
    relabelled = pem.replace(b"CMS-----", f"{label}-----".encode())
    assert decrypt(to_der(relabelled), _recipients(keys)) == PLAINTEXT


def test_batch_for_another_certificate_is_decrypt_failed(
    keys: KeyRing, files: dict[str, Path]
) -> None:
    der = openssl_encrypt(PLAINTEXT, files["other.pem"])
    with pytest.raises(BatchRefused) as caught:
        decrypt(to_der(der), [(keys.recipient_cert, keys.recipient_key)])
    assert caught.value.code is BatchCode.DECRYPT_FAILED


def test_truncated_ciphertext_is_decrypt_failed(keys: KeyRing, files: dict[str, Path]) -> None:
    der = openssl_encrypt(PLAINTEXT * 50, files["recipient.pem"])
    with pytest.raises(BatchRefused) as caught:
        decrypt(to_der(der[: len(der) // 2]), _recipients(keys))
    assert caught.value.code is BatchCode.DECRYPT_FAILED


@pytest.mark.parametrize(
    "data",
    [b"signaal_id;bedrag\nA;1\n", b"%PDF-1.7 not a batch", b"-----BEGIN CERTIFICATE-----\nAA\n"],
)
def test_not_cms(data: bytes) -> None:
    with pytest.raises(BatchRefused) as caught:
        to_der(data)
    assert caught.value.code is BatchCode.NOT_CMS


@pytest.mark.parametrize(
    ("key_name", "kind"),
    [("rsa", "rsa"), ("rsa", "pss"), ("ec", "ecdsa"), ("ed25519", "ed25519")],
)
def test_openssl_signatures_verify(
    tmp_path: Path, keys: KeyRing, files: dict[str, Path], key_name: str, kind: str
) -> None:
    batch = tmp_path / "batch.p7m"
    batch.write_bytes(openssl_encrypt(PLAINTEXT, files["recipient.pem"]))
    signature = openssl_sign(batch, files[key_name], kind).read_bytes()
    public = keys.partner[key_name].public_key()
    assert verify_signature(batch.read_bytes(), signature, [public])
    # One flipped bit in the file, or another partner's key: refused.
    tampered = bytearray(batch.read_bytes())
    tampered[-1] ^= 1
    assert not verify_signature(bytes(tampered), signature, [public])
    assert not verify_signature(batch.read_bytes(), signature, [keys.partner["rsa2"].public_key()])


def test_missing_signature_never_verifies(keys: KeyRing) -> None:
    assert not verify_signature(b"data", b"", [keys.partner["rsa"].public_key()])


def test_pack_writes_what_openssl_writes(
    tmp_path: Path, keys: KeyRing, files: dict[str, Path]
) -> None:
    p7m, signature = pack(PLAINTEXT, keys.recipient_cert, keys.partner["rsa"])
    batch = tmp_path / "ours.p7m"
    batch.write_bytes(p7m)
    # openssl decrypts our file with the recipient's key...
    recipient_key = tmp_path / "recipient.key"
    recipient_key.write_bytes(pem_private(keys.recipient_key))
    plain = subprocess.run(
        [
            "openssl",
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-in",
            str(batch),
            "-inkey",
            str(recipient_key),
            "-recip",
            str(files["recipient.pem"]),
        ],
        capture_output=True,
        check=True,
    ).stdout
    assert plain == PLAINTEXT
    # ...it has the structure `openssl cms -encrypt -aes256` writes...
    printed = subprocess.run(
        ["openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", str(batch)],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    theirs = subprocess.run(
        ["openssl", "cms", "-cmsout", "-print", "-inform", "DER"],
        input=openssl_encrypt(PLAINTEXT, files["recipient.pem"]),
        capture_output=True,
        check=True,
    ).stdout.decode()
    for marker in (
        "pkcs7-envelopedData",
        "rsaEncryption",
        "aes-256-cbc",
        "d.issuerAndSerialNumber",
    ):
        assert marker in printed
        assert marker in theirs
    # ...and the RSA signature is byte for byte `openssl dgst -sha256 -sign`'s.
    assert openssl_sign(batch, files["rsa"]).read_bytes() == signature


def test_public_key_forms(keys: KeyRing) -> None:
    cert_pem = keys.recipient_cert.public_bytes(serialization.Encoding.PEM)
    assert load_public_key(cert_pem).valid_until is not None
    for key in keys.partner.values():
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        loaded = load_public_key(pem)
        assert len(loaded.fingerprint) == 64
    with pytest.raises(KeyFormatError):
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nnonsense\n-----END PUBLIC KEY-----\n")


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 70_000, 1_000_003])
@pytest.mark.parametrize("options", [[], ["-stream"], ["-keyid"]])
def test_streaming_decryption_matches_openssl_and_cryptography(
    keys: KeyRing, files: dict[str, Path], size: int, options: list[str]
) -> None:
    """The streaming reader agrees with cryptography's whole-file decryption, in tiny reads."""
    from cryptography.hazmat.primitives.serialization import pkcs7

    from signals.cms import decrypt_stream

    plaintext = os.urandom(size)
    der = openssl_encrypt(plaintext, files["recipient.pem"], options=tuple(options))
    pieces = [der[i : i + 997] for i in range(0, len(der), 997)]
    streamed = b"".join(decrypt_stream(pieces, _recipients(keys), chunk_size=4096))
    assert streamed == plaintext
    if not options:  # cryptography reads neither BER (-stream) nor key identifiers (-keyid)
        assert streamed == pkcs7.pkcs7_decrypt_der(der, keys.recipient_cert, keys.recipient_key, [])


def test_file_for_two_recipients_opens_with_either(keys: KeyRing, files: dict[str, Path]) -> None:
    der = openssl_encrypt(PLAINTEXT, files["other.pem"], files["recipient.pem"])
    assert decrypt(der, [(keys.recipient_cert, keys.recipient_key)]) == PLAINTEXT
    assert decrypt(der, [(keys.other_cert, keys.other_key)]) == PLAINTEXT


def test_damage_anywhere_is_refused(keys: KeyRing, files: dict[str, Path]) -> None:
    der = openssl_encrypt(PLAINTEXT * 100, files["recipient.pem"])
    for cut in (20, 300, len(der) - 40, len(der) - 1):
        with pytest.raises(BatchRefused) as caught:
            decrypt(der[:cut], _recipients(keys))
        assert caught.value.code in (BatchCode.DECRYPT_FAILED, BatchCode.NOT_CMS)
    # The last block decrypts to other padding bytes: refused, whichever of 255 flips it is
    # (a single flip can leave valid padding by chance, so try several).
    refused = 0
    for flip in range(1, 40):
        damaged = bytearray(der)
        damaged[-1] ^= flip
        try:
            decrypt(bytes(damaged), _recipients(keys))
        except BatchRefused:
            refused += 1
    assert refused >= 30


@pytest.mark.parametrize(
    "hostile",
    [
        # originatorInfo nested thousands of levels deep
        "3080" + "06092a864886f70d010703" + "a080" + "3080" + "020100" + "a080" + "3080" * 5000,
        # a recipient identifier that is an empty SEQUENCE
        "3080"
        + "06092a864886f70d010703"
        + "a080"
        + "3080"
        + "020100"
        + "3110"
        + "300e"
        + "020100"
        + "3000"
        + "3005"
        + "0603"
        + "2a8648"
        + "0400"
        + "3000",
        # lengths that run past the end of the file
        "30" + "84ffffffff" + "06092a864886f70d010703" + "a0" + "84ffffffff",
    ],
)
def test_hostile_envelopes_are_refused_not_crashes(keys: KeyRing, hostile: str) -> None:
    with pytest.raises(BatchRefused) as caught:
        decrypt(bytes.fromhex(hostile), _recipients(keys))
    assert caught.value.code in (BatchCode.DECRYPT_FAILED, BatchCode.NOT_CMS)


@pytest.mark.parametrize("length_bytes", [0, 1, 2, 3, 4])
def test_envelope_recognised_whatever_its_length_encoding(length_bytes: int) -> None:
    """Files over 16 MiB have a 4-byte length: still CMS (a bug once called them not_cms)."""
    oid = bytes.fromhex("06092a864886f70d010703")
    length = b"\x80" if length_bytes == 0 else bytes([0x80 | length_bytes]) + b"\x01" * length_bytes
    assert to_der(b"\x30" + length + oid + b"\xa0\x80").startswith(b"\x30")
    with pytest.raises(BatchRefused):
        to_der(b"\x30" + length + bytes.fromhex("06092a864886f70d010701") + b"\xa0\x80")
