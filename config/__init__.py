"""Settings: environment variables (``VROEGSIGNAAL_*``) and an optional TOML file.

One typed, validated object. No secret has a default: a missing or malformed secret stops
start-up with a one-line message naming the variable.
"""

from __future__ import annotations

import base64
import binascii
import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

PREFIX = "VROEGSIGNAAL_"


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable, never its value."""


def _decode_key(value: str, name: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{name} is not valid base64") from None
    if len(raw) != 32:
        raise ValueError(f"{name} must be 32 bytes, base64-encoded")
    return raw


class Settings(BaseSettings):
    """The whole configuration of one Vroegsignaal installation."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, extra="ignore", case_sensitive=False, frozen=True
    )

    database_url: str = "sqlite:///instance/vroegsignaal.db"
    secret_key: str = Field(min_length=16)
    data_key: str
    data_key_old: str | None = None

    #: Largest accepted batch file (the ``.p7m``), in bytes.
    max_batch_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    #: Longest accepted value of one field, in characters.
    max_field_chars: int = Field(default=500, gt=0)
    #: A batch left in ``processing`` longer than this is taken up again (its worker died).
    batch_lease_seconds: int = Field(default=900, ge=1)
    #: Folder with one sub-folder per partner id (``inbox/<partner>/NAME.p7m`` + ``.sig``).
    inbox_dir: str = "instance/inbox"
    #: Folder of model artifacts (``<version>/model.skops`` + ``model.json``).
    models_dir: str = "instance/models"
    inbox_poll_seconds: int = Field(default=60, gt=0)
    #: How long a ``.p7m`` in the inbox may wait for its ``.sig`` before it is refused.
    inbox_signature_wait_seconds: int = Field(default=3600, ge=0)
    ingest_poll_seconds: int = Field(default=10, gt=0)
    scoring_poll_seconds: int = Field(default=60, gt=0)
    #: Rows written per database round trip during ingest.
    ingest_chunk_rows: int = Field(default=2000, gt=0)
    #: A batch whose processing failed unexpectedly this often is refused (processing_error).
    batch_max_attempts: int = Field(default=3, ge=1)
    #: Outreach: signals are bundled per household per calendar "month" or ISO "week".
    matching_period: Literal["month", "week"] = "month"
    #: An earlier signal within this many months makes a case *opeenvolgend*.
    repeat_lookback_months: int = Field(default=6, ge=1, le=24)
    #: First attempt due within this many working days: high priority, the rest, and a
    #: threatening situation (eviction date near, end of supply, crisis).
    first_attempt_working_days_high: int = Field(default=7, ge=1)
    first_attempt_working_days: int = Field(default=14, ge=1)
    first_attempt_working_days_threat: int = Field(default=3, ge=1)
    #: First conversation due after a request for help (4 weeks = 20 working days).
    help_request_working_days: int = Field(default=20, ge=1)
    #: An announced eviction within this many days is a threatening situation.
    eviction_threat_days: int = Field(default=60, ge=1)
    #: Open cases one counsellor can carry (the queue shows who is full).
    counsellor_capacity: int = Field(default=25, ge=1)
    matching_poll_seconds: int = Field(default=120, gt=0)
    #: When (Europe/Amsterdam, HH:MM) counsellors get their daily reminder e-mail.
    reminder_time: str = Field(default="07:30", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    #: Letters, cards and e-mails to residents: the phone number they may call, and a folder
    #: whose ``brief.txt``, ``kaartje.txt`` or ``email.txt`` replace the built-in templates.
    outreach_phone: str = "14 + het netnummer van de gemeente"
    letter_templates_dir: str | None = None
    #: E-mail to residents goes out through this SMTP server.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    smtp_starttls: bool = True
    smtp_username: str | None = None
    smtp_password: str | None = None
    mail_from: str = "vroegsignalering@gemeente.example"
    #: Inhabitants per municipality (CBS code), for signals per 1,000 inhabitants.
    population: dict[str, int] = Field(default_factory=dict)
    #: The DDAS delivery: the delivering organisation and its contact person (an export is
    #: refused without the contact e-mail), and the period of the scheduled delivery.
    ddas_organisation_name: str | None = None
    ddas_kvk: str | None = None
    ddas_contact_name: str | None = None
    ddas_contact_email: str | None = None
    ddas_contact_phone: str | None = None
    ddas_contact_function: str | None = None
    ddas_period: Literal["month", "quarter", "half-year"] = "quarter"
    ddas_dir: str = "instance/ddas"
    #: Exports asked for on the DDAS page are made by the scheduler (``make_ddas_exports``,
    #: every ``ddas_export_poll_seconds``) into this private folder, encrypted with the data
    #: key, and removed ``ddas_export_keep_hours`` after they are ready (or when the admin
    #: removes them). An export whose maker died is taken up again, at most
    #: ``ddas_export_max_attempts`` times.
    ddas_exports_dir: str = "instance/ddas-exports"
    ddas_export_poll_seconds: int = Field(default=5, gt=0)
    ddas_export_keep_hours: int = Field(default=24, ge=1)
    ddas_export_max_attempts: int = Field(default=3, ge=1)
    #: When (Europe/Amsterdam) the daily job checks for a period to deliver.
    ddas_delivery_time: str = Field(default="06:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    #: The DDAS pull API for CBS (``POST /gegevens``, DDAS-VS.yaml): the OAuth2 client
    #: credentials CBS uses, and the PS256 key and PKIoverheid certificate chain (PEM files)
    #: that sign each answer (nlgov-adr-payload-sig). Without a client id the API is off.
    cbs_client_id: str | None = None
    cbs_client_secret: str | None = None
    cbs_signing_key: str | None = None
    cbs_signing_cert: str | None = None
    cbs_page_size: int = Field(default=50_000, gt=0, le=50_000)
    cbs_token_minutes: int = Field(default=60, gt=0, le=24 * 60)
    #: Centrumgemeente regions for the dashboard: region name -> CBS codes of its members.
    regions: dict[str, list[str]] = Field(default_factory=dict)
    #: Access: failed log-ins in a row before a temporary lock-out, and its length; an idle
    #: session ends after ``session_idle_minutes``; rate limits (Flask-Limiter notation) for
    #: log-in, token and upload endpoints.
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_minutes: int = Field(default=15, ge=1)
    session_idle_minutes: int = Field(default=30, ge=1)
    rate_limit_login: str = "10 per minute"
    rate_limit_token: str = "20 per minute"  # noqa: S105 - a rate, not a secret
    rate_limit_upload: str = "60 per minute"
    #: Where the rate limits count: "memory://" counts per process; several web workers
    #: share counts through e.g. "redis://host:6379" (limits' storage URI notation).
    rate_limit_storage_uri: str = "memory://"
    #: Always send the session cookie with Secure (it is Secure anyway over TLS).
    session_cookie_secure: bool = False
    #: Reverse proxies in front of the app whose X-Forwarded-For/-Proto/-Host are trusted
    #: (0: none, the default; 1 behind one nginx). Needed for HSTS, Secure cookies and per-
    #: client rate limits behind a proxy.
    proxy_count: int = Field(default=0, ge=0, le=5)
    #: The bearer token Prometheus sends to scrape ``/metrics`` (at least 32 characters);
    #: without one the endpoint does not exist (404).
    metrics_token: str | None = Field(default=None, min_length=32)
    #: Roles that must log in with a second factor (TOTP).
    totp_roles: list[str] = Field(default_factory=lambda: ["admin", "counsellor"])
    #: Retention (DOMAIN.md): signals and cases without accepted help are deleted this many
    #: months after the case closed (or the signal arrived, without a case); cases with
    #: accepted help after their own term.
    retention_months: int = Field(default=6, ge=1)
    retention_accepted_months: int = Field(default=36, ge=1)
    #: When (Europe/Amsterdam) the daily retention job runs.
    retention_time: str = Field(default="02:30", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    #: Resident check through the Haal Centraal BRP API Personen (else an imported extract).
    brp_api_url: str | None = None
    brp_api_key: str | None = None
    #: Client certificate and key (PEM files) for mutual TLS, and the CA bundle to trust.
    brp_client_cert: str | None = None
    brp_client_key: str | None = None
    brp_ca_bundle: str | None = None

    @field_validator("data_key")
    @classmethod
    def _check_data_key(cls, value: str) -> str:
        _decode_key(value, f"{PREFIX}DATA_KEY")
        return value

    @field_validator("data_key_old")
    @classmethod
    def _check_data_key_old(cls, value: str | None) -> str | None:
        if value:
            _decode_key(value, f"{PREFIX}DATA_KEY_OLD")
        return value or None

    @cached_property
    def data_key_bytes(self) -> bytes:
        return _decode_key(self.data_key, f"{PREFIX}DATA_KEY")

    @cached_property
    def data_key_old_bytes(self) -> bytes | None:
        if not self.data_key_old:
            return None
        return _decode_key(self.data_key_old, f"{PREFIX}DATA_KEY_OLD")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = os.environ.get(f"{PREFIX}CONFIG")
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_file)))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings; raise :class:`ConfigError` with a one-line reason."""
    toml_file = os.environ.get(f"{PREFIX}CONFIG")
    if toml_file and not Path(toml_file).is_file():
        raise ConfigError(f"{PREFIX}CONFIG names a file that does not exist")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = f"{PREFIX}{str(first['loc'][0]).upper()}" if first["loc"] else PREFIX + "*"
        if first["type"] == "missing":
            raise ConfigError(f"{name} is required but not set") from None
        reason = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        if not reason.startswith(PREFIX):
            reason = f"{name} is invalid: {reason}"
        raise ConfigError(reason) from None
