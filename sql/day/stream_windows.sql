-- reads: stream_rows
-- creates: stream_windows
-- Stream side: the sink's valid rows of day D, summed per (ad_id, window_start) (README, rule 6).
-- sink_rows > 1 marks a duplicated sink key; extra_row_clicks is what the rows beyond the
-- largest one add (a non-idempotent sink re-emitting a window). The key's spend is known only
-- when every one of its rows carries a spend (a file without spend_micros, or a NULL, makes it NULL).
-- Sums stay HUGEINT: several sink rows of one key may add up past BIGINT (sql/day/stream_overflow.sql).
CREATE OR REPLACE TEMP TABLE stream_windows AS
SELECT
  ad_id,
  window_start,
  sum(clicks) AS clicks,  -- HUGEINT until sql/day/stream_overflow.sql has checked it fits BIGINT
  CASE WHEN count(spend_micros) = count(*) THEN sum(spend_micros) END AS spend_micros,
  count(*)::BIGINT AS sink_rows,
  sum(clicks) - max(clicks) AS extra_row_clicks
FROM stream_rows
WHERE reason IS NULL AND window_start >= $day_start AND window_start < $day_end
GROUP BY ad_id, window_start;
