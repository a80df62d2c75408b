-- reads: stream_rows
-- returns: file_id, row_no, reason of every invalid stream row
-- Which stream rows were quarantined, and why: (file_id, row_no) pointers, in (source_file, source_row)
-- order (file ids follow the sorted paths); the full rows are re-read from their files.
SELECT file_id, row_no, reason FROM stream_rows WHERE reason IS NOT NULL ORDER BY file_id, row_no;
