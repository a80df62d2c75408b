-- reads: stream_rows, stream_windows
-- returns: one row, summary.stream's counts
-- summary.stream, and rows_in_day (counted from the windows) for the stream ledger's balance check.
SELECT
  (SELECT count(*) FROM stream_rows)::BIGINT AS rows_read,
  (SELECT count(*) FROM stream_rows WHERE reason IS NOT NULL)::BIGINT AS rows_invalid,
  (SELECT count(*) FROM stream_windows WHERE sink_rows > 1)::BIGINT AS duplicate_keys,
  (SELECT count(*) FROM stream_rows WHERE reason IS NULL
    AND NOT (window_start >= $day_start AND window_start < $day_end))::BIGINT AS rows_out_of_day,
  coalesce((SELECT sum(clicks) FROM stream_windows), 0) AS clicks,  -- HUGEINT: the day's sum may pass int64
  coalesce((SELECT sum(sink_rows) FROM stream_windows), 0)::BIGINT AS rows_in_day;
