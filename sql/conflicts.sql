-- One row per conflicting click_id: its copies' distinct ad_ids and windows, and the winner.
SELECT
  w.click_id,
  w.copies,
  list_sort(list_distinct(list(c.ad_id))) AS ad_ids,
  list_sort(list_distinct(list(time_bucket(INTERVAL 1 MINUTE, c.event_time)))) AS window_starts,
  any_value(w.won.ad_id) AS winner_ad_id,
  any_value(time_bucket(INTERVAL 1 MINUTE, w.won.event_time)) AS winner_window_start,
  any_value(w.won.file_id) AS winner_file_id,
  any_value(w.won.row_no) AS winner_row
FROM winners AS w
JOIN clicks AS c ON c.click_id = w.click_id AND c.reason IS NULL
WHERE w.conflict
GROUP BY w.click_id, w.copies
ORDER BY w.click_id;
