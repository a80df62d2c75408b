"""Rows set aside by slice: the slices decode each raw row about once, in one process and spread over
plan / set-aside / run-slice / merge, with outputs byte-identical to slices reading the lake directly."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from billing.cli import cli
from billing.config import ReconcileConfig
from billing.day.outputs import CONTENT_FILES
from billing.run.local import reconcile
from billing.slice import plan as slice_plan
from tests.conftest import DEMO_DATE

SLICES = 12


def disordered(src: Path, dst: Path, *, drop_ingest: bool = False) -> Path:
    """The demo lake with the rows of every raw file in random order (as many producers write them),
    in small row groups: each row group spans the whole file's click_ids, so every slice overlaps it."""
    shutil.copytree(src, dst)
    rng = np.random.default_rng(5)
    for f in sorted((dst / "raw").rglob("*.parquet")):
        t = pq.read_table(f)
        t = t.take(rng.permutation(t.num_rows))
        if drop_ingest:
            t = t.drop_columns(["ingest_time"])
        pq.write_table(t, f, row_group_size=1000)
    return dst


def lake_rows(lake: Path) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in (lake / "raw").rglob("*.parquet"))


def run_local(lake: Path, out: Path, **cfg: object) -> Path:
    result = reconcile(ReconcileConfig(date=DEMO_DATE, raw=str(lake / "raw"), stream=str(lake / "stream"),
                                       out=str(out), memory_limit=2 << 30, slices=SLICES, **cfg))
    return Path(result.commit.url)


def digests(vdir: Path) -> dict[str, str]:
    return {name: hashlib.sha256((vdir / name).read_bytes()).hexdigest() for name in CONTENT_FILES}


def scale(vdir: Path) -> dict:
    return json.loads((vdir / "manifest.json").read_text())["scale"]


def run_distributed(lake: Path, out: Path, caplog: pytest.LogCaptureFixture) -> tuple[Path, Path]:
    """plan → set-aside (each part, one retried) → run-slice × N → merge; the version and the work folder."""
    runner = CliRunner()
    args = ["--date", str(DEMO_DATE), "--raw", str(lake / "raw"), "--stream", str(lake / "stream"),
            "--out", str(out), "--slices", str(SLICES)]
    r = runner.invoke(cli, ["-q", "plan", *args])
    assert r.exit_code == 0, r.output
    uri = r.stdout.strip()
    early = runner.invoke(cli, ["run-slice", "--plan", uri, "--slice", "0"])
    assert early.exit_code == 2 and "have not run: run them first (billing set-aside --plan" in early.stderr
    parts = runner.invoke(cli, ["-q", "set-aside", "--plan", uri])
    assert parts.exit_code == 0, parts.output
    assert int(parts.stdout) >= 1
    caplog.clear()
    again = runner.invoke(cli, ["set-aside", "--plan", uri, "--part", "0"])  # a retried part
    assert again.exit_code == 0 and again.stdout.strip() == "1", again.output
    n_parts = int(parts.stdout)
    # the log names the part as --part addresses it, with the rows read and set aside
    assert re.search(rf"set aside part 0 \(of parts 0\.\.{n_parts - 1}\) of plan \w+: [\d,]+ rows read, "
                     r"[\d,]+ set aside, [\d.]+s", caplog.text), caplog.text
    bad = runner.invoke(cli, ["set-aside", "--plan", uri, "--part", "99"])
    assert bad.exit_code == 2 and "set-aside parts 0.." in bad.stderr
    for k in range(SLICES):
        caplog.clear()
        s = runner.invoke(cli, ["run-slice", "--plan", uri, "--slice", str(k)])
        assert s.exit_code == 0, s.output
        line = re.search(rf"slice {k} \(of slices 0\.\.{SLICES - 1}\) of plan \w+: ([\d,]+) rows in range, "
                         r"([\d,]+) decoded, ([\d,]+) billable, [\d.]+s", caplog.text)
        assert line, caplog.text  # the slice as --slice addresses it; its billable clicks, as reconcile logs them
        stats = json.loads((Path(uri).parent / f"slice-{k:04d}" / "slice.json").read_text())
        assert int(line[1].replace(",", "")) == stats["rows_in_range"]
        assert int(line[2].replace(",", "")) == stats["rows_decoded"]
    m = runner.invoke(cli, ["-q", "merge", "--plan", uri, "--json"])
    assert m.exit_code == 3, m.output
    return out / f"dt={DEMO_DATE}" / "v=1", Path(uri).parent


@pytest.mark.slow
@pytest.mark.parametrize("drop_ingest", [False, True], ids=["disorder", "disorder-noingest"])
def test_disordered_lake_decoded_about_once_on_every_path(demo_factory, tmp_path: Path, monkeypatch, caplog,
                                                          drop_ingest: bool) -> None:
    lake = disordered(demo_factory(9), tmp_path / "lake", drop_ingest=drop_ingest)
    rows = lake_rows(lake)  # every raw file, some beyond the day's horizon

    local_threshold = slice_plan.STRAGGLERS_FROM_AMPLIFICATION
    monkeypatch.setattr(slice_plan, "STRAGGLERS_FROM_AMPLIFICATION", float("inf"))
    direct = run_local(lake, tmp_path / "direct")
    monkeypatch.undo()
    # the measurement sees what reading the lake directly costs here: each slice reads most row groups of
    # its hours and late copies stretch them further, past the point where one process sets rows aside
    assert scale(direct)["decode_amplification"] > local_threshold
    assert scale(direct)["set_aside"] is None

    local = run_local(lake, tmp_path / "local")
    caplog.set_level("INFO", logger="billing")
    fanned, work = run_distributed(lake, tmp_path / "fanout", caplog)
    for vdir, workers in ((local, 1), (fanned, None)):
        sc = scale(vdir)
        assert sc["slices"] == SLICES and sc["decode_amplification"] <= 1.2, sc
        assert sc["set_aside"]["mode"] == ("all" if drop_ingest else "core")
        read = json.loads((vdir / "summary.json").read_text())["ledger"]["rows_read"]
        # the set-aside pass decodes each file it lands once: every file in core mode (their stragglers),
        # only the files the slices do not read directly otherwise
        assert sc["set_aside"]["rows_decoded"] <= rows and sc["set_aside"]["rows_set_aside"] > 0
        assert sc["set_aside"]["rows_decoded"] >= read or drop_ingest
        if workers is not None:
            assert sc["workers"] == workers
        assert digests(vdir) == digests(direct)

    read = json.loads((direct / "summary.json").read_text())["ledger"]["rows_read"]
    stats = [json.loads((work / f"slice-{k:04d}" / "slice.json").read_text()) for k in range(SLICES)]
    assert sum(s["rows_in_range"] for s in stats) == read
    assert all(s["rows_decoded"] >= s["rows_in_range"] and s["seconds"] > 0 for s in stats)
    assert sum(s["rows_decoded"] for s in stats) == scale(fanned)["rows_decoded"]


def test_a_day_that_slices_cheaply_sets_nothing_aside(demo_lake: Path, tmp_path: Path) -> None:
    """One slice decodes the day once: set-aside has nothing to do (Airflow's one no-op part), merge says so."""
    runner = CliRunner()
    args = ["--date", str(DEMO_DATE), "--raw", str(demo_lake / "raw"), "--stream", str(demo_lake / "stream"),
            "--out", str(tmp_path / "out"), "--slices", "1"]
    uri = runner.invoke(cli, ["-q", "plan", *args]).stdout.strip()
    r = runner.invoke(cli, ["-q", "set-aside", "--plan", uri])
    assert r.exit_code == 0 and r.stdout.strip() == "0", r.output
    assert runner.invoke(cli, ["-q", "set-aside", "--plan", uri]).stdout.strip() == "0"  # again: still nothing
    bad = runner.invoke(cli, ["set-aside", "--plan", uri, "--part", "1"])
    assert bad.exit_code == 2 and "sets nothing aside" in bad.stderr
    assert runner.invoke(cli, ["-q", "run-slice", "--plan", uri, "--slice", "0"]).exit_code == 0
    m = runner.invoke(cli, ["-q", "merge", "--plan", uri])
    assert m.exit_code == 3, m.output
    sc = scale(tmp_path / "out" / f"dt={DEMO_DATE}" / "v=1")
    assert sc["set_aside"] is None and sc["slices"] == 1 and 1.0 <= sc["decode_amplification"] <= 1.2


@pytest.mark.parametrize("shape", ["arrival-order", "disorder"])
def test_slices_reading_agrees_with_each_range_on_its_own(demo_factory, tmp_path: Path, shape: str) -> None:
    """The plan's bisection over ranges counts exactly what each slice's own statistics check reads."""
    from billing.run.inputs import open_inputs
    from billing.slice import setaside

    lake = demo_factory(9) if shape == "arrival-order" else disordered(demo_factory(9), tmp_path / "lake")
    cfg = ReconcileConfig(date=DEMO_DATE, raw=str(lake / "raw"), stream=str(lake / "stream"), out=str(tmp_path / "o"))
    inputs, _ = open_inputs(cfg)
    for n in (2, 7, 40):
        ranges = slice_plan.plan_ranges(inputs.sources, n, cfg.snowflake_epoch_ms)
        arrival = setaside.arrival_bounds(ranges, cfg.snowflake_epoch_ms)
        for src in inputs.sources:
            for mode, bounds in (("all", None), ("core", arrival)):
                fast = slice_plan.slices_reading(src, ranges, bounds)
                assert sum(c * k for (_, _, c, _), k in zip(src.row_group_click_ranges, fast, strict=True)) == sum(
                    setaside.file_decode(src, r, mode, cfg.snowflake_epoch_ms) for r in ranges), (n, src.path, mode)
