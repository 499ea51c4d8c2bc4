"""Protection of personal data and private keys at rest.

Everything is derived (HKDF-SHA256) from the one data key in settings: an AES-256-GCM key for
personal fields and private keys, and HMAC keys for the matching hashes. A stolen database
alone therefore reveals no BSN: the hashes are keyed, the values encrypted.

Ciphertext layout: ``0x01 | key id (4) | nonce (12) | AES-GCM ciphertext+tag``. The key id
lets a previous data key (``VROEGSIGNAAL_DATA_KEY_OLD``) still decrypt during re-encryption.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x01"


class DecryptionError(Exception):
    """Stored ciphertext could not be decrypted with any configured data key."""


def _derive(master: bytes, purpose: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"vroegsignaal/{purpose}".encode()
    ).derive(master)


class _KeySet:
    def __init__(self, master: bytes) -> None:
        self.aead = AESGCM(_derive(master, "aead/v1"))
        self.key_id = _derive(master, "key-id/v1")[:4]
        self.hmac_keys = {
            name: _derive(master, f"hmac/{name}/v1") for name in ("bsn", "address", "client")
        }


class DataProtector:
    """Encrypts personal data and computes keyed hashes, from the configured data key(s)."""

    def __init__(self, data_key: bytes, old_data_key: bytes | None = None) -> None:
        self._current = _KeySet(data_key)
        self._by_id = {self._current.key_id: self._current}
        if old_data_key:
            old = _KeySet(old_data_key)
            self._by_id.setdefault(old.key_id, old)

    # -- encryption -------------------------------------------------------------------------
    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = os.urandom(12)
        keys = self._current
        return _VERSION + keys.key_id + nonce + keys.aead.encrypt(nonce, plaintext, context)

    def decrypt(self, blob: bytes, context: bytes) -> bytes:
        if len(blob) < 1 + 4 + 12 + 16 or blob[:1] != _VERSION:
            raise DecryptionError("unknown ciphertext format")
        keys = self._by_id.get(bytes(blob[1:5]))
        if keys is None:
            raise DecryptionError("ciphertext was made with a data key that is not configured")
        try:
            return keys.aead.decrypt(bytes(blob[5:17]), bytes(blob[17:]), context)
        except InvalidTag:
            raise DecryptionError("ciphertext failed authentication") from None

    def needs_reencryption(self, blob: bytes) -> bool:
        return bytes(blob[1:5]) != self._current.key_id

    def encrypt_json(self, data: dict[str, Any], context: bytes) -> bytes:
        return self.encrypt(
            json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode(), context
        )

    def decrypt_json(self, blob: bytes, context: bytes) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.decrypt(blob, context))
        return result

    # -- keyed hashes ---------------------------------------------------------------------------
    def keyed_hash(self, kind: str, value: str) -> str:
        """HMAC-SHA256 (hex) of ``value`` under the sub-key for ``kind`` (bsn, address, client)."""
        return hmac.new(self._current.hmac_keys[kind], value.encode(), hashlib.sha256).hexdigest()

    def bsn_hash(self, bsn: str) -> str:
        return self.keyed_hash("bsn", bsn)

    def address_hash(self, postcode: str, huisnummer: str, toevoeging: str | None) -> str:
        return self.keyed_hash("address", f"{postcode}|{huisnummer}|{(toevoeging or '').upper()}")


def token_hash(token: str) -> str:
    """API tokens are long random strings: a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()
