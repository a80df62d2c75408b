-- Keys per status, and keys and explained clicks per cause of the flagged keys.
SELECT 'status' AS kind, status AS name, count(*)::BIGINT AS keys, 0::HUGEINT AS clicks
FROM drift_out GROUP BY status
UNION ALL
SELECT 'cause', cause, count(*)::BIGINT, sum(explained_clicks)::HUGEINT
FROM drift_out WHERE flagged GROUP BY cause
ORDER BY kind, name;
