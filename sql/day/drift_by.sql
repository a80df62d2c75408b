-- reads: day_drift
-- returns: kind, name, keys, clicks (keys per status, per cause)
-- Keys per status, and keys and explained clicks per cause of the flagged keys.
SELECT 'status' AS kind, status AS name, count(*)::BIGINT AS keys, 0::BIGINT AS clicks
FROM day_drift GROUP BY status
UNION ALL
SELECT 'cause', cause, count(*)::BIGINT, sum(explained_clicks)::BIGINT
FROM day_drift WHERE flagged GROUP BY cause
ORDER BY kind, name;
