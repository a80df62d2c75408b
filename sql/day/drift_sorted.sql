-- reads: drift_priced
-- returns: the day's drift in key order
-- The day's drift in key order, as drift.parquet is published (plus explained_clicks, for the summary).
-- money_at_risk_micros fits BIGINT here: sql/day/money_overflow.sql checked it.
SELECT ad_id, window_start, batch_clicks, stream_clicks, delta, status, flagged, cause, batch_spend_micros,
       stream_spend_micros, money_at_risk_micros::BIGINT AS money_at_risk_micros, explained_clicks
FROM drift_priced
ORDER BY ad_id, window_start;
