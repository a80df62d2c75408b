"""Delta tables of the current results (issue 14, table core): ``billing.io.delta`` on a real file system
and on moto's S3 server; real ``deltalake``, Polars and DuckDB (over the Delta snapshot's Arrow dataset)
readers, real concurrent processes.

DuckDB's own ``delta_scan`` needs its ``delta`` extension, which DuckDB downloads on first use and this
machine cannot fetch: it is not exercised here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

import billing.io.delta as delta
import billing.io.delta_store as delta_store
from billing.errors import BadInputError, StorageError
from billing.io.delta import app_id, replace_day, storage_options_for
from billing.io.delta_read import day_commit, day_version

D1 = dt.date(2026, 11, 26)
D2 = dt.date(2026, 11, 27)
TS = pa.timestamp("us", tz="UTC")
TOTALS = pa.schema([("ad_id", pa.int64()), ("window_start", TS), ("clicks", pa.int64()), ("spend_micros", pa.int64())])
REPO = Path(__file__).resolve().parents[1]


def totals(date: dt.date, version: int, n: int = 50) -> pa.Table:
    """A day's totals whose values say which version wrote them (clicks = version * 1000 + ad)."""
    start = dt.datetime.combine(date, dt.time(), tzinfo=dt.UTC)
    return pa.table({
        "ad_id": pa.array(range(n), pa.int64()),
        "window_start": pa.array([start + dt.timedelta(minutes=i % 1440) for i in range(n)], TS),
        "clicks": pa.array([version * 1000 + i for i in range(n)], pa.int64()),
        "spend_micros": pa.array([version * 7 + i for i in range(n)], pa.int64()),
    }, schema=TOTALS)


def meta(version: int, date: dt.date | None = None) -> dict[str, str]:
    tag = f"{date or ''}{version}".encode().hex()
    return {"billing_version": str(version), "manifest_sha256": (tag * 64)[:64]}


def expected(*days: tuple[dt.date, pa.Table]) -> pa.Table:
    return pa.concat_tables([delta.with_date(d, t) for d, t in days]).sort_by(
        [("date", "ascending"), ("ad_id", "ascending")])


def read_all(uri: str, opts: dict[str, str] | None = None) -> pa.Table:
    return DeltaTable(uri, storage_options=opts).to_pyarrow_table().sort_by(
        [("date", "ascending"), ("ad_id", "ascending")])


def our_commits(uri: str, opts: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return [h for h in DeltaTable(uri, storage_options=opts).history() if "billing_version" in h]


# --- one process, local -----------------------------------------------------------------------------------

def test_two_days_three_versions(tmp_path: Path) -> None:
    uri = str(tmp_path / "tables" / "totals")
    assert day_version(uri, D1) is None  # no table yet
    assert replace_day(uri, D1, totals(D1, 1), metadata=meta(1, D1)) == 1  # version 0: CREATE TABLE
    assert replace_day(uri, D2, totals(D2, 1, n=30), metadata=meta(1, D2)) == 2
    assert replace_day(uri, D1, totals(D1, 2, n=70), metadata=meta(2, D1)) == 3  # a restatement of D1
    want = expected((D1, totals(D1, 2, n=70)), (D2, totals(D2, 1, n=30)))

    # deltalake: the schema, with a DATE partition column first, and exactly the latest rows per day
    table = DeltaTable(uri)
    assert table.metadata().partition_columns == ["date"]
    arrow_schema = pa.schema(table.schema())
    assert arrow_schema.names == ["date", "ad_id", "window_start", "clicks", "spend_micros"]
    assert arrow_schema.field("date").type == pa.date32()
    assert arrow_schema.field("window_start").type == TS
    got = read_all(uri)
    assert got.cast(want.schema).equals(want)
    assert sorted(os.listdir(uri)) == ["_delta_log", "date=2026-11-26", "date=2026-11-27"]

    # Polars, eager and lazy: the same rows; the date column is a Date, not a string inferred from a path
    frame = pl.read_delta(uri).sort(["date", "ad_id"])
    assert frame.schema["date"] == pl.Date
    assert frame.to_arrow().cast(want.schema).equals(want)
    per_day = (pl.scan_delta(uri).group_by("date").agg(pl.col("clicks").sum()).sort("date").collect())
    assert per_day.rows() == [(D1, sum(2000 + i for i in range(70))), (D2, sum(1000 + i for i in range(30)))]

    # DuckDB over the snapshot's Arrow dataset (offline; delta_scan would need a downloaded extension)
    dataset = DeltaTable(uri).to_pyarrow_dataset()
    con = duckdb.connect()
    con.register("totals", dataset)
    rows = con.execute("SELECT date, count(*), sum(clicks) FROM totals GROUP BY date ORDER BY date").fetchall()
    assert rows == [(D1, 70, sum(2000 + i for i in range(70))), (D2, 30, sum(1000 + i for i in range(30)))]

    # history: one commit per replace, newest first, each with its metadata and application transaction
    commits = our_commits(uri)
    assert [(c["version"], c["date"], c["billing_version"], c["manifest_sha256"]) for c in commits] == [
        (3, "2026-11-26", "2", meta(2, D1)["manifest_sha256"]),
        (2, "2026-11-27", "1", meta(1, D2)["manifest_sha256"]),
        (1, "2026-11-26", "1", meta(1, D1)["manifest_sha256"]),
    ]
    assert table.history()[-1]["operation"] == "CREATE TABLE"
    assert all(c["operation"] == "WRITE" and c["operationParameters"]["mode"] == "Overwrite" for c in commits)
    assert commits[0]["operationParameters"]["predicate"].startswith("date = '2026-11-26'")
    assert table.transaction_version(app_id(D1)) == 2
    assert table.transaction_version(app_id(D2)) == 1

    # the "already current" check
    assert day_version(uri, D1) == 2
    assert day_version(uri, D2) == 1
    assert day_version(uri, dt.date(2026, 11, 28)) is None
    found = day_commit(uri, D1)
    assert found is not None
    assert (found.delta_version, found.billing_version, found.manifest_sha256) == (3, 2, meta(2, D1)["manifest_sha256"])
    assert day_commit(uri, dt.date(2026, 11, 28)) is None

    # time travel: version 1 of the table is D1's first version alone
    old = DeltaTable(uri, version=1).to_pyarrow_table().sort_by("ad_id")
    assert old.cast(want.schema).equals(expected((D1, totals(D1, 1))))


def test_empty_day_and_given_date_column(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    replace_day(uri, D1, totals(D1, 1), metadata=meta(1))
    replace_day(uri, D2, totals(D2, 1), metadata=meta(1))
    # a day restated to no rows at all: still one commit, the partition is empty, the other day untouched
    assert replace_day(uri, D1, totals(D1, 2).slice(0, 0), metadata=meta(2)) == 3
    assert read_all(uri).column("date").unique().to_pylist() == [D2]
    assert day_version(uri, D1) == 2
    # rows that already carry the date column (any position): accepted when it is the day, as a DATE
    given = delta.with_date(D1, totals(D1, 3)).select(["ad_id", "date", "window_start", "clicks", "spend_micros"])
    replace_day(uri, D1, given, metadata=meta(3))
    assert pa.schema(DeltaTable(uri).schema()).names[0] == "date"
    assert read_all(uri).filter(pa.compute.equal(read_all(uri).column("date"), pa.scalar(D1))).num_rows == 50
    with pytest.raises(BadInputError, match="another day"):
        replace_day(uri, D2, given, metadata=meta(2))
    with pytest.raises(BadInputError, match="not a DATE"):
        replace_day(uri, D1, totals(D1, 4).append_column("date", pa.array(["x"] * 50)), metadata=meta(4))


def test_metadata_is_checked(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    for bad, message in [({"manifest_sha256": "a" * 64}, "missing billing_version"),
                         ({"billing_version": "1"}, "missing manifest_sha256"),
                         ({"billing_version": "one", "manifest_sha256": "a" * 64}, "not an integer"),
                         ({"billing_version": "0", "manifest_sha256": "a" * 64}, ">= 1"),
                         ({"billing_version": "1", "manifest_sha256": "xyz"}, "64 lowercase hex"),
                         ({**meta(1), "date": "2026-11-27"}, "not the day written"),
                         ({**meta(1), "operation": "DELETE"}, "Delta's own commitInfo")]:
        with pytest.raises(BadInputError, match=message):
            replace_day(uri, D1, totals(D1, 1), metadata=bad)
    assert not (tmp_path / "t").exists()  # refused before anything was written
    replace_day(uri, D1, totals(D1, 1), metadata={**meta(1), "run_id": "r-1", "date": D1.isoformat()})
    found = day_commit(uri, D1)
    assert found is not None and found.metadata["run_id"] == "r-1"


def test_schema_mismatch_is_one_line(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    replace_day(uri, D1, totals(D1, 1), metadata=meta(1))
    with pytest.raises(StorageError) as info:
        replace_day(uri, D2, totals(D2, 1).append_column("extra", pa.array([1] * 50)), metadata=meta(1))
    assert "do not match the table's schema" in str(info.value) and "\n" not in str(info.value)
    assert day_version(uri, D2) is None and read_all(uri).num_rows == 50  # nothing committed


def day_file(tmp: Path, date: dt.date, version: int, copies: list[str]) -> delta.DayFile:
    """A published file of ``totals(date, version)`` (zstd, as billing writes them), as a DayFile that records
    where it was copied to."""
    import shutil

    import pyarrow.parquet as pq

    rows = totals(date, version)
    src = tmp / f"src-{date}-{version}.parquet"
    pq.write_table(rows, src, compression="zstd")

    def copy_into(rel: str) -> int:
        copies.append(rel)
        target = Path(tmp / "t" / rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        return target.stat().st_size

    return delta.DayFile(TOTALS, rows.num_rows, {"ad_id": 0, "clicks": 0}, copy_into,
                         delta.DayRows(TOTALS, lambda: iter(rows.to_batches())))


def test_a_published_file_is_copied_in_whole_when_the_schemas_match(tmp_path: Path) -> None:
    """A DayFile becomes the day's one data file, byte for byte, in one commit per replace: the same rows,
    versions, metadata and application transactions as rows written by delta-rs."""
    uri = str(tmp_path / "t")
    copies: list[str] = []
    assert replace_day(uri, D1, day_file(tmp_path, D1, 1, copies), metadata=meta(1, D1)) == 1
    assert replace_day(uri, D2, day_file(tmp_path, D2, 1, copies), metadata=meta(1, D2)) == 2
    assert replace_day(uri, D1, day_file(tmp_path, D1, 2, copies), metadata=meta(2, D1)) == 3
    assert len(copies) == 3 and all(c.startswith(f"date={d}/") for c, d in zip(copies, (D1, D2, D1), strict=True))
    assert read_all(uri).equals(expected((D1, totals(D1, 2)), (D2, totals(D2, 1))))
    files = sorted(Path(u) for u in DeltaTable(uri).file_uris())
    assert [f.read_bytes() for f in files] == [(tmp_path / f"src-{d}-{v}.parquet").read_bytes()
                                               for d, v in ((D1, 2), (D2, 1))]
    assert (day_version(uri, D1), day_version(uri, D2)) == (2, 1)
    found = day_commit(uri, D1)
    assert found is not None and (found.delta_version, found.billing_version) == (3, 2)
    assert [c["operation"] for c in DeltaTable(uri).history()] == ["WRITE"] * 3 + ["CREATE TABLE"]
    # a reader that plans from the commit's statistics and partition values
    assert pl.scan_delta(uri).filter(pl.col("date") == D2).select(pl.col("clicks").sum()).collect().item() == sum(
        totals(D2, 1)["clicks"].to_pylist())


def test_a_published_file_of_another_schema_is_written_as_rows(tmp_path: Path) -> None:
    """A table whose schema is not ``date`` + the file's (here clicks is INT32): nothing is copied; the rows go
    through delta-rs, which writes them in the table's schema as it does for any rows."""
    uri = str(tmp_path / "t")
    narrow = pa.schema([TOTALS.field("ad_id"), TOTALS.field("window_start"), pa.field("clicks", pa.int32()),
                        TOTALS.field("spend_micros")])
    replace_day(uri, D1, totals(D1, 1).cast(narrow), metadata=meta(1))
    copies: list[str] = []
    assert replace_day(uri, D2, day_file(tmp_path, D2, 1, copies), metadata=meta(1, D2)) == 2
    assert copies == [] and day_version(uri, D2) == 1
    assert read_all(uri).equals(expected((D1, totals(D1, 1).cast(narrow)), (D2, totals(D2, 1).cast(narrow))))


def test_a_table_whose_day_cannot_be_replaced_is_refused_in_one_line(tmp_path: Path) -> None:
    """Tables made by someone else: not partitioned by date (a copied file would lose its date), partitioned
    otherwise, or append-only. Each is refused before anything is copied or committed, without retries."""
    from billing.errors import TableShapeError

    schema = delta.with_date(D1, TOTALS.empty_table()).schema
    cases = {"unpartitioned": ({}, None, "partitioned by nothing, not by date"),
             "by_ad": ({}, ["ad_id"], "partitioned by ['ad_id'], not by date"),
             "append_only": ({"delta.appendOnly": "true"}, ["date"], "delta.appendOnly=true")}
    for name, (config, parts, message) in cases.items():
        uri = str(tmp_path / name)
        DeltaTable.create(uri, schema, partition_by=parts, configuration=config)
        before = DeltaTable(uri).version()
        copies: list[str] = []
        started = time.monotonic()
        with pytest.raises(TableShapeError) as info:
            replace_day(uri, D1, day_file(tmp_path, D1, 1, copies), metadata=meta(1), backoff_s=0.5)
        assert message in str(info.value) and "\n" not in str(info.value), name
        assert time.monotonic() - started < 5 and copies == [] and DeltaTable(uri).version() == before, name
        assert not list((tmp_path / name).glob("date=*")), name


def test_a_table_with_constraints_gets_rows_that_delta_rs_checks(tmp_path: Path) -> None:
    """A CHECK constraint makes the table ask more of writers (writer version 3): the published file is not
    copied in, delta-rs writes its rows and enforces the constraint."""
    uri = str(tmp_path / "t")
    replace_day(uri, D1, totals(D1, 1), metadata=meta(1, D1))
    DeltaTable(uri).alter.add_constraint({"clicks_positive": "clicks > 0"})
    copies: list[str] = []
    assert replace_day(uri, D2, day_file(tmp_path, D2, 1, copies), metadata=meta(1, D2)) == 3
    assert copies == [] and read_all(uri).equals(expected((D1, totals(D1, 1)), (D2, totals(D2, 1))))
    DeltaTable(uri).alter.add_constraint({"clicks_below_1500": "clicks < 1500"})  # version 2 has 2000 + ad
    with pytest.raises(StorageError) as info:
        replace_day(uri, D2, day_file(tmp_path, D2, 2, copies), metadata=meta(2, D2))
    assert "\n" not in str(info.value) and copies == [] and day_version(uri, D2) == 1


def test_a_rust_backtrace_is_cut_from_the_one_line(tmp_path: Path) -> None:
    e = RuntimeError("Kernel error: Json error: unexpected 'g' whilst parsing object 0: <unknown>\n 1: <unknown>\n"
                     " 12: start_thread at ./nptl/pthread_create.c:442:8")
    assert delta_store.one_line("t", "cannot be opened", e, None) == (
        "Delta table t: cannot be opened: Kernel error: Json error: unexpected 'g' whilst parsing object")


def test_a_conflicting_commit_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """delta-rs re-bases non-conflicting commits itself; a commit it gives up on is retried as a whole."""
    import deltalake
    from deltalake.exceptions import CommitFailedError

    uri = str(tmp_path / "t")
    real = deltalake.write_deltalake
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) <= 2:
            raise CommitFailedError("Commit failed: a concurrent transaction deleted data this operation read")
        real(*args, **kwargs)

    monkeypatch.setattr(deltalake, "write_deltalake", flaky)
    assert replace_day(uri, D1, totals(D1, 1), metadata=meta(1), backoff_s=0.001) == 1
    assert len(calls) == 3 and day_version(uri, D1) == 1
    calls.clear()
    with pytest.raises(StorageError, match="lost to concurrent commits 2 times"):
        replace_day(uri, D2, totals(D2, 1), metadata=meta(1), attempts=2, backoff_s=0.001)
    assert day_version(uri, D2) is None


def test_missing_bucket_and_unreadable_table(s3: Any) -> None:
    with pytest.raises(StorageError) as info:
        replace_day("s3://no-such-bucket-billing/tables/totals", D1, totals(D1, 1), metadata=meta(1))
    text = str(info.value)
    assert "\n" not in text and "fake/secret" not in text and os.environ["AWS_SECRET_ACCESS_KEY"] not in text
    assert day_version(f"s3://{s3.bucket}/tables/none", D1) is None


# --- concurrent processes ------------------------------------------------------------------------------------

WRITER = """
import datetime as dt, sys, time
import pyarrow as pa
from billing.io.delta import replace_day
uri, start, ops = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
time.sleep(max(0.0, start - time.time()))
for op in ops:
    day, v = dt.date.fromisoformat(op.split("@")[0]), int(op.split("@")[1])
    t = pa.table({"ad_id": pa.array(range(2000), pa.int64()), "clicks": pa.array([v] * 2000, pa.int64())})
    print(replace_day(uri, day, t, metadata={"billing_version": str(v), "manifest_sha256": f"{v:064x}"}), flush=True)
"""


def _writer(uri: str, ops: list[tuple[dt.date, int]], start: float = 0.0,
            env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A real process running ``replace_day`` for each (day, version) of ``ops`` (2000 rows, clicks=version),
    from ``start`` (epoch seconds) on; it prints the Delta version of each commit."""
    args = [f"{d.isoformat()}@{v}" for d, v in ops]
    return subprocess.Popen([sys.executable, "-c", WRITER, uri, str(start), *args],
                            cwd=REPO, env={**(env or os.environ), "PYTHONPATH": str(REPO)}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _run(proc: subprocess.Popen[str]) -> list[int]:
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-2000:]
    return [int(x) for x in out.split()]


def _both(uri: str, versions: int, env: dict[str, str] | None = None) -> None:
    start = time.time() + 2.0  # both processes are up and importing by then: their commits interleave
    procs = [_writer(uri, [(day, v) for v in range(1, versions + 1)], start, env) for day in (D1, D2)]
    for p in procs:
        assert len(_run(p)) == versions


def _check_both_landed(uri: str, versions: int, commits: list[dict[str, Any]],
                       opts: dict[str, str] | None = None) -> None:
    """``commits``: the table's commitInfo entries, newest first."""
    table = DeltaTable(uri, storage_options=opts)
    assert table.version() == 2 * versions  # CREATE, then one commit per replace: none lost or doubled
    assert [c["operation"] for c in commits].count("CREATE TABLE") == 1
    rows = table.to_pyarrow_table()
    per_day = {r["date"]: (r["clicks_min"], r["clicks_max"], r["clicks_count"])
               for r in rows.group_by("date").aggregate([("clicks", "min"), ("clicks", "max"),
                                                          ("clicks", "count")]).to_pylist()}
    assert per_day == {D1: (versions, versions, 2000), D2: (versions, versions, 2000)}
    ours = [c for c in commits if "billing_version" in c]
    assert len(ours) == 2 * versions
    for day in (D1, D2):
        mine = [int(c["billing_version"]) for c in ours if c["date"] == day.isoformat()]
        assert mine == list(range(versions, 0, -1))  # newest first, each version exactly once
        assert day_version(uri, day, storage_options=opts) == versions


def s3_commits(s3: Any, prefix: str) -> list[dict[str, Any]]:
    """The commitInfo of every log entry under ``prefix``, newest first, read with boto3 (delta-rs's
    ``history`` keeps the GIL, so it cannot be answered by the moto server running in this process)."""
    keys = [k for k in s3.keys(f"{prefix}/_delta_log/") if k.endswith(".json")]
    infos = [json.loads(line)["commitInfo"] for k in keys for line in s3.read(k).splitlines()
             if b'"commitInfo"' in line]
    return infos[::-1]


def test_two_processes_replace_two_days_at_once(tmp_path: Path) -> None:
    uri = str(tmp_path / "tables" / "totals")
    for attempt in range(3):  # three fresh tables: the create race too, not only the commits
        uri = str(tmp_path / f"t{attempt}" / "totals")
        _both(uri, versions=6)
        _check_both_landed(uri, versions=6, commits=DeltaTable(uri).history())


# --- S3 (moto's server) --------------------------------------------------------------------------------------

class LogProxy:
    """An HTTP proxy in front of moto that records every request to a ``_delta_log/`` key (method, key,
    conditional headers, status) and can hold the first commit PUT until released."""

    def __init__(self, upstream: str, *, hold_first_commit: bool = False) -> None:
        self.upstream = urlsplit(upstream)
        self.records: list[dict[str, Any]] = []
        self.holding = threading.Event()
        self.release = threading.Event()
        self._hold = hold_first_commit
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = urlsplit(self.path).path
                is_commit = self.command == "PUT" and "/_delta_log/" in key and key.endswith(".json")
                if is_commit and proxy._hold:
                    proxy._hold = False
                    proxy.holding.set()
                    proxy.release.wait(60)
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                send_body = body if (body or self.command in ("PUT", "POST")) else None
                conn.request(self.command, self.path, body=send_body, headers=dict(self.headers.items()))
                resp = conn.getresponse()
                data = resp.read()
                if "/_delta_log/" in key or "x-amz-copy-source" in {k.lower() for k in self.headers}:
                    proxy.records.append({"method": self.command, "key": key, "status": resp.status,
                                          "if_none_match": self.headers.get("If-None-Match"),
                                          "copy_source": self.headers.get("x-amz-copy-source")})
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")  # one request per connection: simple and robust
                self.close_connection = True
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def log_proxy(upstream: str, **kwargs: Any) -> Iterator[LogProxy]:
    proxy = LogProxy(upstream, **kwargs)
    try:
        yield proxy
    finally:
        proxy.close()


def test_s3_storage_options() -> None:
    assert storage_options_for("/tmp/x") is None
    assert storage_options_for("s3://b/t", {"AWS_ENDPOINT_URL": "http://h:1"}) == {
        "AWS_ENDPOINT_URL": "http://h:1", "aws_conditional_put": "etag", "AWS_ALLOW_HTTP": "true"}
    kept = storage_options_for("s3://b/t", {"conditional_put": "etag", "allow_http": "false",
                                            "endpoint": "http://h:1"})
    assert kept == {"conditional_put": "etag", "allow_http": "false", "endpoint": "http://h:1"}


def writer_rows(date: dt.date, version: int) -> pa.Table:
    """What the WRITER process stores for (date, version)."""
    return delta.with_date(date, pa.table({"ad_id": pa.array(range(2000), pa.int64()),
                                           "clicks": pa.array([version] * 2000, pa.int64())}))


def test_s3_two_days_three_versions_with_conditional_puts(s3: Any) -> None:
    """Every commit is a PUT with ``If-None-Match: *`` of its log entry: no copy, no rename, no lock.

    The writer runs in its own process: delta-rs holds the GIL in some calls (``history``), so an
    in-process Python proxy could not answer it."""
    uri = f"s3://{s3.bucket}/out/tables/totals"
    with log_proxy(s3.endpoint) as proxy:
        env = {**os.environ, "AWS_ENDPOINT_URL": proxy.endpoint}
        assert _run(_writer(uri, [(D1, 1), (D2, 1), (D1, 2)], env=env)) == [1, 2, 3]
    commits = [r for r in proxy.records if r["method"] == "PUT" and r["key"].endswith(".json")]
    assert [r["key"].rsplit("/", 1)[1] for r in commits] == [f"{v:020d}.json" for v in range(4)]
    assert all(r["if_none_match"] == "*" and r["status"] == 200 for r in commits)
    assert not [r for r in proxy.records if r["copy_source"] or r["method"] == "DELETE"]

    opts = storage_options_for(uri)
    assert opts is not None and opts["aws_conditional_put"] == "etag" and opts["AWS_ALLOW_HTTP"] == "true"
    want = pa.concat_tables([writer_rows(D1, 2), writer_rows(D2, 1)]).sort_by([("date", "ascending"),
                                                                               ("ad_id", "ascending")])
    assert read_all(uri, opts).equals(want)
    frame = pl.read_delta(uri, storage_options=opts).sort(["date", "ad_id"])
    assert frame.to_arrow().cast(want.schema).equals(want)
    assert day_version(uri, D1) == 2 and day_version(uri, D2) == 1
    infos = s3_commits(s3, "out/tables/totals")
    assert [(i["operation"], i.get("date"), i.get("billing_version"), i.get("manifest_sha256")) for i in infos] == [
        ("WRITE", "2026-11-26", "2", f"{2:064x}"), ("WRITE", "2026-11-27", "1", f"{1:064x}"),
        ("WRITE", "2026-11-26", "1", f"{1:064x}"), ("CREATE TABLE", None, None, None)]


def test_s3_conditional_put_disabled_fails_instead_of_an_unsafe_rename(s3: Any) -> None:
    uri = f"s3://{s3.bucket}/tables/totals"
    with pytest.raises(StorageError, match="conditional put is disabled"):
        replace_day(uri, D1, totals(D1, 1), metadata=meta(1), storage_options={"aws_conditional_put": "disabled"})
    assert not s3.keys("tables/totals/_delta_log/")


def test_s3_a_lost_commit_race_is_rebased(s3: Any) -> None:
    """Writer A's commit PUT of version 2 is held while writer B commits version 2: A's PUT then gets
    412 Precondition Failed from the server, and A commits as version 3. Both days land."""
    uri = f"s3://{s3.bucket}/tables/totals"
    assert _run(_writer(uri, [(D1, 1)])) == [1]  # after version 0, CREATE TABLE
    with log_proxy(s3.endpoint, hold_first_commit=True) as proxy:
        a = _writer(uri, [(D1, 2)], env={**os.environ, "AWS_ENDPOINT_URL": proxy.endpoint})  # via the proxy
        assert proxy.holding.wait(60), "writer A never reached its commit"
        assert _run(_writer(uri, [(D2, 1)])) == [2]  # directly to moto, while A's commit is held
        proxy.release.set()
        assert _run(a) == [3]
    commit_puts = [(r["key"].rsplit("/", 1)[1], r["status"], r["if_none_match"]) for r in proxy.records
                   if r["method"] == "PUT" and r["key"].endswith(".json")]
    assert commit_puts == [(f"{2:020d}.json", 412, "*"), (f"{3:020d}.json", 200, "*")]
    opts = storage_options_for(uri)
    want = pa.concat_tables([writer_rows(D1, 2), writer_rows(D2, 1)]).sort_by([("date", "ascending"),
                                                                               ("ad_id", "ascending")])
    assert read_all(uri, opts).equals(want)
    assert [c.get("date") for c in s3_commits(s3, "tables/totals")] == [
        "2026-11-26", "2026-11-27", "2026-11-26", None]
    assert day_version(uri, D1) == 2


def test_s3_two_processes_replace_two_days_at_once(s3: Any) -> None:
    for attempt in range(2):
        uri = f"s3://{s3.bucket}/t{attempt}/totals"
        _both(uri, versions=5)
        _check_both_landed(uri, versions=5, commits=s3_commits(s3, f"t{attempt}/totals"),
                           opts=storage_options_for(uri))
