"""Signing an answer: ``Digest`` (RFC 3230) and ``nlgov-adr-payload-sig`` (a detached JWS).

The signature is a JWS in compact serialization with a detached payload (RFC 7515, appendix
F): ``BASE64URL(protected header) + ".." + BASE64URL(signature)``, PS256 (RSASSA-PSS, SHA-256,
MGF1 SHA-256, a 32-byte salt), the protected header holding ``alg``, ``kid`` (the certificate's
SHA-256 thumbprint), ``x5c`` (the chain from the PEM file, signing certificate first) and
``typ`` "JOSE". The signed payload is the body itself.

An answer can be tens of megabytes, so nothing holds it whole: :class:`SigningInput` hashes
``BASE64URL(header) "." BASE64URL(body)`` while the body is written, and the key signs that
digest (``Prehashed``). Verifiers see an ordinary detached JWS.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

ALGORITHM = "PS256"
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


class SigningUnavailable(Exception):
    """No usable signing key and certificate; the message says why (never a key)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def digest_header(sha256: bytes) -> str:
    """The ``Digest`` header value (RFC 3230) of a body whose SHA-256 is ``sha256``."""
    return "SHA-256=" + base64.b64encode(sha256).decode("ascii")


class SigningInput:
    """SHA-256 of the JWS signing input, fed with the payload in pieces of any length."""

    def __init__(self, protected: str) -> None:
        self.protected = protected
        self._hash = hashlib.sha256(protected.encode("ascii") + b".")
        self._rest = b""

    def update(self, data: bytes, /) -> None:
        data = self._rest + data
        whole = len(data) - len(data) % 3  # base64 of whole 3-byte groups has no padding
        self._hash.update(base64.urlsafe_b64encode(data[:whole]))
        self._rest = data[whole:]

    def digest(self) -> bytes:
        self._hash.update(base64.urlsafe_b64encode(self._rest).rstrip(b"="))
        self._rest = b""
        return self._hash.digest()


@dataclass(frozen=True)
class PayloadSigner:
    key: rsa.RSAPrivateKey
    chain: tuple[x509.Certificate, ...]

    @classmethod
    def from_files(
        cls, key_file: str | None, cert_file: str | None, now: dt.datetime | None = None
    ) -> PayloadSigner:
        """The key (unencrypted PEM) and certificate chain (PEM, signing certificate first);
        raises :class:`SigningUnavailable` unless they are a valid RSA pair of 2048 bits or
        more and the certificate is valid now."""
        if not key_file or not cert_file:
            raise SigningUnavailable("no signing key and certificate configured")
        try:
            key = serialization.load_pem_private_key(Path(key_file).read_bytes(), None)
            chain = tuple(x509.load_pem_x509_certificates(Path(cert_file).read_bytes()))
        except (OSError, ValueError, TypeError, UnsupportedAlgorithm):
            raise SigningUnavailable("the signing key or certificate cannot be read") from None
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
            raise SigningUnavailable("PS256 needs an RSA signing key of 2048 bits or more")
        leaf = chain[0]
        public = leaf.public_key()
        if not (
            isinstance(public, rsa.RSAPublicKey)
            and public.public_numbers() == key.public_key().public_numbers()
        ):
            raise SigningUnavailable("the signing key does not belong to the certificate")
        now = now or dt.datetime.now(dt.UTC)
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            raise SigningUnavailable("the signing certificate is not valid now")
        return cls(key, chain)

    @property
    def kid(self) -> str:
        return b64url(self.chain[0].fingerprint(hashes.SHA256()))

    def protected_header(self) -> str:
        header = {
            "alg": ALGORITHM,
            "kid": self.kid,
            "x5c": [
                base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode("ascii")
                for c in self.chain
            ],
            "typ": "JOSE",
        }
        return b64url(json.dumps(header, separators=(",", ":")).encode())

    def start(self) -> SigningInput:
        return SigningInput(self.protected_header())

    def finish(self, signing_input: SigningInput) -> str:
        """The detached JWS over everything fed to ``signing_input``."""
        signature = self.key.sign(signing_input.digest(), _PSS, utils.Prehashed(hashes.SHA256()))
        return f"{signing_input.protected}..{b64url(signature)}"
