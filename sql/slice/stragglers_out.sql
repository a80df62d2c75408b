-- reads: clicks
-- writes: $path
-- The stragglers of a day, landed as table clicks (sql/slice/read_native.sql, part "stragglers"), written
-- sorted by click_id in small row groups: each slice then reads only the row groups of its range.
COPY (SELECT * FROM clicks ORDER BY click_id, pos) TO $path (FORMAT parquet, ROW_GROUP_SIZE 65536);
