-- Read stage: land one slice of normalised raw rows, each tagged with its validation verdict.
-- click_source is the Arrow stream of billing.read (click_id .. row_no).
CREATE OR REPLACE TEMP TABLE clicks AS
SELECT
  click_id,
  ad_id,
  event_time,
  ingest_time,
  cost_micros,
  file_id,
  row_no,
  invalid_reason(click_id, ad_id, event_time, cost_micros, $epoch_ms, $max_skew_us) AS reason
FROM click_source;
