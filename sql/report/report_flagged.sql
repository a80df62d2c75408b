-- reads: day_drift
-- returns: the flagged windows in key order, with drift_flagged.csv's columns
-- What drift_flagged.csv lists (billing.report.csvs), read a batch at a time.
SELECT ad_id, window_start, batch_clicks, stream_clicks, delta, status, cause, batch_spend_micros,
       money_at_risk_micros
FROM day_drift
WHERE flagged
ORDER BY ad_id, window_start;
