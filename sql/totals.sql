-- Totals stage: per (ad_id, minute) of the winners (README, rules 4-5), every copy grouped under
-- its winner's window: clicks and spend of the winners, the extra raw copies removed, and the
-- winners the stream's watermark would have dropped (ingest_time - event_time > allowed lateness).
-- Windows outside day D are kept here (in_day = false): they are the ledger's clicks_out_of_day.
--
-- Computed without a join against the single copies: every valid copy is first counted in its own
-- window as if it had won, then each losing copy (table copies, a few percent of the rows) is taken
-- back out of its own window and counted as a duplicate in its winner's. A window exists where a
-- winner is (clicks > 0); spend is NULL where no winner has a cost, as a sum over winners would be.
CREATE OR REPLACE TEMP TABLE all_windows AS
WITH counted AS (
  SELECT ad_id, event_us // 60000000 AS minute, 1 AS n, cost_micros,
         ingest_us - event_us > $stream_lateness_us AS late, 0 AS duplicate
  FROM clicks WHERE reason IS NULL
  UNION ALL
  SELECT ad_id, minute, -1, -cost_micros, ingest_us - event_us > $stream_lateness_us, 0
  FROM copies WHERE copy_rank > 1
  UNION ALL
  SELECT won_ad_id, won_minute, 0, NULL, false, 1
  FROM copies WHERE copy_rank > 1
)
SELECT
  ad_id,
  minute,
  minute >= $day_start_minute AND minute < $day_end_minute AS in_day,
  sum(n)::BIGINT AS clicks,
  CASE WHEN sum(n) FILTER (WHERE cost_micros IS NOT NULL) > 0 THEN sum(cost_micros) END::BIGINT AS spend_micros,
  sum(duplicate)::BIGINT AS duplicate_copies,
  coalesce(sum(n) FILTER (WHERE late), 0)::BIGINT AS late_clicks
FROM counted
GROUP BY ad_id, minute
HAVING sum(n) > 0;
