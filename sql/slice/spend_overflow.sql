-- reads: all_windows
-- returns: the window or total whose spend overflows BIGINT, or no row
-- Spend that does not fit BIGINT (int64 micros), checked on all_windows before anything casts it:
-- the first in-day window (by ad_id, minute) whose winners' spend overflows, else the slice's in-day
-- total when that overflows; no row when everything fits. Costs are >= 0 (negative ones are
-- quarantined), so a window fits whenever the total does; the window is named when it is the cause.
WITH bad_window AS (
  SELECT ad_id, minute, spend_micros
  FROM all_windows
  WHERE in_day AND spend_micros NOT BETWEEN -9223372036854775808 AND 9223372036854775807
  ORDER BY ad_id, minute
  LIMIT 1
),
day AS (
  SELECT sum(spend_micros) AS total FROM all_windows WHERE in_day
)
SELECT
  w.ad_id,
  to_timestamp(w.minute * 60) AS window_start,
  w.spend_micros::VARCHAR AS window_spend_micros,
  d.total::VARCHAR AS total_spend_micros
FROM day AS d
LEFT JOIN bad_window AS w ON true
WHERE w.ad_id IS NOT NULL OR d.total NOT BETWEEN -9223372036854775808 AND 9223372036854775807;
