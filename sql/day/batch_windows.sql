-- reads: batch_facts, shared_spans
-- creates: batch_windows
-- The day's authoritative windows: the slices' window facts put together per (ad_id, window_start).
-- Each slice has one row per window, so a window needs summing only where two slices can both hold
-- it: where their window_start spans overlap (shared_spans, sql/day/shared_spans.sql, from the facts'
-- Parquet statistics, billing.day.merge.shared_windows).
-- Slices are click_id ranges, so that is typically a few
-- minutes around each boundary; the rest of the day's windows pass through as they are.
-- A view, read once (by sql/day/drift.sql): the day's windows are not copied before the join.
CREATE OR REPLACE TEMP VIEW batch_windows AS
WITH facts AS (
  SELECT f.*, EXISTS (SELECT 1 FROM shared_spans AS s WHERE f.window_start BETWEEN s.lo AND s.hi) AS in_shared
  FROM batch_facts AS f
)
SELECT ad_id, window_start, clicks, spend_micros, duplicate_copies, late_clicks
FROM facts
WHERE NOT in_shared
UNION ALL
SELECT
  ad_id,
  window_start,
  sum(clicks)::BIGINT AS clicks,
  sum(spend_micros)::BIGINT AS spend_micros,
  sum(duplicate_copies)::BIGINT AS duplicate_copies,
  sum(late_clicks)::BIGINT AS late_clicks
FROM facts
WHERE in_shared
GROUP BY ad_id, window_start;
