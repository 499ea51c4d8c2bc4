"""``python -m tests.pausable ARGS``: the ``vroegsignaal`` command with a pause point.

Tests that kill a process at a moment they choose run the real command through this module.
It stops the process at a point named by the environment, writes its pid to
``PAUSE_MARKER`` and sleeps until it is killed:

- ``PAUSE_INSERT_TABLE=T``, ``PAUSE_AFTER=N``: after the N-th INSERT into table T (its
  rows sent to the database, the transaction still open);
- ``PAUSE_EXPORT_BYTES=N``: once a DDAS export has written N bytes of its document (what
  reached its file flushed; a sealed export keeps up to a frame in memory).

Nothing in the application knows about this: the hooks are SQLAlchemy events and a wrapper
installed here, in the test's own process.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any


def _pause() -> None:
    Path(os.environ["PAUSE_MARKER"]).write_text(str(os.getpid()))
    while True:
        time.sleep(60)


def _install() -> None:
    table = os.environ.get("PAUSE_INSERT_TABLE")
    if table:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        pattern = re.compile(rf'\s*INSERT INTO "?{re.escape(table)}"?[\s(]', re.IGNORECASE)
        after = int(os.environ.get("PAUSE_AFTER", "1"))
        seen = [0]

        @event.listens_for(Engine, "after_cursor_execute")
        def _inserted(*args: Any) -> None:
            if pattern.match(args[2]):
                seen[0] += 1
                if seen[0] >= after:
                    _pause()

    limit = os.environ.get("PAUSE_EXPORT_BYTES")
    if limit:
        from outreach import ddas

        original = ddas.Writer.write
        written = [0]

        def write(self: Any, text: str) -> None:
            original(self, text)
            written[0] += len(text)
            if written[0] >= int(limit):
                handle = getattr(self.handle, "handle", self.handle)  # a SealedFile's file
                handle.flush()
                os.fsync(handle.fileno())
                _pause()

        ddas.Writer.write = write  # type: ignore[method-assign]


if __name__ == "__main__":
    _install()
    from webapp.cli import main

    sys.argv = ["vroegsignaal", *sys.argv[1:]]
    main()
