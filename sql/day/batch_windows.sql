-- reads: batch_facts
-- creates: batch_windows
-- The day's authoritative windows: the slices' window facts put together per (ad_id, window_start).
-- Each slice has one row per window, so a window needs summing only where two slices can both hold
-- it: where their window_start spans overlap ($shared_lo[i] .. $shared_hi[i], from the facts'
-- Parquet statistics, billing.slices.shared_windows).
-- Slices are click_id ranges, so that is typically a few
-- minutes around each boundary; the rest of the day's windows pass through as they are.
CREATE OR REPLACE TEMP TABLE batch_windows AS
WITH shared AS (
  SELECT unnest($shared_lo::TIMESTAMPTZ[]) AS lo, unnest($shared_hi::TIMESTAMPTZ[]) AS hi
),
facts AS (
  SELECT f.*, EXISTS (SELECT 1 FROM shared AS s WHERE f.window_start BETWEEN s.lo AND s.hi) AS in_shared
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
