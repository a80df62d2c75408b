-- Which rows were quarantined, and why: (file_id, row_no) pointers; the full rows are re-read from the file.
SELECT file_id, row_no, reason FROM clicks WHERE reason IS NOT NULL ORDER BY file_id, row_no;
