"""Versions, locks and commits: only committed versions are readable, committed versions never
change, the lock is kept alive by a heartbeat and the commit is fenced (issue 10, cases 12, 13, 17)."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import socket
import time
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
from click.testing import CliRunner

from billing import faults, report
from billing.cli import cli
from billing.io.s3 import S3Store
from billing.io.storage import LocalStore
from tests.lake import at, click, write_raw, write_stream
from tests.test_faults import run_cli

DATE = "2026-11-26"
DAY = f"dt={DATE}"


def small_lake(tmp: Path) -> tuple[str, str]:
    """Two clicks of D by 02:00 of D+1, a third arriving at 02:30: lateness 2h and 3h give different outputs."""
    write_raw(tmp / "raw", "dt=2026-11-26/hour=10/a.parquet",
              [click(at(10), seq=1, ad=1, cost=10), click(at(10), seq=2, ad=2, cost=20)])
    write_raw(tmp / "raw", "dt=2026-11-27/hour=02/a.parquet",
              [click(at(23, 50), seq=3, ad=2, cost=30, ingest=at(26, 30))])
    write_stream(tmp / "stream", [(1, at(10), 1), (2, at(10), 1)])
    return str(tmp / "raw"), str(tmp / "stream")


#: The small lake's exit code by lateness: every window matches at 2h; the late third click is drift.
EXIT = {"2h": 0, "3h": 3, "5h": 3}


def reconcile_args(raw: str, stream: str, out: str, lateness: str = "2h") -> list[str]:
    return ["reconcile", "--date", DATE, "--raw", raw, "--stream", stream, "--out", out, "--lateness", lateness,
            "--memory-limit", "1536MiB", "--threads", "1"]


def committed_chain(read) -> set[int]:
    """The day's committed versions, from _current.json back along each manifest's previous_version."""
    cur = read(f"{DAY}/_current.json")
    versions: set[int] = set()
    v = None if cur is None else json.loads(cur)["version"]
    while v is not None:
        versions.add(v)
        v = json.loads(read(f"{DAY}/v={v}/manifest.json"))["previous_version"]
    return versions


def local_reader(out: Path):
    return lambda rel: (out / rel).read_bytes() if (out / rel).exists() else None


def glob_versions_local(out: Path) -> tuple[set[int], set[int]]:
    """Versions seen by DuckDB's and by pyarrow.dataset's reading of OUT/dt=*/v=*/*.parquet (both must succeed)."""
    pattern = f"{out}/dt=*/v=*/*.parquet"
    rows = duckdb.connect().execute(
        "SELECT DISTINCT v FROM read_parquet(?, hive_partitioning = true, union_by_name = true)", [pattern]).fetchall()
    files = sorted(glob.glob(pattern))
    dataset = ds.dataset(files, format="parquet", partitioning="hive", partition_base_dir=str(out))
    seen = {int(v) for v in dataset.to_table(columns=["v"]).column("v").to_pylist()}
    return {int(r[0]) for r in rows}, seen


def glob_versions_s3(s3, prefix: str) -> tuple[set[int], set[int]]:
    """The same on S3: the keys OUT/dt=*/v=*/*.parquet, read with pyarrow.dataset, and by DuckDB through Arrow
    (DuckDB's own S3 reader, httpfs, is not installed here and not used by billing)."""
    keys = [k for k in s3.keys(f"{prefix}/") if re.fullmatch(rf"{prefix}/dt=[^/]+/v=[^/]+/[^/]+\.parquet", k)]
    fs = pafs.S3FileSystem(endpoint_override=s3.endpoint.split("://", 1)[1], scheme="http", region="us-east-1")
    dataset = ds.dataset([f"{s3.bucket}/{k}" for k in keys], filesystem=fs, format="parquet",
                         partitioning="hive", partition_base_dir=f"{s3.bucket}/{prefix}")
    arrow = {int(v) for v in dataset.to_table(columns=["v"]).column("v").to_pylist()}
    duck = {int(r[0]) for r in duckdb.connect().execute("SELECT DISTINCT v FROM dataset").fetchall()}
    return duck, arrow


WRITE_POINTS = [p for p in faults.POINTS if p.startswith("mid_write_")] + [
    "before_manifest", "before_commit", "after_promote"]


@pytest.mark.slow
def test_killed_writes_never_leave_a_readable_uncommitted_version_local(tmp_path: Path) -> None:
    raw, stream = small_lake(tmp_path)
    out = tmp_path / "out"
    first = run_cli(reconcile_args(raw, stream, str(out)))
    assert first.returncode == 0, first.stderr
    lateness = ["3h", "2h"]  # alternate, so each re-run's outputs differ from the current version's
    assert len(WRITE_POINTS) == 9
    for i, point in enumerate(WRITE_POINTS):
        args = reconcile_args(raw, stream, str(out), lateness[i % 2])
        killed = run_cli(args, {faults.ENV: point})
        assert killed.returncode == -9, (point, killed.stderr[-2000:])
        committed = committed_chain(local_reader(out))
        duck, arrow = glob_versions_local(out)
        if point != "after_promote":  # killed before its version folder existed at all
            assert duck == arrow == committed, point
        again = run_cli(args)
        assert again.returncode == EXIT[lateness[i % 2]], (point, again.stderr[-2000:])
        committed = committed_chain(local_reader(out))
        assert len(committed) == i + 2, point
        duck, arrow = glob_versions_local(out)
        assert duck == arrow == committed, point
        assert not (out / DAY / "_staging").exists() or not any((out / DAY / "_staging").iterdir()), point



def small_s3_lake(s3, tmp_path: Path) -> tuple[str, str, str, dict[str, str]]:
    """small_lake on the moto server: raw and stream URIs, an OUT URI, and the AWS variables a subprocess needs."""
    raw_local, stream_local = small_lake(tmp_path)
    env = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                      "AWS_ENDPOINT_URL")}
    return (s3.upload_tree(Path(raw_local), "raw"), s3.upload_tree(Path(stream_local), "stream"),
            f"s3://{s3.bucket}/out", env)

@pytest.mark.integration
def test_killed_writes_never_leave_a_readable_uncommitted_version_s3(s3, tmp_path: Path) -> None:
    raw, stream, out, env = small_s3_lake(s3, tmp_path)

    def read(rel: str) -> bytes | None:
        try:
            return s3.read(f"out/{rel}")
        except s3.client.exceptions.NoSuchKey:
            return None

    assert run_cli(reconcile_args(raw, stream, out), env).returncode == 0
    lateness = ["3h", "2h"]
    for i, point in enumerate(WRITE_POINTS):
        args = reconcile_args(raw, stream, out, lateness[i % 2])
        killed = run_cli(args, {**env, faults.ENV: point})
        assert killed.returncode == -9, (point, killed.stderr[-2000:])
        if point != "after_promote":
            duck, arrow = glob_versions_s3(s3, "out")
            assert duck == arrow == committed_chain(read), point
        again = run_cli(args, env)
        assert again.returncode == EXIT[lateness[i % 2]], (point, again.stderr[-2000:])
        committed = committed_chain(read)
        assert len(committed) == i + 2
        duck, arrow = glob_versions_s3(s3, "out")
        assert duck == arrow == committed, point
    assert not [k for k in s3.keys("out/") if "/_staging/" in k]


# --- case 13: a committed version is immutable -------------------------------------------------

def assert_every_version_matches_its_manifest(out: Path) -> int:
    """Every file of every v=N is byte for byte what its manifest recorded, and nothing else is there."""
    versions = sorted((out / DAY).glob("v=*"))
    for vdir in versions:
        manifest = json.loads((vdir / "manifest.json").read_text())
        assert sorted(p.name for p in vdir.iterdir()) == sorted([*manifest["outputs"], "manifest.json"]), vdir
        for name, meta in manifest["outputs"].items():
            assert hashlib.sha256((vdir / name).read_bytes()).hexdigest() == meta["sha256"], (vdir.name, name)
    return len(versions)


def test_no_command_changes_a_committed_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw, stream = small_lake(tmp_path)
    out = str(tmp_path / "out")
    runner = CliRunner()
    day = ["--date", DATE, "--out", out]

    def run(args: list[str], codes: tuple[int, ...] = (0,)) -> str:
        r = runner.invoke(cli, args)
        assert r.exit_code in codes, (args, r.output)
        return r.stdout

    run(reconcile_args(raw, stream, out), (0,))
    assert assert_every_version_matches_its_manifest(tmp_path / "out") == 1
    run(reconcile_args(raw, stream, out, "3h"), (3,))
    assert assert_every_version_matches_its_manifest(tmp_path / "out") == 2

    # `billing report` exists to re-render with a newer template: make this one visibly newer
    original = report.render_html
    monkeypatch.setattr(report, "render_html", lambda **kw: original(**kw).replace(
        "</main>", "<p id=newer-template>re-rendered</p></main>"))
    url = run(["report", *day]).strip()
    assert assert_every_version_matches_its_manifest(tmp_path / "out") == 2
    assert url == str(tmp_path / "out" / DAY / "_rendered" / "v=2" / "report.html")
    rendered = Path(url).read_bytes()
    assert b"id=newer-template" in rendered
    assert sorted(p.name for p in Path(url).parent.iterdir()) == ["ads_daily.csv", "drift_flagged.csv",
                                                                  "report.html"]
    run(["report", *day])
    assert Path(url).read_bytes() == rendered  # deterministic: the same bytes in the same place

    run(["show", *day])
    run(["history", *day])
    run(["diff-versions", *day, "--from", "1", "--to", "2"])
    assert assert_every_version_matches_its_manifest(tmp_path / "out") == 2
    plan_uri = run(["plan", "--date", DATE, "--raw", raw, "--stream", stream, "--out", out, "--slices", "2"]).strip()
    assert assert_every_version_matches_its_manifest(tmp_path / "out") == 2
    run(["set-aside", "--plan", plan_uri])
    for k in range(2):
        run(["run-slice", "--plan", plan_uri, "--slice", str(k)])
        assert assert_every_version_matches_its_manifest(tmp_path / "out") == 2
    merged = run(["merge", "--plan", plan_uri], (0,))
    assert "published as version 3" in merged
    assert assert_every_version_matches_its_manifest(tmp_path / "out") == 3


# --- case 17: heartbeat, fenced commit, exclusive version numbers ------------------------------

def wait_for(cond, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def staged_manifest(day: Path) -> bool:
    """The run has written its manifest (it is about to commit): wherever this code stages it."""
    return any(p.name == "manifest.json" for p in day.rglob("manifest.json"))


def test_zombie_run_cannot_move_current_backwards_local(tmp_path: Path) -> None:
    """The issue's reproduction: A's lock expires while it pauses before its commit; B breaks it and
    publishes; A wakes. A must publish nothing and exit 2; B's version stays current."""
    raw, stream = small_lake(tmp_path)
    out = tmp_path / "out"
    a = run_cli(reconcile_args(raw, stream, str(out)),
                {"BILLING_LOCK_TTL_HOURS": "0", faults.PAUSE_ENV: "before_commit:12"}, wait=False)
    wait_for(lambda: staged_manifest(out / DAY))
    b = run_cli(reconcile_args(raw, stream, str(out), "5h"))
    assert b.returncode == 3, b.stderr
    assert "breaking stale lock" in b.stderr and f"'pid': {a.pid}" in b.stderr
    b_current = json.loads((out / DAY / "_current.json").read_text())
    _, a_err = a.communicate(timeout=120)
    assert a.returncode == 2, a_err
    error = [line for line in a_err.splitlines() if line.startswith("billing: error:")]
    assert len(error) == 1 and f"another run committed version {b_current['version']} meanwhile" in error[0]
    assert "nothing published" in error[0]
    assert json.loads((out / DAY / "_current.json").read_text()) == b_current
    manifest = json.loads((out / DAY / b_current["dir"] / "manifest.json").read_text())
    assert manifest["counts"]["ledger"]["billable_clicks"] == 3  # B's lateness 5h reads the third click
    assert [p.name for p in (out / DAY).glob("v=*")] == [b_current["dir"]]  # A left no version behind
    assert committed_chain(local_reader(out)) == {b_current["version"]}
    assert not (out / DAY / "_lock.json").exists()


def test_heartbeat_keeps_a_live_runs_short_lock(tmp_path: Path) -> None:
    """A run that outlives its lock's TTL keeps the lock: the heartbeat renews it, a second run is refused."""
    raw, stream = small_lake(tmp_path)
    out = tmp_path / "out"
    lock = out / DAY / "_lock.json"
    a = run_cli(reconcile_args(raw, stream, str(out)), {"BILLING_LOCK_TTL": "1s", faults.PAUSE_ENV: "after_lock:5"},
                wait=False)
    wait_for(lock.exists)
    first = json.loads(lock.read_text())
    time.sleep(2.5)  # more than twice the TTL
    renewed = json.loads(lock.read_text())
    assert renewed["run_id"] == first["run_id"] and renewed["pid"] == a.pid
    assert renewed["expires_at"] > first["expires_at"]
    b = run_cli(reconcile_args(raw, stream, str(out), "5h"), {"BILLING_LOCK_TTL": "1s"})
    assert b.returncode == 2 and f"pid {a.pid}" in b.stderr and "is being reconciled by another run" in b.stderr
    a.communicate(timeout=120)
    assert a.returncode == 0
    assert json.loads((out / DAY / "_current.json").read_text()) == {"version": 1, "dir": "v=1"}
    assert not lock.exists()


def test_a_run_that_loses_its_lock_stops_before_its_commit(tmp_path: Path) -> None:
    raw, stream = small_lake(tmp_path)
    out = tmp_path / "out"
    lock = out / DAY / "_lock.json"
    a = run_cli(reconcile_args(raw, stream, str(out)), {"BILLING_LOCK_TTL": "1s",
                                                        faults.PAUSE_ENV: "before_commit:3"}, wait=False)
    wait_for(lambda: staged_manifest(out / DAY))
    taken = {"host": "other-host", "pid": 1, "run_id": "other-run", "acquired_at": "2026-11-27T00:00:00+00:00",
             "expires_at": "2099-01-01T00:00:00+00:00"}
    lock.write_text(json.dumps(taken))  # another run took the lock over
    _, err = a.communicate(timeout=120)
    assert a.returncode == 2, err
    assert "lost the day's lock" in err and "other-run" in err and "nothing published" in err
    assert not (out / DAY / "_current.json").exists()
    assert not list((out / DAY).glob("v=*"))
    assert json.loads(lock.read_text()) == taken  # not released by the run that lost it


def test_commit_refused_when_current_moved_since_the_lock_was_taken(tmp_path: Path) -> None:
    raw, stream = small_lake(tmp_path)
    out = tmp_path / "out"
    assert run_cli(reconcile_args(raw, stream, str(out))).returncode == 0
    a = run_cli(reconcile_args(raw, stream, str(out), "3h"), {faults.PAUSE_ENV: "before_commit:3"}, wait=False)
    wait_for(lambda: any(p.name == "manifest.json" and p.parent.name != "v=1" for p in (out / DAY).rglob("*")))
    moved = b'{"version": 7, "dir": "v=7"}\n'
    (out / DAY / "_current.json").write_bytes(moved)  # written by something that ignored the lock
    _, err = a.communicate(timeout=120)
    assert a.returncode == 2, err
    assert "another run committed version 7 meanwhile" in err
    assert (out / DAY / "_current.json").read_bytes() == moved
    assert [p.name for p in (out / DAY).glob("v=*")] == ["v=1"]


def test_a_version_number_is_claimed_once(tmp_path: Path) -> None:
    raw, stream = small_lake(tmp_path)
    out = tmp_path / "out"
    assert CliRunner().invoke(cli, reconcile_args(raw, stream, str(out))).exit_code == 0
    claims = out / DAY / "_claims"
    (claims / "v=2.json").write_text('{"version": 2, "run_id": "someone-else"}')  # claimed by another run
    r = CliRunner().invoke(cli, reconcile_args(raw, stream, str(out), "3h"))
    assert r.exit_code == 3 and "published as version 3" in r.stdout
    assert sorted(p.name for p in (out / DAY).glob("v=*")) == ["v=1", "v=3"]
    assert json.loads((out / DAY / "v=3/manifest.json").read_text())["previous_version"] == 1
    assert json.loads((claims / "v=2.json").read_text())["run_id"] == "someone-else"


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))


def lake_locked_elsewhere(tmp_path: Path, **held: object) -> tuple[str, str, Path, Path, dict[str, object]]:
    """A small lake, and its day's lock held by a run on another host (``held`` sets its fields)."""
    raw, stream = small_lake(tmp_path)
    out = tmp_path / "out"
    lock = out / DAY / "_lock.json"
    lock.parent.mkdir(parents=True)
    now = time.time()
    body = {"host": f"not-{socket.gethostname()}", "pid": 1, "run_id": "far-away", "acquired_at": iso(now - 600),
            "expires_at": iso(now + 60), **held}
    lock.write_text(json.dumps(body))
    return raw, stream, out, lock, body


def test_stale_lock_of_another_host_is_broken_after_its_ttl(tmp_path: Path) -> None:
    raw, stream, out, lock, alive = lake_locked_elsewhere(tmp_path)
    now = time.time()
    r = CliRunner().invoke(cli, reconcile_args(raw, stream, str(out)))
    assert r.exit_code == 2 and "far-away" in r.stderr
    lock.write_text(json.dumps({**alive, "expires_at": iso(now - 5)}))  # its heartbeat stopped
    r = CliRunner().invoke(cli, reconcile_args(raw, stream, str(out)))
    assert r.exit_code == 0, r.output
    assert not lock.exists()


@pytest.mark.integration
def test_zombie_run_cannot_move_current_backwards_s3(s3, tmp_path: Path) -> None:
    raw, stream, out, env = small_s3_lake(s3, tmp_path)
    a = run_cli(reconcile_args(raw, stream, out),
                {**env, "BILLING_LOCK_TTL_HOURS": "0", faults.PAUSE_ENV: "before_commit:12"}, wait=False)
    wait_for(lambda: any(k.endswith("/manifest.json") for k in s3.keys(f"out/{DAY}/")))
    b = run_cli(reconcile_args(raw, stream, out, "5h"), env)
    assert b.returncode == 3, b.stderr
    assert "breaking stale lock" in b.stderr
    b_current = json.loads(s3.read(f"out/{DAY}/_current.json"))
    _, a_err = a.communicate(timeout=120)
    assert a.returncode == 2, a_err
    assert f"another run committed version {b_current['version']} meanwhile" in a_err
    assert json.loads(s3.read(f"out/{DAY}/_current.json")) == b_current
    versions = {k.split("/")[2] for k in s3.keys(f"out/{DAY}/v=")}
    assert versions == {b_current["dir"]}
    assert not [k for k in s3.keys(f"out/{DAY}/") if k.endswith("_lock.json")]


@pytest.mark.integration
def test_s3_conditional_writes_are_enforced(s3) -> None:
    """What the fence relies on, checked against the server: If-None-Match and If-Match on PUT."""
    store = S3Store(s3.bucket, "cond")
    first = store.write_if("k", b"one", None)
    assert first is not None and store.write_if("k", b"two", None) is None
    second = store.write_if("k", b"two", first)
    assert second is not None and second != first
    assert store.write_if("k", b"three", first) is None  # stale ETag: refused by the server
    assert store.read_tagged("k") == (b"two", second)


def test_local_conditional_writes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    first = store.write_if("d/k", b"one", None)
    assert first is not None and store.write_if("d/k", b"two", None) is None
    second = store.write_if("d/k", b"two", first)
    assert second is not None and store.write_if("d/k", b"three", first) is None
    assert store.read_tagged("d/k") == (b"two", second)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["k"]


class RenewingHolder(LocalStore):
    """A store on which the lock's holder renews it right after each of the first ``renewals`` reads.

    It stands for the race the S3 zombie test hit by chance: between a breaker's read of a stale lock
    and its conditional write, the stale holder's heartbeat rewrote the file.
    """

    def __init__(self, root: Path, holder: dict[str, object], renewals: int) -> None:
        super().__init__(root)
        self.holder, self.renewals, self.reads = holder, renewals, 0

    def read_tagged(self, path: str) -> tuple[bytes, str] | None:
        found = super().read_tagged(path)
        if path.endswith("_lock.json") and found is not None and self.renewals > 0:
            self.renewals -= 1
            self.reads += 1
            beat = {**self.holder, "beat": self.reads}
            self.write_bytes(path, json.dumps(beat).encode())
        return found


@pytest.mark.parametrize("ttl_s", [0, 60])
def test_a_stale_lock_renewed_while_it_is_broken_is_judged_again(tmp_path: Path, ttl_s: int) -> None:
    import datetime as dt

    from billing.day.lock import ACQUIRE_ATTEMPTS, DayLock
    from billing.day.publish import Day
    from billing.errors import LockedError

    now = dt.datetime.now(dt.UTC)
    holder = {"host": f"not-{socket.gethostname()}", "pid": 1, "run_id": "zombie", "command": "reconcile",
              "acquired_at": now.isoformat(), "expires_at": (now + dt.timedelta(seconds=ttl_s)).isoformat()}
    store = RenewingHolder(tmp_path, holder, renewals=2)
    stale = {**holder, "expires_at": (now - dt.timedelta(seconds=5)).isoformat()}
    store.write_bytes(f"{DAY}/_lock.json", json.dumps(stale).encode())
    lock = DayLock(Day(store, dt.date.fromisoformat(DAY.removeprefix("dt="))), "breaker", dt.timedelta(hours=1))
    if ttl_s == 0:  # the holder's renewals leave it stale (TTL 0): the breaker tries again and wins
        lock.acquire()
        try:
            assert json.loads(store.read_bytes(f"{DAY}/_lock.json"))["run_id"] == "breaker"
            assert store.reads == 2 < ACQUIRE_ATTEMPTS
        finally:
            lock.release()
    else:  # the holder renewed for a minute: it is live, and the breaker says who holds the day
        with pytest.raises(LockedError, match=r"being reconciled by another run .*run zombie"):
            lock.acquire()
        assert json.loads(store.read_bytes(f"{DAY}/_lock.json"))["run_id"] == "zombie"


@pytest.mark.parametrize("command, says", [("publish-tables", "is having its tables published by another run"),
                                           ("merge", "is being reconciled by another run"),
                                           (None, "is locked by another run")])
def test_a_locked_day_names_what_its_holder_does(tmp_path: Path, command: str | None, says: str) -> None:
    """The lock records the holder's command; a run refused by it says what holds the day (publish-tables'
    lock was reported as 'being reconciled'); a lock without one (an older billing's) is just 'locked'."""
    raw, stream, out, _, _ = lake_locked_elsewhere(tmp_path, run_id="elsewhere",
                                                   **({"command": command} if command else {}))
    r = CliRunner().invoke(cli, reconcile_args(raw, stream, str(out)))
    assert r.exit_code == 2
    assert f"billing: error: {DATE} {says} (host not-{socket.gethostname()}, pid 1, run elsewhere" in r.stderr


def test_each_command_writes_what_it_does_in_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from billing.day import lock as day_lock

    seen: list[str] = []
    real = day_lock.DayLock.acquire

    def spy(self: day_lock.DayLock) -> None:
        real(self)
        seen.append(json.loads(self.day.out.read_bytes(self.day.path("_lock.json")))["command"])

    monkeypatch.setattr(day_lock.DayLock, "acquire", spy)
    raw, stream = small_lake(tmp_path)
    out = tmp_path / "out"
    assert CliRunner().invoke(cli, reconcile_args(raw, stream, str(out))).exit_code in (0, 3)
    assert CliRunner().invoke(cli, ["publish-tables", "--date", DATE, "--out", str(out)]).exit_code == 0
    assert seen == ["reconcile", "publish-tables"]
