-- reads: day_totals
-- returns: one row: the clicks and spend of totals.parquet (for the ledger's balance check)
-- HUGEINT: a day's sums may pass int64; spend NULL when no window has one.
SELECT coalesce(sum(clicks), 0)::HUGEINT AS clicks, sum(spend_micros)::HUGEINT AS spend_micros FROM day_totals;
