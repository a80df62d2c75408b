-- reads: batch_windows, stream_windows
-- creates: drift
-- Diff stage: batch totals against the stream side, every key of the union (README, rule 7).
CREATE OR REPLACE TEMP TABLE drift AS
SELECT
  coalesce(b.ad_id, s.ad_id) AS ad_id,
  coalesce(b.window_start, s.window_start) AS window_start,
  coalesce(b.clicks, 0)::BIGINT AS batch_clicks,
  coalesce(s.clicks, 0)::BIGINT AS stream_clicks,  -- fits: checked by sql/day/stream_overflow.sql
  (stream_clicks - batch_clicks)::BIGINT AS delta,
  CASE
    WHEN s.ad_id IS NULL THEN 'missing_in_stream'
    WHEN b.ad_id IS NULL THEN 'missing_in_batch'
    WHEN delta > 0 THEN 'stream_over'
    WHEN delta < 0 THEN 'stream_under'
    ELSE 'match'
  END AS status,
  -- |delta| > max(tolerance_abs, tolerance_rel x batch_clicks), exactly: the relative tolerance is the
  -- fraction rel_num / rel_den of its decimal text, compared in 128-bit integers, never in floating point.
  status <> 'match' AND abs(delta) > $tolerance_abs
    AND abs(delta)::HUGEINT * $rel_den::HUGEINT > $rel_num::HUGEINT * batch_clicks
    AS flagged,
  b.spend_micros AS batch_spend_micros,
  s.spend_micros::BIGINT AS stream_spend_micros,
  coalesce(b.duplicate_copies, 0) AS duplicate_copies,
  coalesce(b.late_clicks, 0) AS late_clicks,
  coalesce(s.sink_rows, 0) AS sink_rows,
  coalesce(s.extra_row_clicks, 0)::BIGINT AS extra_row_clicks
FROM batch_windows AS b
FULL OUTER JOIN stream_windows AS s USING (ad_id, window_start);
