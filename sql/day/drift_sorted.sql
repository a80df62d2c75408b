-- reads: day_drift
-- returns: the day's drift in key order
-- The day's drift in key order, as drift.parquet is published (plus explained_clicks, for the summary; the
-- writer takes totals.parquet's rows from it as well, billing.day.outputs).
SELECT * FROM day_drift ORDER BY ad_id, window_start;
