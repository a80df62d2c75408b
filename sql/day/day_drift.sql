-- reads: drift_priced
-- creates: day_drift, day_totals
-- The day's drift as drift.parquet publishes it (plus explained_clicks, for the summary), and totals.parquet:
-- every key with batch clicks (a batch window always has clicks: sql/slice/all_windows.sql keeps windows with
-- a winner); spend is NULL when the raw log carries no cost ({totals_spend}), else 0 for none.
-- Views: the day's millions of keys stay in drift_priced (spilled past the memory limit); the outputs and the
-- report read them from here, a batch at a time. money_at_risk_micros fits BIGINT: sql/day/money_overflow.sql
-- checked it.
CREATE OR REPLACE TEMP VIEW day_drift AS
SELECT ad_id, window_start, batch_clicks, stream_clicks, delta, status, flagged, cause, batch_spend_micros,
       stream_spend_micros, money_at_risk_micros::BIGINT AS money_at_risk_micros, explained_clicks
FROM drift_priced;
CREATE OR REPLACE TEMP VIEW day_totals AS
SELECT ad_id, window_start, batch_clicks AS clicks, {totals_spend} AS spend_micros
FROM day_drift
WHERE batch_clicks > 0;
