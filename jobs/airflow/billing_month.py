"""
### billing_month

Once a month, finance's books of the month that just ended: `OUT/month=YYYY-MM/` (month.html,
month_ads.csv, month_days.csv, month.json), built from the days `billing_reconcile` published.

`wait_for_last_day` waits (rescheduling itself, so it holds no worker slot) until the month's last
day has a committed version; `build_month` then runs `billing month` for the month of the data
interval. It runs whether the sensor succeeded or timed out: a month with missing days still
builds and names them, which is what finance needs to chase them. Retries are safe: a re-run over
the same published days commits nothing ("unchanged"); a later run after a restatement or a
sign-off commits the next version of the month.

**Deploy.** Same image, Variables and credentials as `billing_reconcile` (`billing_out`, optional
`billing_s3_endpoint`); the anomaly rule comes from the workers' `BILLING_ANOMALY_*` environment
variables or billing's defaults. Sign-offs are made by people (`billing sign-off`), never by this DAG.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import Variable, dag, task

DEFAULTS = {"billing_s3_endpoint": ""}


def setting(name: str) -> str | None:
    return Variable.get(name, default=DEFAULTS.get(name))


def out_store() -> Any:
    from billing.config import ReconcileConfig
    from billing.io.storage import open_store

    v = ReconcileConfig.layer(("out", "s3_endpoint", "s3_max_attempts"),
                              cli={"out": setting("billing_out"), "s3_endpoint": setting("billing_s3_endpoint")})
    return open_store(v["out"], endpoint=v["s3_endpoint"], max_attempts=v["s3_max_attempts"])


@dag(
    schedule="@monthly",
    start_date=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": dt.timedelta(minutes=10)},
    tags=["billing"],
    doc_md=__doc__,
)
def billing_month() -> None:
    @task.sensor(poke_interval=900, timeout=36 * 3600, mode="reschedule")
    def wait_for_last_day(data_interval_end: dt.datetime | None = None) -> bool:
        """True once the month's last day (the day before the interval's end) has a committed version."""
        from billing.day.publish import Day

        last = data_interval_end.date() - dt.timedelta(days=1)
        return Day(out_store(), last).current_version() is not None

    @task(trigger_rule="all_done")
    def build_month(data_interval_start: dt.datetime | None = None) -> dict[str, Any]:
        from billing.anomaly_settings import ANOMALY_FIELDS
        from billing.config import ReconcileConfig
        from billing.month.anomalies import AnomalyRule
        from billing.month.build import build_month as build

        rule = AnomalyRule.from_settings(ReconcileConfig.layer(ANOMALY_FIELDS))
        book, commit = build(out_store(), data_interval_start.strftime("%Y-%m"), rule)
        verdict = book.verdict()
        return {"month": book.month, "closed": verdict["closed"], "missing": verdict["missing"],
                "not_signed_off": verdict["not_signed_off"], "open_adjustments": verdict["open_adjustments"],
                "version": commit.version, "unchanged": commit.unchanged, "url": commit.url}

    wait_for_last_day() >> build_month()


billing_month()
