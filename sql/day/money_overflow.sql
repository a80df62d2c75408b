-- reads: drift_priced
-- returns: the first key whose money at risk overflows int64, or no row
-- Money at risk that does not fit BIGINT (int64 micros), checked on drift_priced before drift.parquet is
-- fetched: the first key (by ad_id, window_start) whose money overflows; no row when all fit.
SELECT ad_id, window_start, money_at_risk_micros::VARCHAR AS money_at_risk_micros
FROM drift_priced
WHERE money_at_risk_micros NOT BETWEEN -9223372036854775808 AND 9223372036854775807
ORDER BY ad_id, window_start
LIMIT 1;
