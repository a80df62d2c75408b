-- reads: drift_priced
-- returns: the day's drift in key order
-- The day's drift in key order, as drift.parquet is published (plus explained_clicks, for the summary).
SELECT * FROM drift_priced ORDER BY ad_id, window_start;
