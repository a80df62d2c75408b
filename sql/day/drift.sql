-- reads: batch_windows, stream_windows
-- creates: drift
-- Diff stage: batch totals against the stream side, every key of the union (README, rule 7).
CREATE OR REPLACE TEMP TABLE drift AS
SELECT
  coalesce(b.ad_id, s.ad_id) AS ad_id,
  coalesce(b.window_start, s.window_start) AS window_start,
  coalesce(b.clicks, 0)::BIGINT AS batch_clicks,
  coalesce(s.clicks, 0)::BIGINT AS stream_clicks,
  (stream_clicks - batch_clicks)::BIGINT AS delta,
  CASE
    WHEN s.ad_id IS NULL THEN 'missing_in_stream'
    WHEN b.ad_id IS NULL THEN 'missing_in_batch'
    WHEN delta > 0 THEN 'stream_over'
    WHEN delta < 0 THEN 'stream_under'
    ELSE 'match'
  END AS status,
  status <> 'match' AND abs(delta) > greatest($tolerance_abs::DOUBLE, $tolerance_rel::DOUBLE * batch_clicks)
    AS flagged,
  b.spend_micros AS batch_spend_micros,
  s.spend_micros AS stream_spend_micros,
  coalesce(b.duplicate_copies, 0) AS duplicate_copies,
  coalesce(b.late_clicks, 0) AS late_clicks,
  coalesce(s.sink_rows, 0) AS sink_rows,
  coalesce(s.extra_row_clicks, 0) AS extra_row_clicks
FROM batch_windows AS b
FULL OUTER JOIN stream_windows AS s USING (ad_id, window_start);
