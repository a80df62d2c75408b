-- reads: day_totals
-- returns: ad_id, clicks, spend_micros of totals.parquet's rows (the manifest's restatement sums them per ad)
-- Read a batch at a time only when the day has a previous version to compare with.
SELECT ad_id, clicks, spend_micros FROM day_totals;
