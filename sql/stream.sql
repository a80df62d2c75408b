-- Stream side: the sink's rows for day D, summed per (ad_id, window_start) (README, rule 6).
-- sink_rows > 1 marks a duplicated sink key; extra_row_clicks is what the rows beyond the
-- largest one add (a non-idempotent sink re-emitting a window).
CREATE OR REPLACE TEMP TABLE stream_windows AS
SELECT
  ad_id,
  window_start,
  sum(clicks)::BIGINT AS clicks,
  sum(spend_micros)::BIGINT AS spend_micros,
  count(*)::BIGINT AS sink_rows,
  (sum(clicks) - max(clicks))::BIGINT AS extra_row_clicks
FROM stream_source
WHERE window_start >= $day_start AND window_start < $day_end
GROUP BY ad_id, window_start;
