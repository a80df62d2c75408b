-- reads: copies
-- returns: one row per conflicting click_id
-- One row per conflicting click_id: its copies' distinct ad_ids and windows, and the winner.
-- A conflict needs two copies, so only table copies (the repeated click_ids) is looked at.
WITH conflicting AS (
  SELECT DISTINCT click_id FROM copies
  WHERE copy_rank > 1 AND (ad_id <> won_ad_id OR minute <> won_minute)
)
SELECT
  r.click_id,
  count(*)::BIGINT AS copies,
  list_sort(list_distinct(list(r.ad_id))) AS ad_ids,
  list_sort(list_distinct(list(to_timestamp(r.minute * 60)))) AS window_starts,
  any_value(r.won_ad_id) AS winner_ad_id,
  any_value(to_timestamp(r.won_minute * 60)) AS winner_window_start,
  pos_file_id(min(r.pos) FILTER (WHERE r.copy_rank = 1)) AS winner_file_id,
  pos_row_no(min(r.pos) FILTER (WHERE r.copy_rank = 1)) AS winner_row
FROM copies AS r
SEMI JOIN conflicting USING (click_id)
GROUP BY r.click_id
ORDER BY r.click_id;
