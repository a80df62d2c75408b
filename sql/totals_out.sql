-- totals.parquet: sorted by (ad_id, window_start); spend is NULL when the raw log carries no cost.
SELECT
  ad_id,
  window_start,
  clicks,
  CASE WHEN $has_cost THEN coalesce(spend_micros, 0) END::BIGINT AS spend_micros
FROM batch_windows
ORDER BY ad_id, window_start;
