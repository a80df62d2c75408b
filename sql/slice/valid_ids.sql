-- reads: clicks
-- returns: click_id of every valid row
-- The click_id of every valid row of the slice, in no particular order (billing.dedup sorts them).
SELECT click_id FROM clicks WHERE reason IS NULL;
