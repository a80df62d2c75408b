-- reads: $stragglers
-- appends: clicks
-- Read stage, second half of a slice whose rows were set aside (billing.slice.setaside): add its set-aside
-- files' rows (landed already, partitioned by slice; the range filter only guards) to table clicks.
-- {range} is a fixed fragment chosen by billing.validate, never a value.
INSERT INTO clicks
SELECT click_id, ad_id, event_us, event_sub_ns, ingest_us, ingest_sub_ns, cost_micros, pos, reason
FROM read_parquet($stragglers)
WHERE {range};
