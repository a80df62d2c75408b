-- reads: day_totals, day_drift
-- creates: report_ads
-- Per ad (the report's top-ads tables and ads_daily.csv): billable clicks and spend from the totals;
-- stream clicks, delta, money at risk and flagged windows from the drift; the main cause of its flagged
-- drift (the cause with the largest |delta|, ties by cause name). Spend and money stay NULL when no
-- window of the ad has one. A table: a long tail of ads can be millions, written out batch by batch.
CREATE OR REPLACE TEMP TABLE report_ads AS
WITH billed AS (
  SELECT ad_id, sum(clicks)::BIGINT AS clicks, sum(spend_micros)::BIGINT AS spend
  FROM day_totals GROUP BY ad_id
),
drifted AS (
  SELECT
    ad_id,
    sum(stream_clicks)::BIGINT AS stream_clicks,
    sum(delta)::BIGINT AS delta,
    sum(money_at_risk_micros)::BIGINT AS money,
    count(*) FILTER (WHERE flagged)::BIGINT AS flagged_windows
  FROM day_drift GROUP BY ad_id
),
causes AS (
  SELECT ad_id, cause
  FROM day_drift WHERE flagged GROUP BY ad_id, cause
  QUALIFY row_number() OVER (PARTITION BY ad_id ORDER BY sum(abs(delta)) DESC, cause ASC NULLS LAST) = 1
)
SELECT
  coalesce(b.ad_id, d.ad_id) AS ad_id,
  coalesce(b.clicks, 0) AS billable_clicks,
  b.spend AS spend_micros,
  coalesce(d.stream_clicks, 0) AS stream_clicks,
  coalesce(d.delta, 0) AS delta,
  d.money AS money_at_risk_micros,
  coalesce(d.flagged_windows, 0) AS flagged_windows,
  c.cause AS main_cause
FROM billed AS b
FULL OUTER JOIN drifted AS d ON d.ad_id = b.ad_id
LEFT JOIN causes AS c ON c.ad_id = coalesce(b.ad_id, d.ad_id);
