"""Reading a day version's files for the month only after checking them against the version's manifest.

``billing month`` and ``billing adjustments`` add up figures from published day versions; a file
rewritten after its version was committed (valid Parquet with other numbers, an edited summary.json)
would silently change the money. Each file read is hashed (SHA-256) and compared with the hash the
version's manifest records, as sign-off does; a mismatch stops the command (exit 2) naming the day and
the file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from billing.day.publish import MANIFEST, Day
from billing.errors import BadInputError


def sha256_of(day: Day, path: str) -> str:
    h = hashlib.sha256()
    with day.out.open_input(path) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def manifest_of(day: Day, version: int, doing: str = "") -> tuple[dict[str, Any], bytes]:
    """The version's manifest (parsed) and its bytes; exit 2 when it is missing or unreadable. ``doing``
    opens each message (``"cannot sign off "``)."""
    where = f"{doing}{day.date} version {version}"
    data = day.out.read_bytes(day.path(f"v={version}", MANIFEST))
    if data is None:
        raise BadInputError(f"{where}: {day.url(f'v={version}', MANIFEST)} is missing")
    try:
        manifest = json.loads(data)
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        raise BadInputError(f"{where}: {day.url(f'v={version}', MANIFEST)} is not a readable manifest ({e})") from None
    return manifest, data


def checked(day: Day, version: int, *names: str) -> dict[str, Any]:
    """Check that each named file of the version still has the SHA-256 its manifest records; return the
    manifest. Exit 2 (BadInputError), one line naming the day and the file, otherwise."""
    manifest, _ = manifest_of(day, version)
    check_files(day, version, manifest, names)
    return manifest


def check_files(day: Day, version: int, manifest: dict[str, Any], names: Iterable[str], doing: str = "") -> None:
    """Each named file of the version exists and has the SHA-256 ``manifest`` records for it (exit 2 naming the
    first that does not; ``doing`` opens the message)."""
    outputs = manifest.get("outputs", {})
    for name in names:
        url = f"{doing}{day.date} version {version}: {day.url(f'v={version}', name)}"
        rec = outputs.get(name)
        if not isinstance(rec, dict) or "sha256" not in rec:
            raise BadInputError(f"{url} is not listed in its manifest")
        path = day.path(f"v={version}", name)
        if not day.out.exists(path):
            raise BadInputError(f"{url} is missing")
        if sha256_of(day, path) != rec["sha256"]:
            raise BadInputError(f"{url} no longer matches its manifest (changed after it was published)")
