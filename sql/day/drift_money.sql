-- reads: attributed, drift
-- creates: drift_priced
-- Money at risk per drift key, in integer micros:
--   the stream's own spend minus the batch's, when the stream side carries spend_micros and every
--   stream row of the key has a spend (else sql/day/stream_windows.sql leaves the key's spend NULL and it is priced
--   as below, as if the stream had no spend); a key with no stream row: minus the batch's spend;
--   else delta x the window's average billed cost, rounded half to even;
--   for a window with no batch clicks, delta x the ad's average billed cost that day;
--   NULL when no price is known.
-- Table drift_priced: the day's drift as published, plus explained_clicks for the summary; sql/day/drift_sorted.sql
-- fetches it in key order.
CREATE OR REPLACE TEMP TABLE drift_priced AS
WITH ad_price AS (
  -- only for the ads with a window without batch clicks: the CASE below reads it for no other key
  SELECT ad_id, sum(batch_spend_micros) AS spend, sum(batch_clicks) AS clicks
  FROM drift
  WHERE batch_spend_micros IS NOT NULL AND ad_id IN (SELECT ad_id FROM drift WHERE batch_clicks = 0)
  GROUP BY ad_id
)
SELECT
  a.ad_id,
  a.window_start,
  a.batch_clicks,
  a.stream_clicks,
  a.delta,
  a.status,
  a.flagged,
  a.cause,
  a.batch_spend_micros,
  a.stream_spend_micros,
  CASE
    WHEN $stream_has_spend AND (a.stream_spend_micros IS NOT NULL OR a.sink_rows = 0)
      THEN coalesce(a.stream_spend_micros, 0) - coalesce(a.batch_spend_micros, 0)
    WHEN a.batch_clicks > 0 AND a.batch_spend_micros IS NOT NULL
      THEN div_half_even(a.delta::HUGEINT * a.batch_spend_micros, a.batch_clicks)
    WHEN a.batch_clicks = 0 AND p.clicks > 0
      THEN div_half_even(a.delta::HUGEINT * p.spend, p.clicks)
  END AS money_at_risk_micros,  -- HUGEINT until sql/day/money_overflow.sql has checked it fits BIGINT
  a.explained_clicks
FROM attributed AS a
LEFT JOIN ad_price AS p USING (ad_id);
