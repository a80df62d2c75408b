-- The row ledger of one slice: where every row read went.
SELECT
  (SELECT count(*) FROM clicks)::BIGINT AS rows_read,
  (SELECT count(*) FROM clicks WHERE reason IS NOT NULL)::BIGINT AS rows_invalid,
  (SELECT count(*) FROM clicks WHERE reason IS NULL)::BIGINT AS rows_valid,
  coalesce((SELECT sum(copies - 1) FROM winners), 0)::BIGINT AS duplicates_removed,
  (SELECT count(*) FROM winners WHERE conflict)::BIGINT AS conflicting_click_ids,
  (SELECT count(*) FROM winners
    WHERE NOT (won.event_time >= $day_start AND won.event_time < $day_end))::BIGINT AS clicks_out_of_day,
  (SELECT count(*) FROM winners
    WHERE won.event_time >= $day_start AND won.event_time < $day_end)::BIGINT AS billable_clicks,
  (SELECT sum(won.cost_micros) FROM winners
    WHERE won.event_time >= $day_start AND won.event_time < $day_end)::BIGINT AS billable_spend_micros;
