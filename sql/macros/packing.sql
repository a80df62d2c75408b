-- defines: row_pos, pos_file_id, pos_row_no, snowflake_ms
-- The two bit layouts the SQL relies on, named once: every file packs and unpacks them through these.
--   pos: a raw row's place in the day, (file_id << 40) | row_no: the file's index in the path-sorted file
--        list in the high bits, the row's position in that file in the low 40 (up to 2^40 rows a file),
--        so pos sorts by file, then row (dedup's last tie-break).
--   A Snowflake click_id holds, above its low 22 bits (worker, sequence), the ms since the Snowflake epoch
--   it was made at (billing.config.SNOWFLAKE_TIME_SHIFT on the Python side).
CREATE OR REPLACE TEMP MACRO row_pos(file_id, row_no) AS (file_id::BIGINT << 40) | row_no;
CREATE OR REPLACE TEMP MACRO pos_file_id(pos) AS (pos >> 40)::INTEGER;
CREATE OR REPLACE TEMP MACRO pos_row_no(pos) AS pos & 1099511627775;

-- The time in a click_id, in ms since 1970 (epoch_ms: the Snowflake epoch in ms since 1970).
CREATE OR REPLACE TEMP MACRO snowflake_ms(click_id, epoch_ms) AS (click_id >> 22) + epoch_ms;
