"""Fetch axe-core from the npm registry into ``.cache/`` (no CDN at test time).

    python tests/browser/fetch_axe.py        # make test runs it; a second run does nothing

The tarball is checked against the registry's published SHA-512 integrity before anything
is unpacked; the browser tests load ``axe.min.js`` from the file.
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

VERSION = "4.11.0"
TARBALL = f"https://registry.npmjs.org/axe-core/-/axe-core-{VERSION}.tgz"
INTEGRITY = (  # `npm view axe-core@4.11.0 dist.integrity`
    "sha512-ilYanEU8vxxBexpJd8cWM4ElSQq4QctCLKih0TSfjIfCQTeyH/6zVrmIJfLPrKTKJRbiG+cfnZbQIjAlJmF1jQ=="
)
TARGET = Path(__file__).resolve().parents[2] / ".cache" / f"axe-core-{VERSION}" / "axe.min.js"


def fetch() -> Path:
    if TARGET.exists():
        return TARGET
    with urllib.request.urlopen(TARBALL, timeout=60) as response:
        data = response.read()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != INTEGRITY:
        raise SystemExit(f"axe-core {VERSION}: the tarball does not match its npm integrity")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        member = archive.extractfile("package/axe.min.js")
        if member is None:
            raise SystemExit("axe-core tarball without package/axe.min.js")
        source = member.read()
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.with_suffix(".tmp").write_bytes(source)
    TARGET.with_suffix(".tmp").replace(TARGET)
    return TARGET


if __name__ == "__main__":
    print(fetch(), file=sys.stderr)
