-- reads: clicks
-- returns: reason, n (invalid rows per reason)
-- How many rows of the slice each validation rule quarantined.
SELECT reason, count(*)::BIGINT AS n FROM clicks WHERE reason IS NOT NULL GROUP BY reason ORDER BY reason;
