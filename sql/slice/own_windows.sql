-- reads: clicks
-- creates: own_windows
-- Totals, first part: every valid copy counted in its own (ad_id, minute) window, as if each had won
-- (README, rules 4-5). It needs nothing from dedup, so it runs while the repeated click_ids are
-- being found; sql/slice/all_windows.sql then moves the losing copies to their winners' windows.
-- Spend stays HUGEINT here and in all_windows; sql/slice/spend_overflow.sql checks it fits BIGINT before
-- sql/slice/window_facts.sql and sql/slice/ledger.sql cast it.
--   late: the stream's watermark would have dropped it (ingest_time - event_time > allowed lateness, to the ns)
CREATE OR REPLACE TEMP TABLE own_windows AS
SELECT
  ad_id,
  event_us // 60000000 AS minute,
  count(*)::BIGINT AS clicks,
  count(cost_micros)::BIGINT AS costed,
  sum(cost_micros) AS spend_micros,  -- HUGEINT: a window's own copies may exceed BIGINT before dedup
  count_if(arrived_late(ingest_us, ingest_sub_ns, event_us, event_sub_ns, $stream_lateness_us))::BIGINT AS late_clicks
FROM clicks
WHERE reason IS NULL
GROUP BY ad_id, minute;
