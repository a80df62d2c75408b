-- reads: clicks, copies, all_windows
-- returns: one row, the slice's row ledger
-- The row ledger of one slice: where every row read went.
SELECT
  (SELECT count(*) FROM clicks)::BIGINT AS rows_read,
  (SELECT count(*) FROM clicks WHERE reason IS NOT NULL)::BIGINT AS rows_invalid,
  (SELECT count(*) FROM clicks WHERE reason IS NULL)::BIGINT AS rows_valid,
  coalesce((SELECT sum(duplicate_copies) FROM all_windows), 0)::BIGINT AS duplicates_removed,
  (SELECT count(DISTINCT click_id) FROM copies
    WHERE copy_rank > 1 AND (ad_id <> won_ad_id OR minute <> won_minute))::BIGINT AS conflicting_click_ids,
  coalesce((SELECT sum(clicks) FROM all_windows WHERE NOT in_day), 0)::BIGINT AS clicks_out_of_day,
  coalesce((SELECT sum(clicks) FROM all_windows WHERE in_day), 0)::BIGINT AS billable_clicks,
  (SELECT sum(spend_micros) FROM all_windows WHERE in_day)::BIGINT AS billable_spend_micros;
