"""
### billing_reconcile

Every night, the authoritative ad-click totals of yesterday (UTC), and where the stream side drifted.

`wait_for_raw_horizon` → `plan` → `set_aside` × P → `run_slice` × N (dynamic task mapping: on a
Celery or Kubernetes executor the parts and slices run on many workers) → `merge` (publishes the day
atomically) →
`check_drift` branches to `alert_drift` when drift was flagged (billing's exit code 3), without
failing any data task. `set_aside` partitions the rows that the slices could not read cheaply
from the lake (late copies, files spanning many slices) by slice, so the slices between them
decode each raw row about once; a plan that needs none has one part that does nothing.
`export_invoicing` (off by default) feeds the invoicing database after `merge`.
`merge` also brings the Delta tables under `OUT/tables/` level (`totals`, `drift`, `days`...): readers
find every day's current version there without this DAG doing anything more. Every task is
idempotent: the plan id is a hash of its inputs, a part and a slice overwrite their own files, `merge`
commits nothing when the outputs are unchanged (nor to the tables when they hold the version), and the
export replaces the day in one transaction, so Airflow retries are safe.

**Deploy.** Workers run an image with this repository installed (`pip install .`, or the built
wheel); the tasks import `billing` and call it in-process, nothing is shelled out. The DAG reads
Airflow Variables `billing_raw`, `billing_stream`, `billing_out` (local paths or `s3://`),
optional `billing_slices` (default 8: this DAG fans out), `billing_lateness` and `billing_s3_endpoint`.
They are the top layer of billing's config (`ReconcileConfig.load`): what they leave unset comes from
the workers' `BILLING_*` environment variables (e.g. `BILLING_S3_MAX_ATTEMPTS`, `BILLING_LOCK_TTL`),
else billing's defaults. S3 credentials come from the workers' standard AWS chain (environment,
instance or pod role).

**Invoicing export (off by default).** Set the Variable `billing_invoicing_uri` to
`postgresql://USER@HOST:PORT/DB?table=SCHEMA.TABLE` and `export_invoicing` exports the day's current
totals after `merge`, replacing the day's rows in one transaction (a retry, or a re-run of an unchanged
day, changes nothing; an older version than the one exported fails the task instead of rolling back).
Unset or empty, the task is skipped. Keep the password out of the Variable (Variables are shown in the
UI): the workers' `PGPASSWORD` or `~/.pgpass` supply it, as for any libpq client.

**Stream side in PostgreSQL.** When the Airflow Connection `billing_stream_db` exists, the stream side is
its sink table (it wins over the `billing_stream` Variable): a Postgres connection whose extra holds
`{"table": "SCHEMA.TABLE"}` (and any libpq parameter, e.g. `sslmode`). Its URI, password included, is
handed to billing in-process by `plan` (which checks the table) and `merge` (which reads it, in one
snapshot); plan.json and every output hold it without the password. The Variable
`billing_stream_columns` maps the table's columns (`ad_id=...,window_start=...,clicks=...`). The
`billing_stream` Variable may be a `postgresql://` URI too, without a password: the workers'
PGPASSWORD or ~/.pgpass then supplies it.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.sdk import Connection, Variable, dag, task

#: This DAG's own default (it fans out); "" leaves a setting to the environment and billing's config.
DEFAULTS = {"billing_slices": "8", "billing_lateness": "", "billing_s3_endpoint": "", "billing_invoicing_uri": "",
            "billing_stream_columns": "", "billing_stream": ""}
#: The Airflow Connection of a stream side kept in a PostgreSQL sink table (optional).
STREAM_CONN_ID = "billing_stream_db"


def setting(name: str) -> str | None:
    return Variable.get(name, default=DEFAULTS.get(name))


def stream_uri() -> str | None:
    """The ``billing_stream_db`` Connection's URI (password included: never logged), else ``billing_stream``."""
    try:  # where Connection.get raises it from (airflow.exceptions before the task SDK had its own)
        from airflow.sdk.exceptions import AirflowNotFoundException
    except ImportError:
        from airflow.exceptions import AirflowNotFoundException  # type: ignore[no-redef]

    try:
        conn = Connection.get(STREAM_CONN_ID)
    except AirflowNotFoundException:
        return setting("billing_stream")
    return conn.get_uri().replace("postgres://", "postgresql://", 1)


def billing_config(day: str) -> Any:
    """The day's config: Variables > the worker's BILLING_* environment > billing's defaults."""
    from billing.config import ReconcileConfig

    return ReconcileConfig.load(cli={"date": day, "raw": setting("billing_raw"), "stream": stream_uri(),
                                     "stream_columns": setting("billing_stream_columns"),
                                     "out": setting("billing_out"), "lateness": setting("billing_lateness"),
                                     "slices": setting("billing_slices"),
                                     "s3_endpoint": setting("billing_s3_endpoint")})


def local_settings(*names: str) -> dict[str, Any]:
    """This worker's settings for a planned day (the plan carries the rest), layered alike."""
    from billing.config import ReconcileConfig

    return ReconcileConfig.layer(names, cli={"s3_endpoint": setting("billing_s3_endpoint")})


@dag(
    schedule="@daily",
    start_date=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": dt.timedelta(minutes=5)},
    tags=["billing"],
    doc_md=__doc__,
)
def billing_reconcile() -> None:
    @task.sensor(poke_interval=300, timeout=8 * 3600, mode="reschedule")
    def wait_for_raw_horizon(data_interval_start: dt.datetime | None = None) -> bool:
        """True once every arrival hour of the horizon (D, and D+1 below the lateness) has its _SUCCESS."""
        from billing.io.raw import Horizon
        from billing.io.storage import open_store

        day = data_interval_start.date()
        cfg = billing_config(day.isoformat())
        raw = open_store(cfg.raw, endpoint=cfg.s3_endpoint, max_attempts=cfg.s3_max_attempts)
        horizon = Horizon(day, cfg.lateness)
        hours = [(day, h) for h in range(24)]
        hours += [(horizon.next_day, h) for h in range(24) if horizon.reads_hour_of_next_day(h)]
        missing = [f"dt={d.isoformat()}/hour={h:02d}" for d, h in hours
                   if not raw.exists(f"dt={d.isoformat()}/hour={h:02d}/_SUCCESS")]
        if missing:
            logging.getLogger("billing.airflow").info("waiting for %d hour(s) of %s: %s", len(missing), raw.uri,
                                                      ", ".join(missing[:5]))
        return not missing

    @task
    def plan(data_interval_start: dt.datetime | None = None) -> dict[str, Any]:
        from billing.run.distributed import plan_day

        p, uri, parts = plan_day(billing_config(data_interval_start.date().isoformat()))
        # at least one (no-op) part: a mapped task over nothing would skip everything downstream
        return {"plan": uri, "slices": list(range(len(p.ranges))), "parts": list(range(parts)) or [None]}

    @task
    def slices_of(planned: dict[str, Any]) -> list[int]:
        return planned["slices"]

    @task
    def parts_of(planned: dict[str, Any]) -> list[int | None]:
        return planned["parts"]

    @task
    def set_aside(planned: dict[str, Any], part: int | None) -> int:
        from billing.run.distributed import set_aside_planned

        return set_aside_planned(planned["plan"], part, **local_settings("s3_endpoint", "s3_max_attempts"))

    @task
    def run_slice(planned: dict[str, Any], k: int) -> str:
        from billing.run.distributed import run_planned_slice

        return run_planned_slice(planned["plan"], k, **local_settings("s3_endpoint", "s3_max_attempts"))

    @task
    def merge(planned: dict[str, Any]) -> dict[str, Any]:
        from billing.errors import BadInputError
        from billing.io.stream_source import is_database
        from billing.run.distributed import merge_plan

        try:
            stream = stream_uri()
            result = merge_plan(planned["plan"], **local_settings("s3_endpoint", "s3_max_attempts", "lock_ttl"),
                                stream=stream if stream and is_database(stream) else None)
        except BadInputError as e:  # bad input does not get better with retries
            from airflow.exceptions import AirflowFailException

            raise AirflowFailException(str(e)) from e
        return {"exit_code": result.exit_code, "status": result.summary["status"], "version": result.commit.version,
                "unchanged": result.commit.unchanged, "url": result.commit.url,
                "flagged": result.summary["drift"]["flagged"]}

    @task.branch
    def check_drift(merged: dict[str, Any]) -> str:
        return "alert_drift" if merged["exit_code"] == 3 else "billable"

    @task
    def alert_drift(merged: dict[str, Any]) -> str:
        import logging

        message = (f"billing: drift flagged in {merged['flagged']} windows; report: {merged['url']}/report.html")
        logging.getLogger("billing.airflow").warning(message)
        return message

    @task
    def billable(merged: dict[str, Any]) -> str:
        return f"billing: {merged['status']}: {merged['url']}"

    @task
    def export_invoicing(merged: dict[str, Any], data_interval_start: dt.datetime | None = None) -> str:
        """The day's current totals into the invoicing database; skipped unless ``billing_invoicing_uri`` is set."""
        from airflow.exceptions import AirflowFailException, AirflowSkipException

        uri = setting("billing_invoicing_uri")
        if not uri:
            raise AirflowSkipException("billing_invoicing_uri is not set: the invoicing export is off")
        from billing.day.export import export_current
        from billing.day.publish import Day
        from billing.errors import BadInputError
        from billing.io.storage import open_store

        cfg = billing_config(data_interval_start.date().isoformat())
        out = open_store(cfg.out, endpoint=cfg.s3_endpoint, max_attempts=cfg.s3_max_attempts)
        try:
            message = export_current(Day(out, cfg.date), uri).message()
        except BadInputError as e:  # a refused rollback, a bad URI or missing rights: retries do not help
            raise AirflowFailException(str(e)) from e
        logging.getLogger("billing.airflow").info("%s", message)
        return message

    planned = plan()
    wait_for_raw_horizon() >> planned
    aside = set_aside.partial(planned=planned).expand(part=parts_of(planned))
    done = run_slice.partial(planned=planned).expand(k=slices_of(planned))
    aside >> done
    merged = merge(planned)
    done >> merged
    check_drift(merged) >> [alert_drift(merged), billable(merged)]
    export_invoicing(merged)


billing_reconcile()
