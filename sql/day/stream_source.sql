-- reads: stream_arrow
-- creates: stream_source
-- The stream side's rows, normalised (billing.io.stream): an empty table of their columns, which
-- sql/day/stream_append.sql fills a piece at a time (billing.day.diff.load_stream). A DuckDB table, not the
-- Arrow rows: past its share of --memory-limit DuckDB spills it to disk, where a day's sink rows held in
-- Arrow could only grow the process (the 100M-row long-tail day's 80M sink rows are ~3.5 GB).
CREATE OR REPLACE TEMP TABLE stream_source AS SELECT * FROM stream_arrow;
