-- Read stage, local files: DuckDB's own Parquet reader (parallel, row groups pruned by the click_id
-- range). union_by_name reads files whose columns, units and zones differ as one table; naive
-- timestamps are read as UTC (the session time zone). Same columns as sql/read.sql.
-- {part} picks every row, only the stragglers, or every row but the stragglers, read from the row
-- groups whose arrival times can hold the range (see sql/validate.sql, is_straggler).
-- {ingest}, {cost}, {range}, {cutoff} and {part} are fixed fragments chosen by billing.validate, never values.
CREATE OR REPLACE TEMP TABLE clicks AS
SELECT
  click_id::BIGINT AS click_id,
  ad_id::BIGINT AS ad_id,
  epoch_us(event_time::TIMESTAMPTZ) AS event_us,
  epoch_us({ingest}) AS ingest_us,
  {cost} AS cost_micros,
  ($file_ids[(file_index + 1)::BIGINT]::BIGINT << 40) | file_row_number AS pos,
  invalid_reason(click_id::BIGINT, ad_id::BIGINT, event_time::TIMESTAMPTZ, {cost}, $epoch_ms, $max_skew_us) AS reason
FROM read_parquet($files, union_by_name = true, file_row_number = true)
WHERE {range} AND {cutoff} AND {part};
