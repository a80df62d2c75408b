-- Which rows were quarantined, and why: (file_id, row_no) pointers; the full rows are re-read from the file.
SELECT (pos >> 40)::INTEGER AS file_id, pos & 1099511627775 AS row_no, reason
FROM clicks
WHERE reason IS NOT NULL
ORDER BY pos;
