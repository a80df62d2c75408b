"""Sign-offs: a person accepted version N of day D. Immutable records under ``OUT/dt=D/_signoff/``.

Each sign-off is its own file, ``_signoff/s=<seq>.json`` (``seq`` from 1, zero-padded), created
exclusively like a version claim (``O_EXCL`` locally, ``If-None-Match: *`` on S3): never
overwritten, never deleted. Several may exist, for the same or different versions; the one with
the highest number is in force. A version is signed off only while its files still match the
hashes its manifest records (each file is read and hashed again here).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from billing.day.publish import MANIFEST, Day
from billing.errors import BadInputError, UsageError

SIGNOFF = "_signoff"
_RECORD = re.compile(r"^s=(\d+)\.json$")


@dataclass(frozen=True)
class SignOff:
    seq: int
    date: str
    version: int
    by: str
    at: str
    note: str | None
    manifest_sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "date": self.date, "version": self.version, "by": self.by, "at": self.at,
                "note": self.note, "manifest_sha256": self.manifest_sha256}


def sign_offs(day: Day) -> list[SignOff]:
    """Every sign-off of the day, oldest first (the last one is in force)."""
    found = []
    for f in day.out.list_files(day.path(SIGNOFF)):
        m = _RECORD.match(f.path.rsplit("/", 1)[-1])
        if m:
            data = day.out.read_bytes(f.path)
            if data is None:
                continue
            d = json.loads(data)
            found.append(SignOff(int(m.group(1)), d["date"], int(d["version"]), d["by"], d["at"], d.get("note"),
                                 d["manifest_sha256"]))
    return sorted(found, key=lambda s: s.seq)


def in_force(day: Day) -> SignOff | None:
    """The latest sign-off of the day, or None when it was never signed off."""
    found = sign_offs(day)
    return found[-1] if found else None


def _sha256(day: Day, path: str) -> str:
    h = hashlib.sha256()
    with day.out.open_input(path) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify(day: Day, version: int) -> str:
    """Check that every file of committed version ``version`` still has the hash its manifest records;
    return the manifest's own SHA-256. Exit 2 (BadInputError) naming what does not match."""
    committed = [m["version"] for m in day.history()]
    if version not in committed:
        listed = ", ".join(map(str, sorted(committed))) or "none"
        raise UsageError(f"cannot sign off {day.date} version {version}: no such committed version "
                         f"(committed: {listed})")
    data = day.out.read_bytes(day.path(f"v={version}", MANIFEST))
    if data is None:
        raise BadInputError(f"cannot sign off {day.date} version {version}: its manifest is missing")
    manifest = json.loads(data)
    for name, rec in sorted(manifest.get("outputs", {}).items()):
        path = day.path(f"v={version}", name)
        if not day.out.exists(path):
            raise BadInputError(f"cannot sign off {day.date} version {version}: {day.url(f'v={version}', name)} "
                                f"is missing")
        if _sha256(day, path) != rec["sha256"]:
            raise BadInputError(f"cannot sign off {day.date} version {version}: {day.url(f'v={version}', name)} "
                                f"no longer matches its manifest")
    return hashlib.sha256(data).hexdigest()


def sign_off(day: Day, *, by: str, version: int | None = None, note: str | None = None,
             now: dt.datetime | None = None) -> SignOff:
    """Record that ``by`` accepted ``version`` (default: the current one) of the day; refused (exit 2)
    for a version that is not committed or whose files no longer match its manifest."""
    if not by.strip():
        raise UsageError("--by must name the person signing off")
    if version is None:
        version = day.current_version()
        if version is None:
            raise UsageError(f"cannot sign off {day.date}: no committed version under {day.out.uri}")
    manifest_sha = verify(day, version)
    at = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    seq = max([s.seq for s in sign_offs(day)], default=0) + 1
    while True:
        record = SignOff(seq, day.date.isoformat(), version, by, at, note or None, manifest_sha)
        body = (json.dumps(record.as_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        if day.out.create_exclusive(day.path(SIGNOFF, f"s={seq:06d}.json"), body):
            return record
        seq += 1  # another sign-off took this number meanwhile: never overwrite it
