-- reads: click_source
-- creates: clicks
-- Read stage: land one slice of normalised raw rows, each tagged with its validation verdict.
-- click_source is the Arrow stream of billing.read (click_id .. row_no, then the nanoseconds below the
-- µs of event_time and ingest_time, whose µs billing.read floored). Times become µs since the epoch;
-- pos packs (file_id, row_no) into one sortable key (row_pos, sql/macros/packing.sql): the file's index in the path-sorted file list,
-- then the row's position in that file.
CREATE OR REPLACE TEMP TABLE clicks AS
SELECT
  click_id,
  ad_id,
  epoch_us(event_time) AS event_us,
  event_sub_ns,
  epoch_us(ingest_time) AS ingest_us,
  ingest_sub_ns,
  cost_micros,
  row_pos(file_id, row_no) AS pos,
  invalid_reason(click_id, ad_id, epoch_us(event_time), event_sub_ns, cost_micros, $epoch_ms, $max_skew_us) AS reason
FROM click_source;
