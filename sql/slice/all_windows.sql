-- reads: own_windows, copies
-- creates: all_windows
-- Totals stage: per (ad_id, minute) of the winners (README, rules 4-5), every copy grouped under
-- its winner's window: clicks and spend of the winners, the extra raw copies removed, and the
-- winners the stream's watermark would have dropped (late). Windows outside day D are kept here
-- (in_day = false): they are the ledger's clicks_out_of_day.
--
-- Computed without a join against the single copies: every valid copy has been counted in its own
-- window (sql/slice/own_windows.sql); each losing copy (table copies, a few percent of the
-- rows) is now taken back out of its own window and counted as a duplicate in its winner's. Both
-- windows exist in own_windows (the loser and the winner were counted there). A window remains
-- where a winner is (clicks > 0); spend is NULL where no winner has a cost, as a sum over winners would be.
CREATE OR REPLACE TEMP TABLE all_windows AS
WITH moves AS (
  SELECT ad_id, minute, -1 AS clicks, -(cost_micros IS NOT NULL)::INTEGER AS costed, -cost_micros AS spend_micros,
         -arrived_late(ingest_us, ingest_sub_ns, event_us, event_sub_ns, $stream_lateness_us)::INTEGER AS late_clicks, 0 AS duplicate_copies
  FROM copies WHERE copy_rank > 1
  UNION ALL
  SELECT won_ad_id, won_minute, 0, 0, NULL, 0, 1
  FROM copies WHERE copy_rank > 1
),
moved AS (
  SELECT ad_id, minute, sum(clicks) AS clicks, sum(costed) AS costed, sum(spend_micros) AS spend_micros,
         sum(late_clicks) AS late_clicks, sum(duplicate_copies) AS duplicate_copies
  FROM moves
  GROUP BY ad_id, minute
),
windows AS (
  SELECT
    o.ad_id,
    o.minute,
    o.clicks + coalesce(m.clicks, 0) AS clicks,
    o.costed + coalesce(m.costed, 0) AS costed,
    o.spend_micros + coalesce(m.spend_micros, 0) AS spend_micros,
    coalesce(m.duplicate_copies, 0) AS duplicate_copies,
    o.late_clicks + coalesce(m.late_clicks, 0) AS late_clicks
  FROM own_windows AS o
  LEFT JOIN moved AS m USING (ad_id, minute)
)
SELECT
  ad_id,
  minute,
  minute >= $day_start_minute AND minute < $day_end_minute AS in_day,
  clicks::BIGINT AS clicks,
  CASE WHEN costed > 0 THEN spend_micros END::HUGEINT AS spend_micros,  -- checked by sql/slice/spend_overflow.sql
  duplicate_copies::BIGINT AS duplicate_copies,
  late_clicks::BIGINT AS late_clicks
FROM windows
WHERE clicks > 0;
