-- Dedup stage: one winner per click_id among valid rows (README, rule 3).
-- The winner is the copy with the earliest ingest_time (nulls last), ties broken by
-- source file path (file_id is the index in the path-sorted file list) and row position.
-- A click_id whose copies disagree on ad_id or on the minute window is a conflict.
CREATE OR REPLACE TEMP TABLE winners AS
SELECT
  click_id,
  arg_min(
    {'ad_id': ad_id, 'event_time': event_time, 'ingest_time': ingest_time,
     'cost_micros': cost_micros, 'file_id': file_id, 'row_no': row_no},
    {'ingest_us': coalesce(epoch_us(ingest_time), 9223372036854775807), 'file_id': file_id, 'row_no': row_no}
  ) AS won,
  count(*) AS copies,
  (min(ad_id) <> max(ad_id))
    OR (min(epoch_us(event_time) // 60000000) <> max(epoch_us(event_time) // 60000000)) AS conflict
FROM clicks
WHERE reason IS NULL
GROUP BY click_id;
