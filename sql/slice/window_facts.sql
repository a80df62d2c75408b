-- reads: all_windows
-- returns: the slice's in-day windows (its window facts)
-- The in-day windows of one slice, with window_start as a UTC timestamp.
SELECT
  ad_id,
  to_timestamp(minute * 60) AS window_start,
  clicks,
  spend_micros::BIGINT AS spend_micros,  -- fits: sql/slice/spend_overflow.sql ran first
  duplicate_copies,
  late_clicks
FROM all_windows
WHERE in_day AND clicks > 0;
