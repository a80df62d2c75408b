-- reads: stream_windows, stream_rows
-- returns: the first key whose summed clicks or spend overflows int64, or no row
-- Stream-side sums that do not fit BIGINT, checked on stream_windows before sql/day/drift.sql reads it:
-- the first key (by ad_id, window_start) whose summed clicks or spend overflows int64, with its sums
-- (summed again from its sink rows, as stream_windows leaves them NULL); no row when all fit.
WITH first_key AS (
  SELECT ad_id, window_start FROM stream_windows WHERE overflows ORDER BY ad_id, window_start LIMIT 1
)
SELECT
  k.ad_id,
  k.window_start,
  sum(r.clicks)::VARCHAR AS clicks,
  (CASE WHEN count(r.spend_micros) = count(*) THEN sum(r.spend_micros) END)::VARCHAR AS spend_micros
FROM first_key AS k
JOIN stream_rows AS r USING (ad_id, window_start)
WHERE r.reason IS NULL
GROUP BY k.ad_id, k.window_start;
