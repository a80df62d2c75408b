-- reads: stream_rows
-- returns: reason, n (invalid stream rows per reason)
-- How many sink rows each stream validation rule quarantined.
SELECT reason, count(*)::BIGINT AS n FROM stream_rows WHERE reason IS NOT NULL GROUP BY reason ORDER BY reason;
