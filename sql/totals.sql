-- Totals stage: per (ad_id, minute window) of day D, the winners' clicks and spend (README, rules 4-5),
-- with the facts drift attribution needs: extra raw copies removed, and clicks the stream's
-- watermark would have dropped (ingest_time - event_time > stream allowed lateness).
CREATE OR REPLACE TEMP TABLE window_facts AS
SELECT
  won.ad_id AS ad_id,
  time_bucket(INTERVAL 1 MINUTE, won.event_time) AS window_start,
  count(*)::BIGINT AS clicks,
  sum(won.cost_micros)::BIGINT AS spend_micros,
  sum(copies - 1)::BIGINT AS duplicate_copies,
  count(*) FILTER (WHERE won.ingest_time - won.event_time > $stream_lateness)::BIGINT AS late_clicks
FROM winners
WHERE won.event_time >= $day_start AND won.event_time < $day_end
GROUP BY ALL;
