-- reads: stream_windows
-- returns: the first key whose summed clicks or spend overflows int64, or no row
-- Stream-side sums that do not fit BIGINT, checked on stream_windows before sql/day/drift.sql casts them:
-- the first key (by ad_id, window_start) whose summed clicks or spend overflows int64; no row when all fit.
SELECT ad_id, window_start, clicks::VARCHAR AS clicks, spend_micros::VARCHAR AS spend_micros
FROM stream_windows
WHERE clicks NOT BETWEEN -9223372036854775808 AND 9223372036854775807
   OR spend_micros NOT BETWEEN -9223372036854775808 AND 9223372036854775807
ORDER BY ad_id, window_start
LIMIT 1;
