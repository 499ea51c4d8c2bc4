"""What every entry point needs at hand: settings, a session factory and the data protector."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from config import Settings, load_settings
from signals.crypto import DataProtector
from signals.db import make_engine, make_sessionmaker


@dataclass
class Runtime:
    settings: Settings
    engine: Engine

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """Sessions for units of work that write."""
        return make_sessionmaker(self.engine)

    @cached_property
    def readers(self) -> sessionmaker[Session]:
        """Sessions for units of work that only read (never wait for a writer on SQLite)."""
        return make_sessionmaker(self.engine, write=False)

    @cached_property
    def protector(self) -> DataProtector:
        return DataProtector(self.settings.data_key_bytes, self.settings.data_key_old_bytes)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Runtime:
        settings = settings or load_settings()
        return cls(settings, make_engine(settings.database_url))
