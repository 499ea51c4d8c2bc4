"""Factories for test data: keys (made once per run), municipalities, partners, batches."""

from __future__ import annotations

import datetime as dt
import functools
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pyotp
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from signals.db import unit_of_work
from signals.enums import PartnerType, Role
from signals.envelope import PrivateKey, new_recipient_key
from signals.rules import today_nl
from signals.runtime import Runtime
from signals.service import NewUser, add_municipality, add_partner, add_recipient_key, add_user
from signals.synthetic import Population, signal_rows, to_csv

TODAY = today_nl()


@dataclass(frozen=True)
class KeyRing:
    recipient_cert: x509.Certificate
    recipient_key: rsa.RSAPrivateKey
    other_cert: x509.Certificate
    other_key: rsa.RSAPrivateKey
    partner: dict[str, PrivateKey]


@functools.cache
def key_ring() -> KeyRing:
    cert, key = new_recipient_key("Test 0344")
    other_cert, other_key = new_recipient_key("Someone else")
    return KeyRing(
        cert,
        key,
        other_cert,
        other_key,
        {
            "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "rsa2": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec": ec.generate_private_key(ec.SECP256R1()),
            "ed25519": ed25519.Ed25519PrivateKey.generate(),
        },
    )


def pem_private(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def pem_public(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass
class World:
    runtime: Runtime
    keys: KeyRing
    dir: Path
    municipality_id: int
    partner_id: str
    token: str
    files: dict[str, Path] = field(default_factory=dict)

    def receive(self, path: Path, sig: Path) -> str:
        """Receive a batch as the API does (stored, not yet processed); its id."""
        from signals.enums import BatchSource
        from signals.ingest import receive_batch
        from signals.models import Partner

        with unit_of_work(self.runtime.sessions) as session:
            partner = session.get(Partner, self.partner_id)
            assert partner is not None
            return receive_batch(
                session,
                self.runtime.settings,
                partner=partner,
                ciphertext=path.read_bytes(),
                signature=sig.read_bytes(),
                source=BatchSource.API,
            ).batch.id

    def ingest(
        self,
        content: bytes | list[dict[str, str]],
        name: str = "batch.csv.p7m",
        partner: str | None = None,
        key: str = "rsa",
    ) -> dict[str, Any]:
        """Pack rows (or CSV bytes) with openssl and ingest them as ``vroegsignaal ingest``
        does; the batch must be processed without a refused row. Returns the report."""
        from signals.enums import BatchSource
        from signals.jobs import ingest_file

        data = content if isinstance(content, bytes) else csv_bytes(content)
        path, sig = openssl_batch(self, data, name=name, key=key)
        report = ingest_file(
            self.runtime, partner or self.partner_id, path, sig, BatchSource.CLI
        ).report
        assert report["status"] == "processed" and report["rows_rejected"] == 0, report
        return report

    def add_partner(
        self, name: str, partner_type: PartnerType = PartnerType.HUUR, key: str = "rsa2"
    ) -> tuple[str, str]:
        with unit_of_work(self.runtime.sessions) as session:
            from signals.models import Municipality

            municipality = session.get(Municipality, self.municipality_id)
            assert municipality is not None
            created = add_partner(
                session, name, partner_type, [municipality], pem_public(self.keys.partner[key])
            )
            return created.partner.id, created.token


def make_world(runtime: Runtime, keys: KeyRing, tmp: Path) -> World:
    with unit_of_work(runtime.sessions) as session:
        municipality = add_municipality(session, "0344", "Utrecht")
        add_recipient_key(
            session, runtime.protector, municipality, keys.recipient_cert, keys.recipient_key
        )
        created = add_partner(
            session,
            "Woonstichting Test",
            PartnerType.HUUR,
            [municipality],
            pem_public(keys.partner["rsa"]),
        )
        world = World(runtime, keys, tmp, municipality.id, created.partner.id, created.token)
    files = world.files
    files["recipient.pem"] = tmp / "recipient.pem"
    files["recipient.pem"].write_bytes(keys.recipient_cert.public_bytes(serialization.Encoding.PEM))
    files["other.pem"] = tmp / "other.pem"
    files["other.pem"].write_bytes(keys.other_cert.public_bytes(serialization.Encoding.PEM))
    for name, key in keys.partner.items():
        files[f"{name}.key"] = tmp / f"{name}.key"
        files[f"{name}.key"].write_bytes(pem_private(key))
    return world


# -- batch content -----------------------------------------------------------------------------
def row(**overrides: str) -> dict[str, str]:
    """One valid row; override any column."""
    base = {
        "signaal_id": "S-1",
        "signaaldatum": (TODAY - dt.timedelta(days=2)).isoformat(),
        "ontstaansdatum": (TODAY - dt.timedelta(days=70)).isoformat(),
        "bedrag": "1450,75",
        "maandbedrag": "725.00",
        "bsn": "111222333",
        "voorletters": "J.",
        "tussenvoegsel": "de",
        "achternaam": "Vries",
        "geboortedatum": "1990-04-12",
        "geslacht": "V",
        "straat": "Oudegracht",
        "huisnummer": "12",
        "postcode": "3511 ab",
        "woonplaats": "Utrecht",
    }
    base.update(overrides)
    return base


def csv_bytes(rows: list[dict[str, str]], delimiter: str = ";", bom: bool = False) -> bytes:
    columns = list(dict.fromkeys(c for r in rows for c in r))
    lines = [delimiter.join(columns)]
    lines += [delimiter.join(r.get(c, "") for c in columns) for r in rows]
    data = ("\n".join(lines) + "\n").encode()
    return (b"\xef\xbb\xbf" + data) if bom else data


def synthetic_csv(count: int, seed: int = 7, prefix: str = "SYN") -> bytes:
    population = Population(max(50, count // 2), seed=seed)
    rows = signal_rows(
        population,
        PartnerType.HUUR,
        count,
        TODAY - dt.timedelta(days=20),
        TODAY - dt.timedelta(days=1),
        seed=seed,
        id_prefix=prefix,
    )
    return to_csv(rows)


# -- openssl, as a partner would use it -------------------------------------------------------
def openssl_encrypt(
    plaintext: bytes, *recipients: Path, pem: bool = False, options: tuple[str, ...] = ()
) -> bytes:
    """``openssl cms -encrypt -aes256 -binary``, the plaintext on stdin (never on disk)."""
    command = [
        "openssl",
        "cms",
        "-encrypt",
        "-aes256",
        "-binary",
        "-outform",
        "PEM" if pem else "DER",
        *options,
        *map(str, recipients),
    ]
    return subprocess.run(command, input=plaintext, capture_output=True, check=True).stdout


def openssl_sign(path: Path, key_file: Path, kind: str = "rsa") -> Path:
    """Detached signature over the file, written beside it as ``.sig``."""
    signature = path.with_name(path.name + ".sig")
    if kind == "ed25519":
        command = [
            "openssl",
            "pkeyutl",
            "-sign",
            "-rawin",
            "-inkey",
            str(key_file),
            "-in",
            str(path),
            "-out",
            str(signature),
        ]
    else:
        command = ["openssl", "dgst", "-sha256", "-sign", str(key_file)]
        if kind == "pss":
            command += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]
        command += ["-out", str(signature), str(path)]
    subprocess.run(command, capture_output=True, check=True)
    return signature


def openssl_batch(
    world: World,
    plaintext: bytes,
    name: str = "batch.csv.p7m",
    key: str = "rsa",
    recipient: str = "recipient.pem",
    pem: bool = False,
    kind: str | None = None,
) -> tuple[Path, Path]:
    path = world.dir / name
    path.write_bytes(openssl_encrypt(plaintext, world.files[recipient], pem=pem))
    signer = kind or ("ed25519" if key == "ed25519" else "rsa")
    return path, openssl_sign(path, world.files[f"{key}.key"], signer)


# -- logging in through the pages --------------------------------------------------------------
_CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')
_SHOWN_SECRET = re.compile(r'id="totp-secret">([A-Z2-7 ]+)<')
_used_steps: dict[str, int] = {}


def csrf_token(page: str) -> str:
    """The CSRF token of the (first) form on a page."""
    match = _CSRF.search(page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def totp_code(secret: str) -> str:
    """A valid code for ``secret`` that this run has not used yet. A used time step is
    refused as a replay, so a second log-in within 30 seconds takes the next step (the
    server accepts one step either side of now); a third waits for the clock. Never the
    previous step: the server's "now" may already be one step later."""
    totp = pyotp.TOTP(secret)
    now = totp.timecode(dt.datetime.now(dt.UTC))
    step = max(now, _used_steps.get(secret, now - 1) + 1)
    if step > now + 1:
        time.sleep(max(0.0, (step - 1) * totp.interval - time.time()) + 0.05)
    _used_steps[secret] = step
    return totp.generate_otp(step)


def login(
    client: Any,
    email: str,
    password: str,
    totp_secret: str | None = None,
    *,
    next: str | None = None,
    check: bool = True,
) -> Any:
    """Log in through the pages as a person does (CONTRACT §5): ``POST /login``, then for
    the roles with a second factor ``POST /login/totp`` with a code of ``totp_secret`` (the
    secret ``add_user`` returned; without one, the secret the enrolment page shows). The
    first log-in enrols and answers with the recovery codes page. Returns the last response;
    with ``check`` it must have succeeded."""
    page = client.get("/login").get_data(as_text=True)
    response = client.post(
        "/login" + (f"?{urlencode({'next': next})}" if next else ""),
        data={"email": email, "password": password, "csrf_token": csrf_token(page)},
    )
    if response.status_code == 302 and response.headers["Location"].endswith("/login/totp"):
        page = client.get("/login/totp").get_data(as_text=True)
        if totp_secret is None:
            shown = _SHOWN_SECRET.search(page)
            assert shown, "no secret given and none shown: the user is enrolled already"
            totp_secret = shown.group(1).replace(" ", "")
        response = client.post(
            "/login/totp", data={"code": totp_code(totp_secret), "csrf_token": csrf_token(page)}
        )
    if check:
        enrolled = response.status_code == 200 and "herstelcodes" in response.get_data(as_text=True)
        assert enrolled or response.status_code == 302, f"log-in failed ({response.status_code})"
        assert not response.headers.get("Location", "").endswith("/login")
    return response


def add_staff(
    runtime: Runtime,
    email: str,
    role: Role,
    municipality_ids: list[int],
    extra_roles: tuple[Role, ...] = (),
) -> NewUser:
    """Add a user as ``vroegsignaal user add`` does: with a second-factor secret for the roles
    that need one."""
    from signals.models import Municipality

    with unit_of_work(runtime.sessions) as session:
        places = [session.get(Municipality, i) for i in municipality_ids]
        return add_user(
            session,
            email,
            role,
            [m for m in places if m is not None],
            extra_roles=extra_roles,
            protector=runtime.protector,
            totp_roles=runtime.settings.totp_roles,
        )


def login_as(
    client: Any, world: World, role: Role, email: str, extra_roles: tuple[Role, ...] = ()
) -> NewUser:
    """Add a user of ``role`` in the world's municipality and log in as that user."""
    created = add_staff(world.runtime, email, role, [world.municipality_id], extra_roles)
    login(client, email, created.password, created.totp_secret)
    return created
