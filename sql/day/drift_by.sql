-- reads: day_drift
-- returns: kind, name, keys, clicks (keys per status, per cause)
-- Keys per status, and keys and explained clicks per cause of the flagged keys (clicks HUGEINT: a day's
-- explained clicks may add up past int64).
SELECT 'status' AS kind, status AS name, count(*)::BIGINT AS keys, 0::HUGEINT AS clicks
FROM day_drift GROUP BY status
UNION ALL
SELECT 'cause', cause, count(*)::BIGINT, sum(explained_clicks)::HUGEINT
FROM day_drift WHERE flagged GROUP BY cause
ORDER BY kind, name;
