-- The day's authoritative windows: slice partials summed per (ad_id, window_start).
CREATE OR REPLACE TEMP TABLE batch_windows AS
SELECT
  ad_id,
  window_start,
  sum(clicks)::BIGINT AS clicks,
  sum(spend_micros)::BIGINT AS spend_micros,
  sum(duplicate_copies)::BIGINT AS duplicate_copies,
  sum(late_clicks)::BIGINT AS late_clicks
FROM batch_facts
GROUP BY ad_id, window_start;
