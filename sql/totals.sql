-- Totals stage: per (ad_id, minute) of the winners (README, rules 4-5), every copy grouped under
-- its winner's window: clicks and spend of the winners, the extra raw copies removed, and the
-- winners the stream's watermark would have dropped (ingest_time - event_time > allowed lateness).
-- Windows outside day D are kept here (in_day = false): they are the ledger's clicks_out_of_day.
CREATE OR REPLACE TEMP TABLE all_windows AS
SELECT
  won_ad_id AS ad_id,
  won_minute AS minute,
  won_minute >= $day_start_minute AND won_minute < $day_end_minute AS in_day,
  count(*) FILTER (WHERE copy_rank = 1)::BIGINT AS clicks,
  sum(cost_micros) FILTER (WHERE copy_rank = 1)::BIGINT AS spend_micros,
  count(*) FILTER (WHERE copy_rank > 1)::BIGINT AS duplicate_copies,
  count(*) FILTER (WHERE copy_rank = 1 AND ingest_us - event_us > $stream_lateness_us)::BIGINT AS late_clicks
FROM ranked
GROUP BY won_ad_id, won_minute;
