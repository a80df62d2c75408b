-- reads: clicks
-- returns: file_id, row_no, reason of every invalid row
-- Which rows were quarantined, and why: (file_id, row_no) pointers; the full rows are re-read from the file.
SELECT pos_file_id(pos) AS file_id, pos_row_no(pos) AS row_no, reason
FROM clicks
WHERE reason IS NOT NULL
ORDER BY pos;
