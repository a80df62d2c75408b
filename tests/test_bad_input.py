"""Bad input: structurally unusable input stops the run with exit 2, one line naming the file or value,
and publishes nothing. Merely bad rows are quarantined (see test_rules)."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from billing.cli import cli
from tests.lake import at, click, write_raw, write_stream

GOOD = "dt=2026-11-26/hour=10/good.parquet"


def good_lake(tmp: Path) -> None:
    write_raw(tmp / "raw", GOOD, [click(at(10), seq=i) for i in range(50)])
    write_stream(tmp / "stream", [(1, at(10), 50)])


def invoke(tmp: Path, *extra: str, raw: str | None = None, stream: str | None = None, out: str | None = None):
    args = ["reconcile", "--date", "2026-11-26", "--raw", raw or str(tmp / "raw"),
            "--stream", stream or str(tmp / "stream"), "--out", out or str(tmp / "out"), *extra]
    return CliRunner().invoke(cli, args)


def published_nothing(out: Path) -> bool:
    day = out / "dt=2026-11-26"
    return not day.exists() or sorted(p.name for p in day.iterdir()) == []


def truncated(tmp: Path) -> str:
    p = tmp / "raw" / "dt=2026-11-26/hour=11/cut.parquet"
    write_raw(tmp / "raw", "dt=2026-11-26/hour=11/cut.parquet", [click(at(11), seq=i) for i in range(500)])
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return "hour=11/cut.parquet: not a readable Parquet file"


def corrupt_pages(tmp: Path) -> str:
    rel = "dt=2026-11-26/hour=11/rot.parquet"
    p = tmp / "raw" / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    rows = [click(at(11, i % 60), seq=i % 4096, ad=i % 97) for i in range(20_000)]
    from tests.lake import RAW_SCHEMA

    pq.write_table(pa.Table.from_pylist(rows, schema=RAW_SCHEMA), p, compression="zstd")
    data = bytearray(p.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8
    start = 64
    data[start:len(data) - footer - 64] = bytes(len(data) - footer - 64 - start)  # zero the pages, keep the footer
    p.write_bytes(bytes(data))
    return "hour=11/rot.parquet: corrupt Parquet data"


def not_parquet(tmp: Path) -> str:
    (tmp / "raw" / "dt=2026-11-26/hour=10/notes.txt").write_text("click_id,ad_id\n1,2\n")
    return "hour=10/notes.txt: not a readable Parquet file"


def drop_column(name: str, new_type: pa.DataType | None = None) -> Callable[[Path], str]:
    def make(tmp: Path) -> str:
        from tests.lake import RAW_SCHEMA

        fields = [f for f in RAW_SCHEMA if f.name != name]
        if new_type is not None:
            fields.append(pa.field(name, new_type))
        schema = pa.schema(fields)
        row = click(at(11), seq=7)
        if new_type is not None:
            row[name] = str(row[name])
        write_raw(tmp / "raw", "dt=2026-11-26/hour=11/odd.parquet", [{k: row[k] for k in schema.names}], schema)
        if new_type is None:
            return f"hour=11/odd.parquet: required column {name!r} is missing"
        kind = "a timestamp" if name.endswith("time") else "an integer"
        return f"hour=11/odd.parquet: column {name!r} has type string, expected {kind}"
    return make


def overflow(tmp: Path) -> str:
    schema = pa.schema([("click_id", pa.uint64()), ("ad_id", pa.int64()), ("event_time", pa.timestamp("us"))])
    write_raw(tmp / "raw", "dt=2026-11-26/hour=11/big.parquet",
              [{"click_id": 2**63 + 5, "ad_id": 1, "event_time": at(11).replace(tzinfo=None)}], schema)
    return "hour=11/big.parquet: column 'click_id' does not fit int64"


def stream_wrong_type(tmp: Path) -> str:
    p = tmp / "stream" / "dt=2026-11-26" / "part-0.parquet"
    pq.write_table(pa.table({"ad_id": pa.array([1], pa.int64()), "window_start": pa.array([at(10)]),
                             "clicks": pa.array(["50"])}), p)
    return "dt=2026-11-26/part-0.parquet: column 'clicks' has type string, expected an integer"


CASES: dict[str, Callable[[Path], str]] = {
    "truncated parquet": truncated,
    "corrupt data pages": corrupt_pages,
    "non-parquet file in a partition": not_parquet,
    "required column missing": drop_column("ad_id"),
    "click_id as string": drop_column("click_id", pa.string()),
    "event_time as string": drop_column("event_time", pa.string()),
    "click_id overflows int64": overflow,
    "stream clicks as string": stream_wrong_type,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_unusable_file_exits_2_and_publishes_nothing(tmp_path: Path, case: str) -> None:
    good_lake(tmp_path)
    expected = CASES[case](tmp_path)
    r = invoke(tmp_path)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()  # progress logs may precede it; the reason is one last line
    errors = [line for line in lines if line.startswith("billing: ")]
    assert errors == [lines[-1]] and lines[-1].startswith("billing: error: "), r.stderr
    assert expected in lines[-1]
    assert published_nothing(tmp_path / "out")


def test_bad_input_leaves_a_published_day_untouched(tmp_path: Path) -> None:
    good_lake(tmp_path)
    assert invoke(tmp_path).exit_code == 0
    before = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    truncated(tmp_path)
    assert invoke(tmp_path).exit_code == 2
    after = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert after == before


@pytest.mark.parametrize(("args", "message"), [
    (["--date", "26/11/2026"], "billing: error: not a date: '26/11/2026' (use YYYY-MM-DD)"),
    (["--date", "2026-11-31"], "billing: error: not a date: '2026-11-31' (use YYYY-MM-DD)"),
])
def test_unparseable_date(tmp_path: Path, args: list[str], message: str) -> None:
    good_lake(tmp_path)
    r = invoke(tmp_path, *args)
    assert (r.exit_code, r.stderr.strip()) == (2, message)


def test_no_raw_partition_exits_2_unless_allow_empty(tmp_path: Path) -> None:
    good_lake(tmp_path)
    r = invoke(tmp_path, "--date", "2026-11-20")
    assert r.exit_code == 2
    assert r.stderr.strip() == (f"billing: error: no raw partition dt=2026-11-20 under {tmp_path / 'raw'} "
                                f"(use --allow-empty to publish an empty day)")
    write_stream(tmp_path / "stream", [], date=dt.date(2026, 11, 20))
    r = invoke(tmp_path, "--date", "2026-11-20", "--allow-empty", "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["status"] == "billable" and s["ledger"]["rows_read"] == 0 and s["ledger"]["billable_clicks"] == 0
    assert pq.read_table(tmp_path / "out/dt=2026-11-20/v=1/totals.parquet").num_rows == 0


def test_missing_stream_partition_exits_2_unless_optional(tmp_path: Path) -> None:
    good_lake(tmp_path)
    (tmp_path / "stream" / "dt=2026-11-26" / "part-0.parquet").unlink()
    r = invoke(tmp_path)
    assert r.exit_code == 2 and "no stream partition dt=2026-11-26" in r.stderr
    assert published_nothing(tmp_path / "out")
    r = invoke(tmp_path, "--stream-optional", "--json")
    assert r.exit_code == 3
    s = json.loads(r.stdout)
    assert s["drift"]["by_status"] == {"missing_in_stream": 1} and s["drift"]["by_cause"] == {
        "missing_window": {"keys": 1, "clicks": 50}}


def test_missing_raw_root(tmp_path: Path) -> None:
    good_lake(tmp_path)
    r = invoke(tmp_path, raw=str(tmp_path / "nope"))
    assert (r.exit_code, r.stderr.strip()) == (2, f"billing: error: no such directory: {tmp_path / 'nope'}")


def test_output_inside_raw_is_refused(tmp_path: Path) -> None:
    good_lake(tmp_path)
    r = invoke(tmp_path, out=str(tmp_path / "raw" / "billing"))
    assert r.exit_code == 2
    assert r.stderr.strip() == (f"billing: error: --out {tmp_path / 'raw' / 'billing'} lies inside --raw "
                                f"{tmp_path / 'raw'}: outputs would become inputs")
    assert not (tmp_path / "raw" / "billing").exists()


def test_values_never_reach_sql_text(tmp_path: Path) -> None:
    """A path and values that would break SQL built by string formatting are read as data."""
    good_lake(tmp_path)
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=12/x'); DROP TABLE clicks; --.parquet",
              [click(at(12), seq=1, note="'; DELETE FROM winners; --")])
    r = invoke(tmp_path, "--json")
    assert r.exit_code == 3, r.output  # the stream does not know the extra click: drift, not an error
    assert json.loads(r.stdout)["ledger"]["billable_clicks"] == 51


@pytest.mark.integration
def test_missing_bucket(s3, tmp_path: Path) -> None:
    good_lake(tmp_path)
    r = invoke(tmp_path, raw=f"s3://{s3.bucket}-missing/raw")
    assert r.exit_code == 2
    assert r.stderr.strip() == f"billing: error: cannot list s3://{s3.bucket}-missing/raw: NoSuchBucket"
    assert published_nothing(tmp_path / "out")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def moto_with_auth() -> Iterator[str]:
    """A second moto server that checks credentials (only IAM-created keys are valid)."""
    port = _free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.integration
def test_wrong_credentials(moto_with_auth: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good_lake(tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
    r = invoke(tmp_path, "--s3-endpoint", moto_with_auth, raw="s3://lake/raw")
    assert r.exit_code == 2
    assert r.stderr.strip() == "billing: error: cannot list s3://lake/raw: InvalidAccessKeyId"
    assert "wrong-secret-value" not in r.output
    assert published_nothing(tmp_path / "out")


# --- issue 10: roots that overlap, spend that overflows int64 ------------------------------------

def _roots(tmp: Path, case: str) -> tuple[dict[str, str], str]:
    """(raw, stream, out) for an overlapping layout, and the expected one-line reason."""
    raw, stream = tmp / "raw", tmp / "stream"
    (tmp / "link").symlink_to(stream)
    cases = {
        "out is stream": ({"out": str(stream)}, f"--out {stream} is the same location as --stream {stream}"),
        "out is stream/ (trailing slash)": ({"out": f"{stream}/"}, f"--out {stream} is the same location as --stream"),
        "out inside stream": ({"out": str(stream / "billing")}, f"--out {stream / 'billing'} lies inside --stream"),
        "stream inside out": ({"out": str(tmp)}, f"--raw {raw} lies inside --out {tmp}"),
        "out via ..": ({"out": str(tmp / "raw" / ".." / "stream")}, f"--out {stream} is the same location as"),
        "out via a symlink": ({"out": str(tmp / "link" / "x")}, f"--out {stream / 'x'} lies inside --stream"),
        "out as file://": ({"out": f"file://{stream}"}, f"--out {stream} is the same location as --stream"),
        "raw inside out": ({"out": str(tmp / "o"), "raw": str(tmp / "o" / "raw")},
                           f"--raw {tmp / 'o' / 'raw'} lies inside --out {tmp / 'o'}"),
        "out is raw": ({"out": str(raw)}, f"--out {raw} is the same location as --raw {raw}"),
        "stream is raw": ({"stream": f"{raw}//"}, f"--stream {raw} is the same location as --raw {raw}"),
        "stream inside raw": ({"stream": str(raw / "agg")}, f"--stream {raw / 'agg'} lies inside --raw {raw}"),
    }
    return cases[case]


@pytest.mark.parametrize("case", ["out is stream", "out is stream/ (trailing slash)", "out inside stream",
                                  "stream inside out", "out via ..", "out via a symlink", "out as file://",
                                  "raw inside out", "out is raw", "stream is raw", "stream inside raw"])
def test_overlapping_roots_are_refused(tmp_path: Path, case: str) -> None:
    good_lake(tmp_path)
    if case == "raw inside out":
        (tmp_path / "o").mkdir()
        (tmp_path / "raw").rename(tmp_path / "o" / "raw")
    if case == "stream inside raw":
        (tmp_path / "stream").rename(tmp_path / "raw" / "agg")
    roots, expected = _roots(tmp_path, case)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    r = invoke(tmp_path, **roots)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("billing: error: ") and expected in lines[0], r.stderr
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing written anywhere


def test_out_equal_to_stream_used_to_read_its_own_summary(tmp_path: Path) -> None:
    """The issue's case: a first run published into the stream root, the second read summary.json as stream
    data. Both are now refused before anything is written."""
    good_lake(tmp_path)
    for _ in range(2):
        r = invoke(tmp_path, out=str(tmp_path / "stream"))
        assert r.exit_code == 2 and "is the same location as --stream" in r.stderr
    assert not (tmp_path / "stream" / "dt=2026-11-26" / "v=1").exists()


@pytest.mark.integration
@pytest.mark.parametrize(("out", "stream", "expected"), [
    ("{b}/stream/", "{b}/stream", "--out s3://{bucket}/stream is the same location as --stream s3://{bucket}/stream"),
    ("{b}//stream/billing", "{b}/stream",
     "--out s3://{bucket}/stream/billing lies inside --stream s3://{bucket}/stream"),
    ("{b}", "{b}/stream", "--stream s3://{bucket}/stream lies inside --out s3://{bucket}"),
    ("{b}/stream/../out", "{b}/stream", "S3 URI with a '.' or '..' segment: s3://{bucket}/stream/../out"),
])
def test_overlapping_roots_on_s3_are_refused(s3, tmp_path: Path, out: str, stream: str, expected: str) -> None:
    good_lake(tmp_path)
    b = f"s3://{s3.bucket}"
    stream_uri = s3.upload_tree(tmp_path / "stream", "stream")
    assert stream_uri == stream.format(b=b)
    r = invoke(tmp_path, stream=stream.format(b=b), out=out.format(b=b))
    assert r.exit_code == 2, r.output
    assert r.stderr.strip() == "billing: error: " + expected.format(bucket=s3.bucket) + (
        "" if "segment" in expected else ": outputs would become inputs")
    assert s3.keys() == sorted(f"stream/{p.relative_to(tmp_path / 'stream').as_posix()}"
                               for p in (tmp_path / "stream").rglob("*") if p.is_file())


BIG = 2**62  # two of these make 2**63, one more than int64 holds


def test_window_spend_overflowing_int64_is_exit_2_naming_ad_and_window(tmp_path: Path) -> None:
    write_raw(tmp_path / "raw", GOOD, [click(at(10), seq=i, cost=1_000) for i in range(50)]
              + [click(at(11, 7), ad=42, seq=1, cost=BIG), click(at(11, 7, 30), ad=42, seq=2, cost=BIG)])
    write_stream(tmp_path / "stream", [(1, at(10), 50)])
    r = invoke(tmp_path)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert lines[-1] == ("billing: error: spend of ad 42 in window 2026-11-26 11:07 UTC sums to "
                         f"{2 * BIG} micros, more than int64 holds (cost_micros too large?)")
    assert not [line for line in lines[:-1] if line.startswith("billing: ") or "Traceback" in line]
    assert published_nothing(tmp_path / "out")


def test_day_spend_overflowing_int64_across_slices_is_exit_2_naming_the_day(tmp_path: Path) -> None:
    """Every window and every slice fits; the day's sum does not."""
    rows = [click(at(h), ad=h, seq=1, cost=BIG) for h in (1, 20)]
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=01/a.parquet", rows[:1])
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=20/b.parquet", rows[1:])
    write_stream(tmp_path / "stream", [(1, at(1), 1), (20, at(20), 1)])
    for slices in ("1", "2"):
        r = invoke(tmp_path, "--slices", slices)
        assert r.exit_code == 2, r.output
        assert r.stderr.strip().splitlines()[-1] == (
            f"billing: error: 2026-11-26: billable spend sums to {2 * BIG} micros, more than int64 holds "
            f"(cost_micros too large?)")
        assert published_nothing(tmp_path / "out")


INT64_MAX = 2**63 - 1


def test_stream_sums_overflowing_int64_are_exit_2_naming_the_key(tmp_path: Path) -> None:
    write_raw(tmp_path / "raw", GOOD, [click(at(10), seq=i) for i in range(50)])
    write_stream(tmp_path / "stream", [(1, at(10), 50), (7, at(10, 5), 1), (7, at(10, 5), INT64_MAX)])
    r = invoke(tmp_path)
    assert r.exit_code == 2, r.output
    assert r.stderr.strip().splitlines()[-1] == (
        f"billing: error: stream rows of ad 7 in window 2026-11-26 10:05 UTC sum to {INT64_MAX + 1} clicks and "
        f"no spend micros: more than int64 holds")
    assert published_nothing(tmp_path / "out")
    # spend alone overflowing: two rows of one key, each fitting
    write_stream(tmp_path / "stream", [(1, at(10), 50, ), (7, at(10, 5), 1), (7, at(10, 5), 1)],
                 spend=[50_000, 1, INT64_MAX])
    r = invoke(tmp_path)
    assert r.exit_code == 2, r.output
    assert "ad 7 in window 2026-11-26 10:05 UTC sum to 2 clicks and" in r.stderr
    assert published_nothing(tmp_path / "out")


def test_money_at_risk_overflowing_int64_is_exit_2_naming_the_key(tmp_path: Path) -> None:
    """Each stream key fits int64, but its drift priced at the window's average cost does not."""
    write_raw(tmp_path / "raw", GOOD, [click(at(10), seq=i, cost=1_000) for i in range(50)])
    write_stream(tmp_path / "stream", [(1, at(10), 2**62)])
    r = invoke(tmp_path)
    assert r.exit_code == 2, r.output
    want = (2**62 - 50) * 1_000
    assert r.stderr.strip().splitlines()[-1] == (
        f"billing: error: money at risk of ad 1 in window 2026-11-26 10:00 UTC is {want} micros: "
        f"more than int64 holds")
    assert published_nothing(tmp_path / "out")


def test_day_sums_past_int64_are_reported_exactly(tmp_path: Path) -> None:
    """Two keys whose |delta| each fits int64 but whose sum does not: summary.json holds the exact sum."""
    write_raw(tmp_path / "raw", GOOD, [click(at(10), seq=i, cost=None) for i in range(50)])
    write_stream(tmp_path / "stream", [(1, at(10), 50), (2, at(11), 2**62), (3, at(12), 2**62)])
    r = invoke(tmp_path, "--json")
    assert r.exit_code == 3, r.output
    s = json.loads(r.stdout)
    assert s["stream"]["clicks"] == 50 + 2**63
    assert s["drift"]["abs_delta_clicks"] == s["drift"]["net_delta_clicks"] == 2**63
    from deltalake import DeltaTable  # the days table holds them exactly too (DECIMAL(38, 0))

    (day,) = DeltaTable(str(tmp_path / "out" / "tables" / "days")).to_pyarrow_table().to_pylist()
    assert (day["stream_clicks"], day["abs_delta_clicks"], day["net_delta_clicks"]) == (50 + 2**63, 2**63, 2**63)


@pytest.mark.parametrize("location", ["mysql://billing:s3cr3t-pw@db.example/prod?table=agg",
                                      "clickhouse://u:s3cr3t-pw@ch:9000/db", "ftp://u:s3cr3t-pw@host/lake"])
def test_an_unsupported_location_is_exit_2_without_its_password(tmp_path: Path, location: str) -> None:
    good_lake(tmp_path)
    r = invoke(tmp_path, stream=location)
    assert r.exit_code == 2, r.output
    assert "unsupported location" in r.output and "s3cr3t-pw" not in r.output
    assert published_nothing(tmp_path / "out")
