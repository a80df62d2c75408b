-- reads: $stragglers
-- appends: clicks
-- Read stage, second half of a slice whose stragglers were set aside: add the slice's range of the
-- stragglers file (sorted by click_id, so its row groups prune by the range) to table clicks.
-- {range} is a fixed fragment chosen by billing.validate, never a value.
INSERT INTO clicks
SELECT click_id, ad_id, event_us, event_sub_ns, ingest_us, ingest_sub_ns, cost_micros, pos, reason
FROM read_parquet($stragglers)
WHERE {range};
