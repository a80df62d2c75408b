-- reads: stream_source
-- creates: stream_rows
-- Stream side: every sink row read, with its verdict (sql/macros/stream_validate.sql; NULL = valid);
-- (file_id, row_no) point back at the row in its file. A view over the rows (sql/day/stream_source.sql), so
-- they are not copied once more.
CREATE OR REPLACE TEMP VIEW stream_rows AS
SELECT
  ad_id,
  window_start,
  clicks,
  spend_micros,
  file_id,
  row_no,
  stream_invalid_reason(ad_id, window_start, clicks, spend_micros, window_ns) AS reason
FROM stream_source;
