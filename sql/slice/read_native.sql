-- reads: $files
-- creates: clicks
-- Read stage, local files: DuckDB's own Parquet reader (parallel, row groups pruned by the click_id
-- range). union_by_name reads files whose columns, units and zones differ as one table; naive
-- timestamps are read as UTC (the session time zone). Same columns as sql/slice/read.sql; times are floored
-- to µs, the nanoseconds below kept apart (sql/macros/validate.sql, floor_us), never rounded.
-- {part} picks every row, only the stragglers, or every row but the stragglers; {prune} bounds the
-- arrival times of the row groups read for the core rows (see sql/macros/validate.sql, is_straggler).
-- {event_us}, {event_sub}, {ingest_us}, {ingest_sub}, {cost}, {range}, {prune}, {cutoff} and {part} are
-- fixed fragments chosen by billing.validate, never values.
CREATE OR REPLACE TEMP TABLE clicks AS
SELECT
  click_id,
  ad_id,
  event_us,
  event_sub_ns,
  ingest_us,
  ingest_sub_ns,
  cost_micros,
  row_pos($file_ids[(file_index + 1)::BIGINT], file_row_number) AS pos,
  invalid_reason(click_id, ad_id, event_us, event_sub_ns, cost_micros, $epoch_ms, $max_skew_us) AS reason
FROM (
  SELECT
    click_id::BIGINT AS click_id,
    ad_id::BIGINT AS ad_id,
    {event_us} AS event_us,
    {event_sub} AS event_sub_ns,
    {ingest_us} AS ingest_us,
    {ingest_sub} AS ingest_sub_ns,
    {cost} AS cost_micros,
    file_index,
    file_row_number
  FROM read_parquet($files, union_by_name = true, file_row_number = true)
  WHERE {range} AND {prune}
)
WHERE {cutoff} AND {part};
