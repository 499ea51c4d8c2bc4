"""The batch envelope of CONTRACT §3.1: a detached signature over a CMS EnvelopedData file.

The signature is checked against the partner's registered keys *before* anything is
decrypted. Decryption uses ``cryptography``'s CMS support; the plaintext stays in memory.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from signals.cms import decrypt_stream
from signals.enums import BatchCode
from signals.errors import BatchRefused, KeyFormatError

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

# DER of OBJECT IDENTIFIER 1.2.840.113549.1.7.3 (pkcs7-envelopedData)
_ENVELOPED_DATA_OID = bytes.fromhex("06092a864886f70d010703")
_PEM_LABELS = (b"CMS", b"PKCS7")


@dataclass(frozen=True)
class LoadedPublicKey:
    key: PublicKey
    key_type: str
    fingerprint: str
    pem: str
    valid_from: dt.datetime | None
    valid_until: dt.datetime | None


def _fingerprint(key: PublicKey) -> str:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def _key_type(key: object) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise KeyFormatError("RSA keys must have at least 2048 bits")
        return "rsa"
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise KeyFormatError("only the P-256 curve is supported for ECDSA")
        return "ec-p256"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    raise KeyFormatError("unsupported key type: use RSA, ECDSA P-256 or Ed25519")


def load_public_key(data: bytes) -> LoadedPublicKey:
    """Read a partner key given as an X.509 certificate (PEM or DER) or a PEM public key."""
    valid_from = valid_until = None
    key: object
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            cert = x509.load_pem_x509_certificate(data)
        elif b"-----BEGIN" in data:
            cert = None
        else:
            cert = x509.load_der_x509_certificate(data)
        if cert is not None:
            key = cert.public_key()
            valid_from, valid_until = cert.not_valid_before_utc, cert.not_valid_after_utc
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFormatError("not a PEM public key or an X.509 certificate") from None
    key_type = _key_type(key)
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey)
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return LoadedPublicKey(key, key_type, _fingerprint(key), pem, valid_from, valid_until)


def verify_signature(data: bytes, signature: bytes, public_keys: Iterable[PublicKey]) -> bool:
    """True when ``signature`` over ``data`` verifies with one of the keys."""
    return verify_detached(io.BytesIO(data), signature, public_keys)


def verify_detached(source: BinaryIO, signature: bytes, public_keys: Iterable[PublicKey]) -> bool:
    """True when ``signature`` over the bytes of ``source`` verifies with one of the keys.

    RSA (PKCS#1 v1.5 or PSS) and ECDSA P-256 check a SHA-256 digest taken piece by piece,
    so a large file is never held in memory; Ed25519 signs the message itself and reads it
    whole (bounded by the batch size limit).
    """
    if not signature:
        return False
    keys = list(public_keys)
    source.seek(0)
    hasher = hashes.Hash(hashes.SHA256())
    while piece := source.read(1 << 20):
        hasher.update(piece)
    digest = hasher.finalize()
    prehashed = utils.Prehashed(hashes.SHA256())
    for key in keys:
        try:
            if isinstance(key, rsa.RSAPublicKey):
                try:
                    key.verify(signature, digest, padding.PKCS1v15(), prehashed)
                except InvalidSignature:
                    pss = padding.PSS(
                        mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO
                    )
                    key.verify(signature, digest, pss, prehashed)
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, digest, ec.ECDSA(prehashed))
            else:
                source.seek(0)
                key.verify(signature, source.read())
        except (InvalidSignature, ValueError):
            continue
        return True
    return False


def to_der(data: bytes) -> bytes:
    """The DER bytes of a CMS file given as DER or as PEM (``CMS`` or ``PKCS7`` label).

    Raises ``not_cms`` when the bytes are no CMS EnvelopedData at all.
    """
    stripped = data.lstrip()
    if stripped.startswith(b"-----BEGIN "):
        label = stripped[11 : stripped.find(b"-----", 11)]
        if label not in _PEM_LABELS:
            raise BatchRefused(BatchCode.NOT_CMS, "PEM input must be labelled CMS or PKCS7")
        end = stripped.find(b"-----END ")
        if end < 0:
            raise BatchRefused(BatchCode.NOT_CMS, "PEM input has no END line")
        body = stripped[stripped.find(b"\n") + 1 : end]
        try:
            data = base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            raise BatchRefused(BatchCode.NOT_CMS, "PEM body is not base64") from None
    # A ContentInfo is a SEQUENCE whose first element is the content type OID.
    if not _starts_as_enveloped_data(data):
        raise BatchRefused(BatchCode.NOT_CMS, "the file is not CMS EnvelopedData")
    return data


def _starts_as_enveloped_data(data: bytes) -> bool:
    if len(data) < 2 or data[0] != 0x30:
        return False
    first = data[1]
    offset = 2 if first <= 0x80 else 2 + (first & 0x7F)  # short, indefinite or long form
    return data[offset : offset + len(_ENVELOPED_DATA_OID)] == _ENVELOPED_DATA_OID


def decrypt(der: bytes, recipients: Iterable[tuple[x509.Certificate, rsa.RSAPrivateKey]]) -> bytes:
    """Decrypt a whole CMS EnvelopedData file in memory (small files; batches stream)."""
    return b"".join(decrypt_stream([der], recipients))


def sign(data: bytes, private_key: PrivateKey) -> bytes:
    """Detached signature as ``openssl dgst -sha256 -sign`` writes it (Ed25519: pure)."""
    if isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return private_key.sign(data, ec.ECDSA(hashes.SHA256()))
    return private_key.sign(data)


def encrypt(plaintext: bytes, recipient: x509.Certificate) -> bytes:
    """CMS EnvelopedData, DER, AES-256-CBC, RSA PKCS#1 v1.5 key transport.

    The same structure as ``openssl cms -encrypt -aes256 -binary -outform DER``.
    """
    builder = (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(plaintext)
        .add_recipient(recipient)
        .set_content_encryption_algorithm(algorithms.AES256)
    )
    return builder.encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])


def pack(
    plaintext: bytes, recipient: x509.Certificate, private_key: PrivateKey
) -> tuple[bytes, bytes]:
    """What a partner sends: the encrypted file and the signature over its bytes."""
    p7m = encrypt(plaintext, recipient)
    return p7m, sign(p7m, private_key)


def load_private_key(data: bytes, password: bytes | None = None) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyFormatError("not a readable PEM private key") from None
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise KeyFormatError("unsupported private key type")
    return key


def load_certificate(data: bytes) -> x509.Certificate:
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise KeyFormatError("not an X.509 certificate") from None


def new_recipient_key(
    common_name: str, valid_days: int = 825
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A fresh RSA-3072 key and a self-signed certificate for partners to encrypt to."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "NL"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vroegsignaal"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def certificate_fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()
