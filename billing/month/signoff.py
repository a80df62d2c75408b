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
import unicodedata
from dataclasses import dataclass
from typing import Any

from billing.day.publish import MANIFEST, Day
from billing.errors import BadInputError, UsageError
from billing.month.verified import check_files, manifest_of

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


def _records(day: Day) -> list[tuple[int, str]]:
    """(seq, path) of every sign-off file of the day, oldest first."""
    found = []
    for f in day.out.list_files(day.path(SIGNOFF)):
        m = _RECORD.match(f.path.rsplit("/", 1)[-1])
        if m:
            found.append((int(m.group(1)), f.path))
    return sorted(found)


def _parse(day: Day, seq: int, path: str, data: bytes) -> SignOff:
    try:
        d = json.loads(data)
        note = d.get("note")
        record = SignOff(seq, str(d["date"]), int(d["version"]), str(d["by"]), str(d["at"]),
                         None if note is None else str(note), str(d["manifest_sha256"]))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        what = f"missing {e}" if isinstance(e, KeyError) else str(e).splitlines()[0]
        raise BadInputError(f"{day.out.url(path)}: not a readable sign-off record ({what})") from None
    if record.date != day.date.isoformat():
        raise BadInputError(f"{day.out.url(path)}: a sign-off of {record.date} under the folder of {day.date}")
    return record


def _check(day: Day, path: str, record: SignOff, hashes: dict[int, str | None]) -> None:
    """The recorded manifest_sha256 must be the hash of the manifest of the version it names."""
    if record.version not in hashes:
        data = day.out.read_bytes(day.path(f"v={record.version}", MANIFEST))
        hashes[record.version] = None if data is None else hashlib.sha256(data).hexdigest()
    actual = hashes[record.version]
    if actual is None:
        raise BadInputError(f"{day.out.url(path)}: names version {record.version} of {day.date}, which has no "
                            f"manifest (not a committed version)")
    if actual != record.manifest_sha256:
        raise BadInputError(f"{day.out.url(path)}: its manifest_sha256 does not match the manifest of version "
                            f"{record.version} of {day.date} (the sign-off or the manifest was edited)")


def sign_offs(day: Day) -> list[SignOff]:
    """Every sign-off of the day, oldest first (the last one is in force). Exit 2 naming the file for a
    record that cannot be read or whose manifest_sha256 is not that of the version it names."""
    found = []
    hashes: dict[int, str | None] = {}
    for seq, path in _records(day):
        data = day.out.read_bytes(path)
        if data is None:
            continue
        record = _parse(day, seq, path, data)
        _check(day, path, record, hashes)
        found.append(record)
    return found


def in_force(day: Day) -> SignOff | None:
    """The latest sign-off of the day, or None when it was never signed off."""
    found = sign_offs(day)
    return found[-1] if found else None


def verify(day: Day, version: int) -> str:
    """Check that every file of committed version ``version`` still has the hash its manifest records;
    return the manifest's own SHA-256. Exit 2 (BadInputError) naming what does not match."""
    committed = [m["version"] for m in day.history()]
    if version not in committed:
        listed = ", ".join(map(str, sorted(committed))) or "none"
        raise UsageError(f"cannot sign off {day.date} version {version}: no such committed version "
                         f"(committed: {listed})")
    manifest, data = manifest_of(day, version, "cannot sign off ")
    check_files(day, version, manifest, sorted(manifest.get("outputs", {})), "cannot sign off ")
    return hashlib.sha256(data).hexdigest()


def sign_off(day: Day, *, by: str, version: int | None = None, note: str | None = None,
             now: dt.datetime | None = None) -> SignOff:
    """Record that ``by`` accepted ``version`` (default: the current one) of the day; refused (exit 2)
    for a version that is not committed or whose files no longer match its manifest."""
    if not by.strip():
        raise UsageError("--by must name the person signing off")
    for option, value in (("--by", by), ("--note", note or "")):
        if any(unicodedata.category(c) == "Cc" for c in value):
            raise UsageError(f"{option} must not contain control characters (newlines, tabs, escapes): {value!r}")
    if version is None:
        version = day.current_version()
        if version is None:
            raise UsageError(f"cannot sign off {day.date}: no committed version under {day.out.uri}")
    manifest_sha = verify(day, version)
    at = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    seq = max([seq for seq, _ in _records(day)], default=0) + 1
    while True:
        record = SignOff(seq, day.date.isoformat(), version, by, at, note or None, manifest_sha)
        body = (json.dumps(record.as_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        if day.out.create_exclusive(day.path(SIGNOFF, f"s={seq:06d}.json"), body):
            return record
        seq += 1  # another sign-off took this number meanwhile: never overwrite it
