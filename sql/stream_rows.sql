-- Stream side: every sink row read, with its verdict (sql/stream_validate.sql; NULL = valid) and
-- whether it is a valid row of day D. (file_id, row_no) point back at the row in its file.
CREATE OR REPLACE TEMP TABLE stream_rows AS
SELECT
  ad_id,
  window_start,
  clicks,
  spend_micros,
  file_id,
  row_no,
  stream_invalid_reason(ad_id, window_start, clicks, spend_micros, window_ns) AS reason,
  coalesce(reason IS NULL AND window_start >= $day_start AND window_start < $day_end, false) AS in_day
FROM stream_source;
